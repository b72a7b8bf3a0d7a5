"""A folder (IMAP mailbox): ordered messages, UIDVALIDITY/UIDNEXT, MODSEQ and change observers."""

from __future__ import annotations

import bisect
import datetime
import random
from typing import Callable, Iterable

from .message import ContentSource, Message

SPECIAL_USE = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"})
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class UidValidityMode:
    """How UIDs change when UIDVALIDITY changes."""

    KEEP = "keep"  # same UIDs, new UIDVALIDITY (harmless to a client that re-syncs)
    RENUMBER = "renumber"  # UIDs reassigned 1..N in the same order
    SHUFFLE = "shuffle"  # messages reordered (seeded) and renumbered 1..N

    ALL = (KEEP, RENUMBER, SHUFFLE)


class Folder:
    """Messages in UID order; sequence number ``n`` is ``messages[n-1]``.

    Every change bumps ``version`` and calls the observers (selected sessions, IDLE), with
    the folder as the argument; observers compare against what they last told their client.
    """

    def __init__(
        self,
        name: str,
        *,
        uidvalidity: int,
        special_use: Iterable[str] = (),
        subscribed: bool = True,
        selectable: bool = True,
    ) -> None:
        unknown = set(special_use) - SPECIAL_USE
        if unknown:
            raise ValueError(f"unknown special-use attribute(s) {sorted(unknown)}; valid: {sorted(SPECIAL_USE)}")
        self.name = name
        self.special_use = frozenset(special_use)
        self.subscribed = subscribed
        self.selectable = selectable
        self.uidvalidity = uidvalidity
        self.uidnext = 1
        self.highest_modseq = 1
        self.messages: list[Message] = []
        self._uids: list[int] = []
        self.version = 0
        self.observers: list[Callable[["Folder"], None]] = []
        # Gives the next UIDVALIDITY; the account sets it so that values are never reused.
        self.allocate_uidvalidity: Callable[["Folder"], int] | None = None

    # -- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def uids(self) -> list[int]:
        """Ascending UIDs, parallel to :attr:`messages` (do not modify)."""
        return self._uids

    def by_uid(self, uid: int) -> Message | None:
        i = bisect.bisect_left(self._uids, uid)
        if i < len(self._uids) and self._uids[i] == uid:
            return self.messages[i]
        return None

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self._uids, uid)
        if i < len(self._uids) and self._uids[i] == uid:
            return i + 1
        return None

    def count(self, flag: str, present: bool = True) -> int:
        return sum(1 for m in self.messages if (flag in m.flags) == present)

    def first_unseen(self) -> int | None:
        for i, m in enumerate(self.messages):
            if "\\Seen" not in m.flags:
                return i + 1
        return None

    # -- changing ------------------------------------------------------------------------

    def append(
        self,
        raw: bytes | None = None,
        *,
        flags: Iterable[str] = (),
        internal_date: datetime.datetime | None = None,
        source: ContentSource | None = None,
        index: int = 0,
        size: int | None = None,
        notify: bool = True,
    ) -> Message:
        """Store a new message with the next UID."""
        if internal_date is None:
            internal_date = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.highest_modseq += 1
        msg = Message(
            self.uidnext,
            raw,
            flags=frozenset(f for f in flags if f != "\\Recent"),
            internal_date=internal_date,
            modseq=self.highest_modseq,
            source=source,
            index=index,
            size=size,
        )
        self.uidnext += 1
        self.messages.append(msg)
        self._uids.append(msg.uid)
        if notify:
            self.changed()
        return msg

    def append_copy(self, msg: Message, *, notify: bool = True) -> Message:
        """Store a copy of ``msg`` (from any folder) with the next UID, keeping its flags,
        internal date and bytes; a generated message stays generated, not materialised."""
        return self.append(msg.stored_raw, flags=msg.flags, internal_date=msg.internal_date,
                           source=msg.source, index=msg.index, size=msg.size, notify=notify)

    def set_flags(self, msg: Message, flags: Iterable[str]) -> bool:
        """Replace a message's flags; returns whether anything changed (MODSEQ bumps if so)."""
        new = frozenset(f for f in flags if f != "\\Recent")
        if new == msg.flags:
            return False
        msg.flags = new
        self.highest_modseq += 1
        msg.modseq = self.highest_modseq
        self.changed()
        return True

    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """Remove messages (default: those flagged ``\\Deleted``); returns removed UIDs."""
        doomed = set(uids) if uids is not None else {m.uid for m in self.messages if "\\Deleted" in m.flags}
        if not doomed:
            return []
        removed = [m.uid for m in self.messages if m.uid in doomed]
        self.messages = [m for m in self.messages if m.uid not in doomed]
        self._uids = [m.uid for m in self.messages]
        self.highest_modseq += 1
        self.changed()
        return removed

    def change_uidvalidity(self, mode: str = UidValidityMode.RENUMBER, rng: random.Random | None = None) -> None:
        """Start a new UIDVALIDITY epoch, as a rebuilt or misconfigured server does."""
        if mode not in UidValidityMode.ALL:
            raise ValueError(f"unknown UIDVALIDITY mode {mode!r}; valid: {', '.join(UidValidityMode.ALL)}")
        allocate = self.allocate_uidvalidity
        self.uidvalidity = allocate(self) if allocate is not None else self.uidvalidity + 1
        if mode == UidValidityMode.SHUFFLE:
            (rng or random.Random(self.uidvalidity)).shuffle(self.messages)
        if mode in (UidValidityMode.RENUMBER, UidValidityMode.SHUFFLE):
            for uid, msg in enumerate(self.messages, start=1):
                msg.uid = uid
            self.uidnext = len(self.messages) + 1
        self._uids = [m.uid for m in self.messages]
        self.changed()

    def changed(self) -> None:
        self.version += 1
        for observer in list(self.observers):
            observer(self)
