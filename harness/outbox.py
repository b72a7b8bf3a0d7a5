"""The outbox: messages the harness puts in MAILCONFORM_OUTBOX for a client to submit over SMTP.

A scenario lists them as ``[[outbox]]`` tables: one message given byte-exact (``raw`` or
``file``), or ``generate = N`` messages made here. Generated messages are proper RFC 5322
(CRLF, folded headers, lines under 998 octets), deterministic for a given run seed, and each
carries a unique Message-ID: the SMTP checks match what the fake received to the outbox by
Message-ID, so every outbox message has one (the loader refuses a given message without).

The recipients of a message are the addresses of its To, Cc and Bcc headers, as
``sendmail -t`` reads them; its sender is its From.

>>> item = OutboxItem(generate=1, to=("bob@example.test",))
>>> [(name, raw[:6]) for name, raw in item.messages("alice@example.test", seed=0, index=0, scenario="x", first=1)]
[('001-generated.eml', b'From: ')]
"""

from __future__ import annotations

import datetime
import hashlib
import random
import re
from dataclasses import dataclass
from email.utils import format_datetime, getaddresses
from typing import Iterable

DEFAULT_TO = ("bob@example.test",)
UTF8_ADDRESS = "josé.müller@example.test"  # a non-ASCII local part: needs SMTPUTF8 (RFC 6531)
EPOCH = datetime.datetime(2024, 1, 1, 9, 0, tzinfo=datetime.timezone.utc)
LINE = 76  # body line length of generated messages (RFC 5322 §2.1.1 recommends at most 78)
_WORDS = ("mail", "conform", "outbox", "submission", "relay", "envelope", "header", "body", "message",
          "recipient", "sender", "transfer", "agent", "queue", "retry", "deliver", "status", "reply")
_WORDS_8BIT = ("Grüße", "aus", "Köln", "naïve", "café", "déjà", "vu", "Ærø", "smörgåsbord", "Zürich",
               "façade", "jalapeño", "€uro", "Ω", "日本語", "テスト")


@dataclass(frozen=True)
class OutboxItem:
    """One ``[[outbox]]`` table: a given message, or ``generate`` made-up ones."""

    raw: bytes | None = None  # the message, byte-exact (from ``raw`` or ``file``)
    generate: int = 0  # how many messages to make
    name: str | None = None  # the slug in the file names (NNN-<slug>.eml)
    size: int = 0  # generated: total size in bytes of each message (0: a few hundred bytes)
    to: tuple[str, ...] = ()  # generated: To addresses (default bob@example.test)
    recipients: int = 0  # generated: this many more, made-up, recipient addresses per message
    eight_bit: bool = False  # generated: an 8-bit UTF-8 body (Content-Transfer-Encoding: 8bit)
    utf8_address: bool = False  # generated: one recipient with a non-ASCII local part
    run: int = 1  # the run before which the files appear

    @property
    def count(self) -> int:
        return 1 if self.raw is not None else self.generate

    def slug(self) -> str:
        text = self.name or ("message" if self.raw is not None else "generated")
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "message"

    def messages(self, sender: str, *, seed: int, index: int, scenario: str, first: int) -> list[tuple[str, bytes]]:
        """(file name, bytes) of this table's messages; ``first`` numbers the first file."""
        if self.raw is not None:
            return [(f"{first:03d}-{self.slug()}.eml", self.raw)]
        return [(f"{first + k:03d}-{self.slug()}.eml", self._generated(sender, seed, index, scenario, first + k))
                for k in range(self.generate)]

    def _generated(self, sender: str, seed: int, index: int, scenario: str, number: int) -> bytes:
        key = f"{scenario}|{seed}|{index}|{number}".encode("utf-8")
        digest = hashlib.blake2b(key, digest_size=8).hexdigest()
        rng = random.Random(int(digest, 16))
        to = list(self.to) if self.to or self.recipients else list(DEFAULT_TO)
        to += [f"recipient-{number:03d}-{k:04d}@example.net" for k in range(1, self.recipients + 1)]
        if self.utf8_address:
            to.append(UTF8_ADDRESS)
        eight = self.eight_bit
        headers = [
            ("From", sender),
            ("To", ", ".join(to)),
            ("Subject", f"Outbox message {number} ({scenario})"),
            ("Date", format_datetime(EPOCH + datetime.timedelta(minutes=number, seconds=seed % 60))),
            ("Message-ID", f"<{digest}.{number}@outbox.mailconform.test>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", f"text/plain; charset={'utf-8' if eight or self.utf8_address else 'us-ascii'}"),
            ("Content-Transfer-Encoding", "8bit" if eight else "7bit"),
        ]
        head = b"".join(_fold(name, value) for name, value in headers) + b"\r\n"
        intro = (f"Message {number} of the outbox of {scenario}.\r\n").encode("utf-8")
        if eight:
            intro += "Grüße aus Köln: this body is 8-bit UTF-8 on purpose.\r\n".encode("utf-8")
        body = intro + _filler(rng, max(0, self.size - len(head) - len(intro)), eight)
        return head + body


def _fold(name: str, value: str) -> bytes:
    """``Name: value`` CRLF, folded at the spaces after commas to lines under 78 characters."""
    line, out = f"{name}:", []
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 76 and line.strip() and not line.endswith(":"):
            out.append(line)
            line = ""
        line += " " + word
    out.append(line)
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def _filler(rng: random.Random, size: int, eight: bool) -> bytes:
    """Exactly ``size`` bytes of text lines ending in CRLF (deterministic for ``rng``)."""
    if size < 2:
        return b""
    words = _WORDS + (_WORDS_8BIT if eight else ())
    lines = []
    block_size = min(size, 65536)
    total = 0
    while total < block_size:
        line = ""
        while True:
            word = rng.choice(words)
            if len((line + " " + word).encode("utf-8")) > LINE:
                break
            line = f"{line} {word}" if line else word
        encoded = line.encode("utf-8") + b"\r\n"
        lines.append(encoded)
        total += len(encoded)
    block = b"".join(lines)
    data = block * (size // len(block)) + block[: size % len(block)]
    # end on a whole line: the partial last line becomes ASCII filler of the same length
    last = data.rfind(b"\r\n")
    cut = last + 2 if last >= 0 else 0
    rest = size - cut
    if rest == 1:  # one byte cannot hold a line ending: widen the previous line instead
        data = data[: cut - 2] + b"x\r\n"
    elif rest >= 2:
        data = data[:cut] + b"x" * (rest - 2) + b"\r\n"
    else:
        data = data[:cut]
    return data


# -- reading messages --------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def headers(raw: bytes) -> list[tuple[str, str]]:
    """(name, unfolded value) of every header field, decoded as UTF-8 (tolerantly)."""
    end = _HEADER_END.search(raw)
    block = raw[: end.start()] if end else raw
    fields: list[list[str]] = []
    for line in re.split(rb"\r?\n", block):
        text = line.decode("utf-8", "replace")
        if text[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + text.strip()
        elif ":" in text:
            name, _, value = text.partition(":")
            fields.append([name.strip(), value.strip()])
    return [(name, value) for name, value in fields]


def header(raw: bytes, name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers(raw) if key.lower() == wanted), None)


def message_id(raw: bytes) -> str | None:
    """The Message-ID, angle brackets included, as written (None when absent or empty)."""
    value = header(raw, "Message-ID")
    return value.strip() or None if value is not None else None


def recipients(raw: bytes) -> list[str]:
    """Every address of the To, Cc and Bcc headers, in order, without duplicates (lower-cased)."""
    values = [value for key, value in headers(raw) if key.lower() in ("to", "cc", "bcc")]
    found = [address(a) for _, a in getaddresses(values) if a]
    return list(dict.fromkeys(a for a in found if a))


def address(text: str) -> str:
    """An address as the checks compare them: without angle brackets or spaces, lower-cased."""
    return text.strip().strip("<>").strip().lower()


def addresses(items: Iterable[str]) -> set[str]:
    return {address(a) for a in items if a}
