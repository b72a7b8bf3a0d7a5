"""Fault actions that change the provider's state rather than the bytes on the wire."""

from __future__ import annotations

from typing import Iterable

from ..faults import Action
from ..mailstore import Account, MailStore
from .config import ImapConfig


def _accounts(store: MailStore, account: Account | None) -> list[Account]:
    return [account] if account is not None else list(store.accounts.values())


def apply(action: Action, store: MailStore, account: Account | None, configs: Iterable[ImapConfig] = ()) -> None:
    """Apply a state action to the session's account (or every account before login).

    ``capabilities`` changes every config in ``configs``: the servers of one provider change
    together, from now on.
    """
    if action.name == "capabilities":
        change_capabilities(action, configs)
        return
    for acct in _accounts(store, account):
        folder = acct.folder(action.get("folder", "INBOX"))
        if folder is None:
            continue
        if action.name == "uidvalidity":
            folder.change_uidvalidity(action.get("mode", "renumber"), acct._rng)
        elif action.name == "expunge":
            uids = action.get("uids")
            if uids is None:
                count = int(action.get("count", 1))
                uids = folder.uids[:count]
            folder.expunge(uids)
        elif action.name == "new_mail":
            raw = action.get("raw")
            for i in range(int(action.get("count", 1))):
                body = raw.encode() if raw else (
                    b"From: sender@example.test\r\nTo: %s\r\nSubject: new mail %d\r\n"
                    b"Message-ID: <new-%d-%d@example.test>\r\n\r\nNew mail.\r\n"
                    % (acct.username.encode(), i + 1, folder.uidnext, i)
                )
                folder.append(body)


def change_capabilities(action: Action, configs: Iterable[ImapConfig]) -> None:
    """Add, then remove, capabilities; a later change undoes an earlier opposite one."""
    add = list(action.get("add", []))
    remove = list(action.get("remove", []))
    added = {c.upper() for c in add}
    removed = {c.upper() for c in remove}
    for cfg in configs:
        keep_added = [c for c in cfg.capabilities_add if c.upper() not in removed]
        keep_removed = [c for c in cfg.capabilities_remove if c.upper() not in added]
        cfg.capabilities_add = tuple(dict.fromkeys(keep_added + [c for c in add if c.upper() not in removed]))
        cfg.capabilities_remove = tuple(dict.fromkeys(keep_removed + remove))
