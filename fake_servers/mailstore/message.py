"""A stored message: byte-exact content plus the IMAP attributes a server keeps for it."""

from __future__ import annotations

import datetime
from typing import Protocol


class ContentSource(Protocol):
    """Produces a message's bytes on demand, so huge mailboxes need not sit in memory."""

    def content(self, index: int) -> bytes: ...


class Message:
    """One message in one folder.

    ``raw`` is returned exactly as it was stored: line endings, NUL bytes, 8-bit headers and
    broken MIME are kept, because a client is judged on storing exactly what was served.
    ``flags`` is a frozenset (system flags spelled ``\\Seen``); replace it, never mutate it.
    """

    __slots__ = ("uid", "flags", "internal_date", "modseq", "size", "_raw", "_source", "_index")

    def __init__(
        self,
        uid: int,
        raw: bytes | None,
        *,
        flags: frozenset[str] = frozenset(),
        internal_date: datetime.datetime,
        modseq: int = 1,
        source: ContentSource | None = None,
        index: int = 0,
        size: int | None = None,
    ) -> None:
        if raw is None and source is None:
            raise ValueError("a message needs its bytes or a source for them")
        self.uid = uid
        self.flags = frozenset(flags)
        self.internal_date = internal_date
        self.modseq = modseq
        self._raw = raw
        self._source = source
        self._index = index
        self.size = len(raw) if raw is not None else (size if size is not None else len(source.content(index)))

    @property
    def raw(self) -> bytes:
        if self._raw is not None:
            return self._raw
        return self._source.content(self._index)

    # What a copy needs to share the content without reading it.
    @property
    def stored_raw(self) -> bytes | None:
        return self._raw

    @property
    def source(self) -> ContentSource | None:
        return self._source

    @property
    def index(self) -> int:
        return self._index

    def __repr__(self) -> str:
        return f"<Message uid={self.uid} size={self.size} flags={sorted(self.flags)}>"
