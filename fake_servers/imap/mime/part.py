"""The Part record, the MIME flags of a part, and the per-message facts cache."""

from __future__ import annotations


TEXT, MULTIPART, RFC822, DIGEST, IS_MIME = 1, 2, 4, 8, 16


class Part:
    """One MIME part as offsets into the raw message.

    The header is ``raw[start:hdr_end]`` (its empty line included), the body is
    ``raw[hdr_end:end]``. A multipart has its body parts as `children`; a message/rfc822 part
    has one child, the encapsulated message.
    """

    __slots__ = ("start", "hdr_end", "end", "flags", "children", "content")

    def __init__(self, start: int, hdr_end: int = 0, end: int = 0, flags: int = 0):
        self.start = start
        self.hdr_end = hdr_end
        self.end = end
        self.flags = flags
        self.children: list[Part] = []
        self.content = None  # its Content-* data, worked out when first needed

    def __repr__(self) -> str:
        return f"Part({self.start}, {self.hdr_end}, {self.end}, flags={self.flags}, children={self.children})"


class _Facts:
    """What we work out once per message: its part tree, ENVELOPE, BODY, BODYSTRUCTURE."""

    __slots__ = ("tree", "envelope", "body", "bodystructure")

    def __init__(self):
        self.tree = self.envelope = self.body = self.bodystructure = None


class _Cache:
    """Facts per message, keyed by the message bytes (Python hashes a bytes object once).

    Bounded by the size of the messages it keeps alive, so large or many messages cannot
    make it hold gigabytes; the oldest entries go first. Messages over a quarter of the
    budget are not kept at all.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self.data: dict[bytes, _Facts] = {}

    def facts(self, raw: bytes) -> _Facts:
        found = self.data.get(raw)
        if found is not None:
            return found
        found = _Facts()
        if len(raw) <= self.max_bytes // 4:
            while self.size + len(raw) > self.max_bytes and self.data:
                old = next(iter(self.data))
                del self.data[old]
                self.size -= len(old)
            self.data[raw] = found
            self.size += len(raw)
        return found

    def clear(self) -> None:
        self.data.clear()
        self.size = 0


_cache = _Cache(128 << 20)
