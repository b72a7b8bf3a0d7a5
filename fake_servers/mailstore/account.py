"""An account: credentials, folders, and the UIDVALIDITY policy applied at each session."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Iterable

from .folder import Folder, UidValidityMode

DEFAULT_FOLDERS = (
    ("INBOX", ()),
    ("Sent", ("\\Sent",)),
    ("Drafts", ("\\Drafts",)),
    ("Trash", ("\\Trash",)),
    ("Junk", ("\\Junk",)),
    ("Archive", ("\\Archive",)),
)


class AuthResult(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    APP_PASSWORD_REQUIRED = "app-password-required"  # the account password is right but refused


class UidValidityPolicy(str, enum.Enum):
    """When UIDVALIDITY changes (catalog section 4)."""

    STABLE = "stable"
    NEXT_SESSION = "next-session"  # once, at the next session's login
    EVERY_SESSION = "every-session"  # a misconfigured server: at every login


@dataclass
class Account:
    """One user of the fake provider.

    Usernames and passwords are Unicode strings compared exactly (after UTF-8 decoding of
    what the client sent), so a client that mangles ``jürgen.müller`` fails to log in.
    """

    username: str
    password: str
    app_passwords: tuple[str, ...] = ()
    require_app_password: bool = False
    delimiter: str = "/"
    uidvalidity_policy: UidValidityPolicy = UidValidityPolicy.STABLE
    uidvalidity_mode: str = UidValidityMode.RENUMBER
    seed: int = 0
    folders: dict[str, Folder] = field(default_factory=dict)
    sessions: int = 0

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1:
            raise ValueError(f"a hierarchy delimiter is one character, not {self.delimiter!r}")
        self.uidvalidity_policy = UidValidityPolicy(self.uidvalidity_policy)
        self._rng = random.Random(self.seed)
        self._next_uidvalidity = 1_700_000_000 + (self.seed % 1_000_000)

    def check_password(self, secret: str) -> AuthResult:
        if secret in self.app_passwords:
            return AuthResult.OK
        if secret == self.password:
            return AuthResult.APP_PASSWORD_REQUIRED if self.require_app_password else AuthResult.OK
        return AuthResult.INVALID

    def add_folder(self, name: str, special_use: Iterable[str] = (), subscribed: bool = True) -> Folder:
        """Create ``name`` (and its missing parents, as \\NoSelect-free folders)."""
        if name.upper() == "INBOX":
            name = "INBOX"
        if name in self.folders:
            return self.folders[name]
        self._next_uidvalidity += 1
        folder = Folder(name, uidvalidity=self._next_uidvalidity, special_use=special_use, subscribed=subscribed)
        self.folders[name] = folder
        return folder

    def folder(self, name: str) -> Folder | None:
        return self.folders.get("INBOX" if name.upper() == "INBOX" else name)

    def delete_folder(self, name: str) -> None:
        del self.folders[name]

    def rename_folder(self, old: str, new: str) -> None:
        folder = self.folders.pop(old)
        folder.name = new
        self.folders[new] = folder

    def begin_session(self) -> None:
        """Called at each successful login: apply the UIDVALIDITY policy."""
        self.sessions += 1
        policy = self.uidvalidity_policy
        if policy is UidValidityPolicy.STABLE:
            return
        if policy is UidValidityPolicy.NEXT_SESSION:
            self.uidvalidity_policy = UidValidityPolicy.STABLE
        elif self.sessions == 1:
            return  # the first session defines the first epoch
        for folder in self.folders.values():
            folder.change_uidvalidity(self.uidvalidity_mode, self._rng)
