"""Accepted messages land in the MailStore, so a scenario can read them back over IMAP.

A provider such as Gmail files a submitted message in the sender's Sent folder itself (a
client that also APPENDs it makes a duplicate); local recipients find it in their INBOX.
``SmtpConfig.deliver_to`` says which of the two happen.
"""

from __future__ import annotations

from typing import Iterable

from ..mailstore import Account, MailStore
from ..mailstore.folder import Folder


def sent_folder(account: Account) -> Folder:
    """The account's ``\\Sent`` special-use folder, else "Sent" (created when missing)."""
    for folder in account.folders.values():
        if "\\Sent" in folder.special_use:
            return folder
    return account.folder("Sent") or account.add_folder("Sent", ("\\Sent",))


def deliver(store: MailStore, data: bytes, sender_account: str | None, recipients: Iterable[str],
            targets: Iterable[str]) -> list[str]:
    """Store ``data``; returns where it went ("user:folder"), for the wire record's notes."""
    where = []
    targets = tuple(targets)
    if "sent" in targets and sender_account is not None:
        account = store.account(sender_account)
        if account is not None:
            folder = sent_folder(account)
            folder.append(data, flags=("\\Seen",))
            where.append(f"{account.username}:{folder.name}")
    if "inbox" in targets:
        for rcpt in dict.fromkeys(recipients):
            account = store.account(rcpt) or _by_address(store, rcpt)
            if account is not None:
                account.folder("INBOX").append(data)
                where.append(f"{account.username}:INBOX")
    return where


def _by_address(store: MailStore, address: str) -> Account | None:
    """Usernames are compared exactly at login; an address's domain is case-insensitive."""
    local, _, domain = address.rpartition("@")
    for name, account in store.accounts.items():
        other_local, _, other_domain = name.rpartition("@")
        if other_local == local and other_domain.lower() == domain.lower():
            return account
    return None
