"""Seeded, lazily generated mailboxes: 100,000 messages without 100,000 messages' bytes.

Each message's bytes are a pure function of (seed, index), regenerated when read, so a
folder holds only the small per-message attributes. The same seed gives the same mailbox
on every machine, which is what makes a large-mailbox scenario replayable.
"""

from __future__ import annotations

import datetime
import hashlib
import random

from .folder import Folder

_WORDS = (
    b"sync mailbox folder message server client invoice meeting report travel update project "
    b"review draft budget schedule notes team weekly quarterly summary request reply forward"
).split()
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")


class SeededMessages:
    """Content source: message ``i`` of the mailbox seeded ``seed``, exactly ``size`` bytes.

    The header (sender, subject, date, Message-ID) is unique per message; the body is a
    shared block of words cut to size, so regenerating a message on every read stays cheap.
    """

    def __init__(self, seed: int, size: int = 4096, domain: str = "example.test") -> None:
        if size < 512:
            raise ValueError("generated messages are at least 512 bytes")
        self.seed = seed
        self.size = size
        self.domain = domain.encode()
        words = random.Random(seed).choices(_WORDS, k=size // 4)
        lines = [b" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
        self._body = b"\r\n".join(lines) + b"\r\n"
        while len(self._body) < size:
            self._body += self._body

    def content(self, index: int) -> bytes:
        digest = hashlib.blake2b(b"%d:%d" % (self.seed, index), digest_size=16).digest()
        sender = _WORDS[digest[0] % len(_WORDS)]
        when = _EPOCH + datetime.timedelta(minutes=index)
        header = b"".join((
            b"From: ", sender, b" <", sender, b"@", self.domain, b">\r\n",
            b"To: user@", self.domain, b"\r\n",
            b"Subject: ", _WORDS[digest[1] % len(_WORDS)], b" ", _WORDS[digest[2] % len(_WORDS)], b" ",
            _WORDS[digest[3] % len(_WORDS)], b" #%d\r\n" % index,
            b"Date: %s, %02d %s %d %02d:%02d:00 +0000\r\n" % (
                _DAYS[when.weekday()], when.day, _MONTHS[when.month - 1], when.year, when.hour, when.minute),
            b"Message-ID: <", digest.hex().encode(), b".%d@" % index, self.domain, b">\r\n",
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        ))
        body = self._body[: self.size - len(header) - 2]
        if body.endswith(b"\r"):  # never leave a bare CR where the cut fell inside a CRLF
            body = body[:-1] + b" "
        return header + body + b"\r\n"

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
