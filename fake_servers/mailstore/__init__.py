"""In-memory provider state: accounts, folders, messages, UIDVALIDITY policies."""

from .account import Account, AuthResult, IssuedToken, UidValidityPolicy
from .folder import SPECIAL_USE, SYSTEM_FLAGS, Folder, UidValidityMode
from .generator import SeededMessages, fill
from .message import Message
from .store import MailStore

__all__ = [
    "Account", "AuthResult", "Folder", "IssuedToken", "MailStore", "Message", "SPECIAL_USE", "SYSTEM_FLAGS",
    "SeededMessages", "UidValidityMode", "UidValidityPolicy", "fill",
]
