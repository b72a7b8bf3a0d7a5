"""The fake provider's state: its accounts. Shared by the IMAP and SMTP fakes of one run."""

from __future__ import annotations

from typing import Iterable

from .account import DEFAULT_FOLDERS, Account


class MailStore:
    """Accounts by username. Touch it on the runtime's loop thread only."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}

    def add_account(
        self,
        username: str,
        password: str,
        *,
        folders: Iterable[tuple[str, Iterable[str]]] = DEFAULT_FOLDERS,
        **options,
    ) -> Account:
        if username in self.accounts:
            raise ValueError(f"account {username!r} exists already")
        account = Account(username, password, **options)
        for name, special_use in folders:
            account.add_folder(name, special_use)
        if account.folder("INBOX") is None:
            account.add_folder("INBOX")
        self.accounts[username] = account
        return account

    def account(self, username: str) -> Account | None:
        return self.accounts.get(username)
