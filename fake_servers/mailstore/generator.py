"""Seeded, lazily generated mailboxes: 100,000 messages without 100,000 messages' bytes.

Each message's bytes are a pure function of (seed, index), regenerated when read, so a
folder holds only the small per-message attributes. The same seed gives the same mailbox
on every machine, which is what makes a large-mailbox scenario replayable.
"""

from __future__ import annotations

import datetime
import hashlib

from .folder import Folder

_WORDS = (
    b"sync mailbox folder message server client invoice meeting report travel update project "
    b"review draft budget schedule notes team weekly quarterly summary request reply forward"
).split()
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


class SeededMessages:
    """Content source: message ``i`` of the mailbox seeded ``seed``, about ``size`` bytes."""

    def __init__(self, seed: int, size: int = 4096, domain: str = "example.test") -> None:
        if size < 512:
            raise ValueError("generated messages are at least 512 bytes")
        self.seed = seed
        self.size = size
        self.domain = domain.encode()

    def content(self, index: int) -> bytes:
        digest = hashlib.blake2b(f"{self.seed}:{index}".encode(), digest_size=16).digest()
        sender = _WORDS[digest[0] % len(_WORDS)]
        topic = b" ".join(_WORDS[b % len(_WORDS)] for b in digest[1:5])
        date = (_EPOCH + datetime.timedelta(minutes=index)).strftime("%a, %d %b %Y %H:%M:%S +0000").encode()
        header = b"".join(
            (
                b"From: " + sender + b" <" + sender + b"@" + self.domain + b">\r\n",
                b"To: user@" + self.domain + b"\r\n",
                b"Subject: " + topic + b" #" + str(index).encode() + b"\r\n",
                b"Date: " + date + b"\r\n",
                b"Message-ID: <" + digest.hex().encode() + b"." + str(index).encode() + b"@" + self.domain + b">\r\n",
                b"MIME-Version: 1.0\r\n",
                b"Content-Type: text/plain; charset=us-ascii\r\n",
                b"\r\n",
            )
        )
        line = b" ".join(_WORDS[b % len(_WORDS)] for b in digest) + b"\r\n"
        remaining = self.size - len(header)
        body = (line * (remaining // len(line) + 1))[: max(remaining - 2, 0)] + b"\r\n"
        return header + body

    def internal_date(self, index: int) -> datetime.datetime:
        return _EPOCH + datetime.timedelta(minutes=index, seconds=30)


def fill(folder: Folder, count: int, *, seed: int = 0, size: int = 4096, flags: frozenset[str] = frozenset()) -> SeededMessages:
    """Append ``count`` generated messages to ``folder``; their bytes are made when read."""
    source = SeededMessages(seed, size)
    start = len(folder)
    for i in range(start, start + count):
        folder.append(
            None, source=source, index=i, size=size, internal_date=source.internal_date(i), flags=flags, notify=False
        )
    folder.changed()
    return source
