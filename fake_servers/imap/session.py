"""The IMAP server state machine (RFC 3501 / RFC 9051 as clients use them), with no I/O.

Feed it parsed commands and continuation lines; it returns what to send and directives
(:class:`StartTLS`, :class:`Close`). The I/O layer (``server.py``) owns the socket, the
wire record and the fault rules; everything here can be tested byte by byte.

Command handlers live beside it, grouped the way RFC 3501 groups them: ``auth_commands``
(any and not-authenticated state), ``mailbox_commands`` (authenticated state) and
``message_commands`` (selected state); they register themselves when the package is
imported (see ``__init__.py``).
"""

from __future__ import annotations

import enum
from typing import Callable, Iterable

from ..mailstore import Account, MailStore
from .config import ImapConfig
from .parser import Atom, Command, String
from .responses import Close, Send, StartTLS, status_untagged, tagged, untagged
from .view import SelectedView

Output = Send | StartTLS | Close


class State(str, enum.Enum):
    NOT_AUTHENTICATED = "not-authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset(State) - {State.LOGOUT}
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})

Handler = Callable[["ImapSession", Command], list[Output]]
HANDLERS: dict[tuple[str, bool], tuple[frozenset, Handler]] = {}


def command(name: str, states: frozenset, *, uid: bool = False):
    """Register a handler for ``name`` (and ``UID name`` when uid=True) in ``states``."""

    def register(fn: Handler) -> Handler:
        HANDLERS[(name, False)] = (states, fn)
        if uid:
            HANDLERS[(name, True)] = (states, fn)
        return fn

    return register


class BadCommand(Exception):
    """A syntax error in a command's arguments: answered ``BAD <text>``."""


class Refused(Exception):
    """Well-formed arguments the server will not act on: answered ``NO <text>``."""


class ImapSession:
    """One IMAP connection's protocol state."""

    def __init__(self, store: MailStore, config: ImapConfig | None = None, *, tls: bool = False) -> None:
        self.store = store
        self.config = config or ImapConfig()
        self.tls = tls
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.username: str | None = None
        self.view: SelectedView | None = None
        self.enabled: set[str] = set()
        self.idle_tag: str | None = None  # set while IDLE is in progress
        self.sasl = None  # (tag, mechanism) while AUTHENTICATE is in progress
        self.on_folder_change: Callable[[], None] | None = None  # the I/O layer's IDLE push hook

    # -- what the I/O layer calls --------------------------------------------------------

    def greeting(self) -> list[Output]:
        if self.config.preauth:
            self._authenticate_as(self._preauth_account())
        caps = self.capability_line() if self.config.greeting_capabilities else ""
        text = f"[CAPABILITY {caps}] {self.config.texts.greeting}" if caps else self.config.texts.greeting
        if self.config.preauth:
            return [status_untagged("PREAUTH", text)]
        return [Send(f"* OK {text}\r\n".encode(), "greeting", None, "OK", "CAPABILITY" if caps else None)]

    @property
    def wants_line(self) -> bool:
        """Whether the next client line is a continuation (SASL response, IDLE's DONE)."""
        return self.sasl is not None or self.idle_tag is not None

    def handle(self, cmd: Command) -> list[Output]:
        if self.state is State.LOGOUT:
            return []
        entry = HANDLERS.get((cmd.name, cmd.uid))
        if entry is None:
            what = f"UID {cmd.name}" if cmd.uid else cmd.name
            return self._with_updates(cmd, [tagged(cmd.tag, "BAD", f"Error in IMAP command {what}: Unknown command.")])
        states, fn = entry
        if self.state not in states:
            return [tagged(cmd.tag, "BAD", self._wrong_state_text(states))]
        if self.account is None and self.state in AUTH and states != ANY:
            # PREAUTH (configured, or injected by a fault rule) with no account to be
            return [tagged(cmd.tag, "NO", "[UNAVAILABLE] No account behind this pre-authenticated session.")]
        try:
            out = fn(self, cmd)
        except BadCommand as exc:
            out = [tagged(cmd.tag, "BAD", f"Error in IMAP command {cmd.name}: {exc}")]
        except Refused as exc:
            out = [tagged(cmd.tag, "NO", str(exc))]
        return out

    def handle_line(self, line: bytes) -> list[Output]:
        """A continuation line: a SASL response or the end of IDLE."""
        if self.sasl is not None:
            from .auth_commands import sasl_continue

            return sasl_continue(self, line)
        if self.idle_tag is not None:
            tag, self.idle_tag = self.idle_tag, None
            if self.view is not None:
                self.view.folder.observers.remove(self._folder_changed)
            if line.strip().upper() == b"DONE":
                return [*self.pending_updates(), tagged(tag, "OK", "Idle completed.")]
            return [tagged(tag, "BAD", "Expected DONE.")]
        return []

    def protocol_error(self, tag: str | None, text: str) -> list[Output]:
        if tag is None:
            return [status_untagged("BAD", f"Error in IMAP command received by server: {text}")]
        return [tagged(tag, "BAD", f"Error in IMAP command: {text}")]

    def tls_started(self) -> None:
        self.tls = True

    # -- helpers for handlers ------------------------------------------------------------

    def capabilities(self) -> list[str]:
        return self.config.capabilities(tls=self.tls, authenticated=self.state in AUTH)

    def capability_line(self) -> str:
        return " ".join(self.capabilities())

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled

    def enable_condstore(self) -> list[Output]:
        """Run by every CONDSTORE enabling command (RFC 7162 §3.1): ENABLE, SELECT (CONDSTORE),
        FETCH MODSEQ / CHANGEDSINCE, STORE UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ.
        The first one issued while a mailbox is selected announces its HIGHESTMODSEQ."""
        if self.condstore:
            return []
        self.enabled.add("CONDSTORE")
        if self.view is None:
            return []
        self.view.condstore = True
        return [status_untagged("OK", f"[HIGHESTMODSEQ {self.view.folder.highest_modseq}] Highest")]

    def pending_updates(self, *, allow_expunge: bool = True) -> list[Output]:
        if self.view is None:
            return []
        if self.view.folder.uidvalidity != self.view.uidvalidity:
            self.state = State.LOGOUT
            return [status_untagged("BYE", "[UNAVAILABLE] Mailbox UIDVALIDITY changed, reconnect."),
                    Close("UIDVALIDITY changed while selected")]
        return [untagged(line) for line in self.view.updates(allow_expunge=allow_expunge)]

    def _with_updates(self, cmd: Command, out: list[Output], *, allow_expunge: bool = True) -> list[Output]:
        if self.view is None:
            return out
        return [*self.pending_updates(allow_expunge=allow_expunge), *out]

    def _preauth_account(self) -> Account | None:
        """Whom a PREAUTH greeting logs in: ``config.preauth_user``, else the only account."""
        if self.config.preauth_user is not None:
            return self.store.account(self.config.preauth_user)
        accounts = list(self.store.accounts.values())
        return accounts[0] if len(accounts) == 1 else None

    def _authenticate_as(self, account: Account | None) -> None:
        self.account = account
        self.username = account.username if account else None
        self.state = State.AUTHENTICATED
        if account is not None:
            account.begin_session()

    def select(self, view: SelectedView | None) -> None:
        if self.view is not None and self._folder_changed in self.view.folder.observers:
            self.view.folder.observers.remove(self._folder_changed)
        self.view = view
        self.state = State.SELECTED if view is not None else State.AUTHENTICATED

    def start_idle(self, tag: str) -> None:
        self.idle_tag = tag
        if self.view is not None:
            self.view.folder.observers.append(self._folder_changed)

    def _folder_changed(self, folder) -> None:
        if self.on_folder_change is not None:
            self.on_folder_change()

    def close(self) -> None:
        """The connection is gone: detach from folders."""
        self.select(None)
        self.state = State.LOGOUT

    @staticmethod
    def _wrong_state_text(states: frozenset) -> str:
        if states == NOT_AUTH:
            return "Command not allowed in authenticated state."  # LOGIN after login
        if states == SELECTED:
            return "No mailbox selected."
        return "Please log in first."


# -- argument helpers shared by handler modules ---------------------------------------------


def args(cmd: Command, low: int, high: int | None = None) -> tuple:
    """The command's arguments, checked for count."""
    high = low if high is None else high
    if not low <= len(cmd.args) <= high:
        raise BadCommand("Missing arguments." if len(cmd.args) < low else "Too many arguments.")
    return cmd.args


def astring(value, what: str = "argument") -> bytes:
    """An atom or string argument as bytes."""
    if isinstance(value, String):
        return bytes(value)
    if isinstance(value, (Atom, str)):
        return str(value).encode()
    raise BadCommand(f"Invalid {what}.")


def text(value, what: str = "argument") -> str:
    raw = astring(value, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadCommand(f"Invalid UTF-8 in {what}.") from exc


def atom(value, what: str = "argument") -> str:
    if isinstance(value, (Atom, str)) and not isinstance(value, bytes):
        return str(value)
    raise BadCommand(f"Invalid {what}.")


def flags_arg(value) -> list[str]:
    """Flags a client sets (STORE, APPEND). ``\\Recent`` is not one: only the server sets it."""
    items: Iterable = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        name = atom(item, "flags")
        if name.startswith("\\"):
            canonical = {"\\ANSWERED": "\\Answered", "\\FLAGGED": "\\Flagged", "\\DELETED": "\\Deleted",
                         "\\SEEN": "\\Seen", "\\DRAFT": "\\Draft"}.get(name.upper())
            if canonical is None:
                raise BadCommand(f"Invalid system flag {name.upper()}")
            name = canonical
        out.append(name)
    return out

