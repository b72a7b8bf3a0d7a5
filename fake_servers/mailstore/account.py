"""An account: credentials, folders, and the UIDVALIDITY policy applied at each session."""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

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
    EXPIRED = "expired"  # an OAuth token this account was issued, no longer valid


@dataclass
class IssuedToken:
    """An OAuth access token the fake token endpoint issued, and when it stops working.

    Besides a deadline in seconds, a token may be limited to a number of authentications or
    to the runs up to a given one, so tests and scenarios can expire it deterministically.
    """

    token: str
    expires_at: float | None = None  # on ``clock``; None: no deadline
    uses_left: int | None = None  # successful authentications still allowed; None: any number
    until_run: int | None = None  # valid while current_run() <= until_run
    current_run: Callable[[], int] | None = None
    clock: Callable[[], float] = time.monotonic
    uses: int = 0  # successful authentications so far

    def expired(self) -> bool:
        if self.expires_at is not None and self.clock() >= self.expires_at:
            return True
        if self.uses_left is not None and self.uses_left <= 0:
            return True
        if self.until_run is not None and self.current_run is not None and self.current_run() > self.until_run:
            return True
        return False


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
    oauth_tokens: tuple[str, ...] = ()  # bearer tokens XOAUTH2 accepts
    require_app_password: bool = False
    delimiter: str = "/"
    uidvalidity_policy: UidValidityPolicy = UidValidityPolicy.STABLE
    uidvalidity_mode: str = UidValidityMode.RENUMBER
    seed: int = 0
    folders: dict[str, Folder] = field(default_factory=dict)
    sessions: int = 0
    issued_tokens: dict[str, IssuedToken] = field(default_factory=dict)  # by token

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

    def register_token(self, token: str, *, lifetime: float | None = None, uses: int | None = None,
                       until_run: int | None = None, current_run: Callable[[], int] | None = None,
                       clock: Callable[[], float] = time.monotonic) -> IssuedToken:
        """Accept ``token`` for this account until it expires (see :class:`IssuedToken`)."""
        issued = IssuedToken(token, None if lifetime is None else clock() + lifetime, uses, until_run, current_run,
                             clock)
        self.issued_tokens[token] = issued
        return issued

    def expire_token(self, token: str) -> None:
        """Make an issued token expired now (a scenario revoking it between runs)."""
        issued = self.issued_tokens.get(token)
        if issued is not None:
            issued.expires_at = issued.clock()

    def check_token(self, token: str) -> AuthResult:
        """Whether a bearer token logs in as this account; a successful check uses it once.
        Static ``oauth_tokens`` never expire."""
        if token in self.oauth_tokens:
            return AuthResult.OK
        issued = self.issued_tokens.get(token)
        if issued is None:
            return AuthResult.INVALID
        if issued.expired():
            return AuthResult.EXPIRED
        issued.uses += 1
        if issued.uses_left is not None:
            issued.uses_left -= 1
        return AuthResult.OK

    def add_folder(self, name: str, special_use: Iterable[str] = (), subscribed: bool = True) -> Folder:
        """Create ``name``. Missing parents are not created: they exist only as implied,
        non-selectable names (``\\Noselect`` in LIST), as on Dovecot."""
        if name.upper() == "INBOX":
            name = "INBOX"
        if name in self.folders:
            return self.folders[name]
        folder = Folder(name, uidvalidity=self._allocate_uidvalidity(), special_use=special_use,
                        subscribed=subscribed)
        folder.allocate_uidvalidity = self._allocate_uidvalidity
        self.folders[name] = folder
        return folder

    def _allocate_uidvalidity(self, folder: Folder | None = None) -> int:
        """A UIDVALIDITY never handed out before in this account, and above ``folder``'s
        current one: a folder deleted and created again, or renumbered, never reuses one
        (RFC 3501 §2.3.1.1)."""
        self._next_uidvalidity = max(self._next_uidvalidity, folder.uidvalidity if folder else 0) + 1
        return self._next_uidvalidity

    def folder(self, name: str) -> Folder | None:
        return self.folders.get("INBOX" if name.upper() == "INBOX" else name)

    def delete_folder(self, name: str) -> None:
        del self.folders[name]

    def inferiors(self, name: str) -> list[str]:
        """Existing folders below ``name`` in the hierarchy."""
        prefix = name + self.delimiter
        return [n for n in self.folders if n.startswith(prefix)]

    def rename_folder(self, old: str, new: str) -> None:
        """RENAME as RFC 3501 §6.3.5 has it: inferior folders move along (``old`` itself may
        be only an implied parent); renaming INBOX moves its messages into a new folder
        ``new`` and leaves INBOX, empty, where it is (its inferiors stay too)."""
        if old == "INBOX":
            inbox = self.folders["INBOX"]
            target = self.add_folder(new, subscribed=False)
            for msg in inbox.messages:
                target.append_copy(msg, notify=False)
            target.changed()
            inbox.expunge(list(inbox.uids))
            return
        renames = ([old] if old in self.folders else []) + self.inferiors(old)
        moved = {name: self.folders.pop(name) for name in renames}
        for name, folder in moved.items():
            folder.name = new + name[len(old):]
            self.folders[folder.name] = folder

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
