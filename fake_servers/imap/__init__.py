"""The IMAP fake: a sans-I/O session state machine and its Twisted I/O layer."""

from .session import ImapSession, State
from . import auth_commands, mailbox_commands, message_commands  # noqa: E402,F401  (register handlers)

__all__ = ["ImapSession", "State"]
