"""Fuzzed messages: RFC 5322-ish messages that stress how a client stores mail, from (seed, index).

A fuzzed message mixes what real mail and real bugs contain: odd header names, folded and
very long header lines, raw 8-bit (UTF-8 and Latin-1) and encoded words (valid, unknown
charsets, malformed), Message-IDs without brackets, with spaces, non-ASCII, 2,000 characters
long, empty, repeated, missing, or shared by two messages; multipart bodies nested up to three
deep with odd boundaries, missing final boundaries, preambles, epilogues and boundary
look-alikes; base64 and quoted-printable bodies (some broken); bare LF line endings (whole
messages or single lines), lines of several kilobytes, NUL and other control bytes, and
binary runs. A conforming client stores each one as served (RFC 3501 §6.4.5 BODY[]).

Every message is a pure function of ``(seed, index)``: :func:`generate` rebuilds message
``index`` alone, so a failure is replayed from the two numbers its headers carry::

    X-Fuzz-Index: 17        (first line of every message; unique within a folder)
    X-Fuzz-Seed: 4242
    Subject: fuzz #17 ...   (how harness evidence names it, with its Message-ID)

    $ python -m fake_servers.mailstore.fuzz --seed 4242 --index 17 > fuzz-17.eml

How determinism is guaranteed
-----------------------------
The generator is a set of small composable functions that take every decision through a
:class:`Choices` object: ``integer(low, high)``, ``boolean(p)``, ``choice(options)`` and
``raw(n)``. The fake server uses :class:`SeededChoices`, whose choices are read from a
BLAKE2b counter stream over ``(VERSION, seed, index)``: a fully specified function
that gives the same bytes on every machine, operating system, Python version and run. It
does not use :mod:`random` (CPython guarantees only ``random()`` to be reproducible, not
``randrange``/``choice``/``shuffle``), ``hash()`` (salted per process), set or dict
iteration of unordered data, the clock, or the locale. No message depends on another one,
so message 17 is the same whether 20 or 200 were generated.

Where Hypothesis comes in
-------------------------
The same functions run under Hypothesis: :func:`strategy` passes them a
:class:`HypothesisChoices`, which asks Hypothesis for each decision. Hypothesis then explores
the generator's whole space of decisions (not only the seeds tried) and shrinks a failing
message to a small one; every "off" decision is the one Hypothesis shrinks towards
(``boolean`` shrinks to False, ``integer`` to ``low``, ``choice`` to the first, plainest
option). Hypothesis is not used to make the served corpus because it offers no stable way
to do so: ``.example()`` is random by design, and how its choice sequences map to values
changes between Hypothesis releases, so a corpus drawn through it would differ between
machines with different versions installed and a failing message could not be replayed.

What the generator never makes
------------------------------
A carriage return that is not part of CRLF. The harness compares stores with line endings
normalised (a Maildir client may store LF), and a lone CR before a line end cannot survive
that conversion unambiguously, so a conforming client would look wrong. Nor a second
``X-Fuzz-Index`` line (it must stay greppable and unique).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")

VERSION = 1  # part of the seeded stream's key: bump it when the generator changes what it makes
DOMAIN = b"fuzz.example.test"
BUDGET = 48 * 1024  # bytes of content after which a message stops adding large pieces
MAX_DEPTH = 3  # multipart nesting
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")  # not strftime: that follows the locale
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")
_RESERVED = (b"subject", b"x-fuzz-index", b"x-fuzz-seed")  # header names only the generator sets


# -- where decisions come from -------------------------------------------------------------------


class Choices:
    """Every decision the generator takes. Subclasses give ``integer`` and ``raw``; the rest
    is built on them so that both sources agree on what each decision means."""

    def integer(self, low: int, high: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def raw(self, size: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def boolean(self, p: float) -> bool:
        """True with probability ``p``; the low values (what Hypothesis shrinks to) are False."""
        return self.integer(0, 9999) >= 10000 - round(p * 10000)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def shuffled(self, items: list[T]) -> list[T]:
        items = list(items)
        for i in range(len(items) - 1, 0, -1):  # Fisher-Yates, from our own integers
            j = self.integer(0, i)
            items[i], items[j] = items[j], items[i]
        return items


class SeededChoices(Choices):
    """Decisions read from 64-byte blocks BLAKE2b("mailconform-fuzz/VERSION/seed/index/" + block
    number): reproducible everywhere. ``integer`` reduces 8 bytes modulo the range (the bias is below 2**-40 for
    the ranges used, and it is the same bias everywhere)."""

    BLOCK = 64

    def __init__(self, seed: int, index: int) -> None:
        self._prefix = b"mailconform-fuzz/%d/%d/%d/" % (VERSION, seed, index)
        self._counter = 0
        self._buffer = bytearray()
        self._pos = 0

    def _take(self, n: int) -> bytes:
        while len(self._buffer) - self._pos < n:
            del self._buffer[: self._pos]
            self._pos = 0
            block = hashlib.blake2b(self._prefix + b"%d" % self._counter, digest_size=self.BLOCK).digest()
            self._buffer += block
            self._counter += 1
        out = bytes(self._buffer[self._pos:self._pos + n])
        self._pos += n
        return out

    def integer(self, low: int, high: int) -> int:
        if high < low:
            raise ValueError(f"empty range {low}..{high}")
        if high == low:
            return low
        return low + int.from_bytes(self._take(8), "big") % (high - low + 1)

    def raw(self, size: int) -> bytes:
        return self._take(size)


class HypothesisChoices(Choices):
    """Decisions asked of Hypothesis (inside ``@st.composite``): explored and shrunk by it."""

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self._draw = draw
        self._st = st

    def integer(self, low: int, high: int) -> int:
        if high == low:
            return low
        return self._draw(self._st.integers(low, high))

    def raw(self, size: int) -> bytes:
        return self._draw(self._st.binary(min_size=size, max_size=size))


# -- material ------------------------------------------------------------------------------------

_ASCII_WORDS = tuple((
    b"hello sync mailbox invoice meeting report travel draft budget schedule quarterly reply "
    b"forward notes review lorem ipsum dolor agenda minutes attached please regards thanks"
).split())
_UNICODE = ("Grüße", "naïve", "façade", "Ελληνικά", "Привет", "日本語", "中文", "한국어", "עברית",
            "العربية", "📬📎", "Z̤͔ͧ̑̓", "ｆｕｌｌｗｉｄｔｈ", "e\u0301")
_UTF8_WORDS = tuple(w.encode("utf-8") for w in _UNICODE)
_LATIN1_WORDS = tuple(w.encode("latin-1") for w in ("Grüße", "naïve", "façade", "Ärger", "Øre", "¡olé!"))
# (charset as written, codec used to encode, text)
_EW_CHARSETS = (("UTF-8", "utf-8", "Grüße aus Köln"), ("utf-8", "utf-8", "日本語のメール"),
                ("ISO-8859-1", "latin-1", "Grüße"), ("windows-1252", "cp1252", "€uro “quotes”"),
                ("ISO-2022-JP", "iso2022_jp", "日本語"), ("KOI8-R", "koi8_r", "Привет"),
                ("x-unknown-charset", "utf-8", "mystery"), ("UTF-8*fr", "utf-8", "langue"))
_MALFORMED_EW = (b"=?UTF-8?B?not*base64!?=", b"=?UTF-8?Q?unterminated_word", b"=??B??=", b"=?UTF-8?X?abc?=",
                 b"=?UTF-8?B?w6k=?==?UTF-8?B?w6k=?=", b"=?=?UTF-8?Q?=C3?=?=", b"=?UTF-8?Q?=ZZ=3?=",
                 b'"=?UTF-8?B?w6k=?="', b"(=?UTF-8?Q?comment?=)", b"=?utf-8?b?" + b"QUFB" * 40 + b"?=")
_SPECIALS = (b'"quoted \\"string\\" with \\\\ backslash"', b"(comment (nested) comment)", b"<>", b"@", b";;;",
             b"a@b@c", b"\\", b'"unterminated', b"(unbalanced", b"::", b",,,", b"[brackets]", b"%%%")
_CONTROLS = (b"\x00", b"\x01", b"\x07", b"\x1b[31m", b"\x7f", b"\x0c", b"\x0b", b"\xff", b"\xc3", b"\xed\xa0\x80")
_EXTRA_HEADERS = (b"Cc", b"Reply-To", b"Comments", b"Keywords", b"X-Mailer", b"List-Id", b"Thread-Topic",
                  b"X-Priority", b"Content-Language", b"In-Reply-To", b"References", b"Return-Path",
                  b"X-Spam-Status", b"DKIM-Signature", b"Sender", b"Organization", b"X-Original-To")
_FTEXT = bytes(b for b in range(33, 127) if b != ord(":"))
_BOUNDARY_CHARS = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./=?"
_TEXT_TYPES = (b"text/plain; charset=us-ascii", b"text/plain; charset=utf-8", b'text/plain; charset="ISO-8859-1"',
               b"text/html; charset=utf-8", b"text/plain", b"text/plain; charset=unknown-8bit",
               b"text/plain; charset=utf-8; format=flowed; delsp=yes", b"TEXT/PLAIN; CHARSET=X-BOGUS",
               b"text", b"bogus/type", b"text/plain;;; charset=", b"text/plain; charset=\"utf-8")
_BINARY_TYPES = (b"application/octet-stream", b'image/png; name="pixel.png"', b"application/pdf",
                 b'application/x-unknown; name="=?UTF-8?B?w6lsw6k=?="')
_ENCODINGS = (b"7bit", b"8bit", b"quoted-printable", b"base64", b"binary", b"BASE64", b"x-uuencode", b"bogus")
_MULTIPART = (b"mixed", b"alternative", b"related", b"signed", b"digest", b"report", b"x-unknown")
# Bytes that must never appear on their own inside a line (a line's end is chosen separately).
_NO_LINE_BREAKS = bytes.maketrans(b"\r\n", b"\x0e\x0f")


def _sanitise(data: bytes) -> bytes:
    return data.translate(_NO_LINE_BREAKS)


def _date(when: datetime.datetime, *, weekday: bool = True, year: int = 4, zone: bytes = b"+0000") -> bytes:
    """An RFC 5322 date-time (``year=2``: the obsolete two-digit year), in English whatever the locale."""
    day = _DAYS[when.weekday()] + b", " if weekday else b""
    return day + b"%d %s %0*d %02d:%02d:%02d %s" % (when.day, _MONTHS[when.month - 1], year,
                                                    when.year % 10 ** year, when.hour, when.minute, when.second, zone)


class _Message:
    """One message under construction: a list of lines (no terminators) and a size budget."""

    def __init__(self, c: Choices, index: int) -> None:
        self.c = c
        self.index = index
        self.size = 0

    @property
    def spare(self) -> bool:
        """Whether large pieces may still be added."""
        return self.size < BUDGET

    def count(self, lines: Iterable[bytes]) -> list[bytes]:
        lines = list(lines)
        self.size += sum(len(line) + 2 for line in lines)
        return lines

    # -- words and header values -----------------------------------------------------------------

    def words(self, low: int = 1, high: int = 12) -> bytes:
        c = self.c
        return b" ".join(c.choice(_ASCII_WORDS) for _ in range(c.integer(low, high)))

    def encoded_word(self) -> bytes:
        c = self.c
        if c.boolean(0.3):
            return c.choice(_MALFORMED_EW)
        charset, codec, text = c.choice(_EW_CHARSETS)
        data = text.encode(codec)
        if c.boolean(0.5):
            return b"=?" + charset.encode() + b"?B?" + base64.b64encode(data) + b"?="
        quoted = b"".join(bytes([b]) if chr(b).isalnum() and b < 128 else b"_" if b == 32 else b"=%02X" % b
                          for b in data)
        return b"=?" + charset.encode() + b"?Q?" + quoted + b"?="

    def piece(self) -> bytes:
        """One word-ish piece of a header value."""
        c = self.c
        kind = c.choice(("ascii", "ascii", "utf8", "latin1", "encoded", "encoded", "special", "long", "control"))
        if kind == "ascii":
            return self.words(1, 4)
        if kind == "utf8":
            return c.choice(_UTF8_WORDS)
        if kind == "latin1":
            return c.choice(_LATIN1_WORDS)
        if kind == "encoded":
            return self.encoded_word()
        if kind == "special":
            return c.choice(_SPECIALS)
        if kind == "long" and self.spare:
            token = c.choice(_ASCII_WORDS) * c.integer(20, 400)  # an unbreakable token, up to ~4 KB
            self.size += len(token)
            return token
        if kind == "control":
            return b"ctl" + c.choice(_CONTROLS) + b"ctl"
        return self.words(1, 2)

    def folded(self, name: bytes, pieces: list[bytes], *, separator: bytes = b":") -> list[bytes]:
        """``name: piece piece`` with some of the spaces turned into folds."""
        c = self.c
        lines = [name + separator + (b" " if c.integer(0, 9) else b"")]  # usually one space after the colon
        for i, piece in enumerate(pieces):
            if i and c.boolean(0.25):
                lines.append(c.choice((b" ", b"\t", b"  ", b" \t")) + piece)
            else:
                lines[-1] += (b" " if i else b"") + piece
        if c.boolean(0.03):  # obsolete syntax: a folded line holding only white space
            lines.insert(1, c.choice((b" ", b"\t")))
        return lines

    def value(self, low: int = 1, high: int = 6) -> list[bytes]:
        return [self.piece() for _ in range(self.c.integer(low, high))]

    def header_name(self) -> tuple[bytes, bytes]:
        """(name, what follows it: ``:`` or, obsolete, `` :``)."""
        c = self.c
        kind = c.choice(("standard", "standard", "x-token", "random", "lower", "long", "space-before-colon"))
        if kind == "x-token":
            name = b"X-" + self.words(1, 2).replace(b" ", b"-").title()
        elif kind == "random":
            name = bytes(c.choice(_FTEXT) for _ in range(c.integer(1, 24)))
        elif kind == "lower":
            name = c.choice(_EXTRA_HEADERS).lower()
        elif kind == "long":
            name = b"X-" + b"Long" * c.integer(10, 60)
        else:
            name = c.choice(_EXTRA_HEADERS)
        if name.lower() in _RESERVED:
            name = b"X-Not-" + name
        return name, (b" :" if kind == "space-before-colon" else b":")

    # -- headers -------------------------------------------------------------------------------

    def message_id(self) -> list[bytes]:
        c = self.c
        tag = c.raw(6).hex().encode()
        local = b"%s.%d" % (tag, self.index)
        kind = c.choice(("normal", "normal", "normal", "no-brackets", "spaces", "non-ascii", "long", "empty",
                         "empty-brackets", "repeated", "shared", "missing", "folded", "lower-name", "comment",
                         "no-domain"))
        name = b"Message-ID"
        if kind == "no-brackets":
            value = local + b"@" + DOMAIN
        elif kind == "spaces":
            value = b"<" + local + b" with spaces @ " + DOMAIN + b">"
        elif kind == "non-ascii":
            value = b"<" + local + ".grüße@bücher.example".encode() + b">"
        elif kind == "long":
            value = b"<" + local + b"." + b"x" * c.integer(500, 2000) + b"@" + DOMAIN + b">"
        elif kind == "empty":
            value = b""
        elif kind == "empty-brackets":
            value = b"<>"
        elif kind == "repeated":
            return [b"Message-ID: <" + local + b".%s@" % half + DOMAIN + b">" for half in (b"a", b"b")]
        elif kind == "shared":  # the same id on different messages: they must not be merged
            value = b"<shared-%d@" % c.integer(0, 2) + DOMAIN + b">"
        elif kind == "missing":
            return []
        elif kind == "folded":
            return [name + b":", b" <" + local + b"@" + DOMAIN + b">"]
        elif kind == "comment":
            value = b"<" + local + b"@" + DOMAIN + b"> (" + self.words(1, 3) + b")"
        elif kind == "no-domain":
            value = b"<" + local + b">"
        else:
            value = b"<" + local + b"@" + DOMAIN + b">"
        if kind == "lower-name":
            name = c.choice((b"message-id", b"Message-Id", b"MESSAGE-ID"))
        return [name + b": " + value if value else name + b":"]

    def date(self) -> list[bytes]:
        c = self.c
        when = _EPOCH + datetime.timedelta(minutes=self.index)
        kind = c.choice(("rfc5322", "rfc5322", "obsolete", "garbage", "empty", "missing", "future", "numeric-zone"))
        if kind == "missing":
            return []
        if kind == "obsolete":
            value = _date(when, weekday=False, year=2, zone=b"EST")
        elif kind == "garbage":
            value = c.choice((b"yesterday", b"32 Foo 2024 25:61:61 +9999", b"\xe4\xb8\x80\xe6\x9c\x88", b"0"))
        elif kind == "empty":
            value = b""
        elif kind == "future":
            value = b"Fri, 31 Dec 9999 23:59:59 +0000"
        elif kind == "numeric-zone":
            value = _date(when, zone=b"-0000 (UTC)")
        else:
            value = _date(when)
        return [b"Date: " + value if value else b"Date:"]

    def address(self) -> bytes:
        c = self.c
        user = c.choice(_ASCII_WORDS)
        kind = c.choice(("plain", "plain", "named", "quoted", "encoded", "utf8", "group", "empty", "garbage"))
        if kind == "named":
            return self.words(1, 2).title() + b" <" + user + b"@" + DOMAIN + b">"
        if kind == "quoted":
            return b'"' + self.words(1, 2) + b', Jr. \\"x\\"" <' + user + b"@" + DOMAIN + b">"
        if kind == "encoded":
            return self.encoded_word() + b" <" + user + b"@" + DOMAIN + b">"
        if kind == "utf8":
            return "Jürgen Müller <jürgen@bücher.example>".encode()
        if kind == "group":
            return b"undisclosed-recipients:;"
        if kind == "empty":
            return b"<>"
        if kind == "garbage":
            return c.choice((b"@", b"no at sign", b"a@@b", b"<unclosed@" + DOMAIN, b"\xff\xfe@" + DOMAIN))
        return user + b"@" + DOMAIN

    def addresses(self, name: bytes) -> list[bytes]:
        c = self.c
        many = c.integer(1, 60) if c.boolean(0.15) else c.integer(1, 3)
        parts = [self.address() + (b"," if i < many - 1 else b"") for i in range(many)]
        return self.folded(name, parts)

    def subject(self) -> list[bytes]:
        c = self.c
        pieces = [b"fuzz #%d" % self.index]
        if c.integer(0, 9):
            pieces += self.value(1, 8)
        return self.folded(b"Subject", pieces)

    def received(self) -> list[bytes]:
        c = self.c
        host = c.choice(_ASCII_WORDS)
        return [b"Received: from " + host + b".example (" + host + b".example [192.0.2.%d])" % c.integer(1, 254),
                b"\tby mx.example.test with ESMTPS id " + c.raw(5).hex().encode() + b";",
                b"\t" + _date(_EPOCH + datetime.timedelta(seconds=c.integer(0, 10 ** 7)))]

    def extra_header(self) -> list[bytes]:
        c = self.c
        if c.boolean(0.15):
            return self.received()
        name, colon = self.header_name()
        return self.folded(name, self.value(0, 6), separator=colon)

    # -- bodies --------------------------------------------------------------------------------

    def text_line(self) -> bytes:
        c = self.c
        kind = c.choice(("ascii", "ascii", "ascii", "ascii", "utf8", "latin1", "empty", "empty", "blank",
                         "trailing-space", "long", "binary", "nul", "control", "from", "dot", "sig",
                         "encoded", "lookalike"))
        if kind == "utf8":
            return b" ".join(c.choice(_UTF8_WORDS) for _ in range(c.integer(1, 8)))
        if kind == "latin1":
            return b" ".join(c.choice(_LATIN1_WORDS + _ASCII_WORDS) for _ in range(c.integer(1, 8)))
        if kind == "empty":
            return b""
        if kind == "blank":
            return c.choice((b" ", b"\t", b"   ", b" \t "))
        if kind == "trailing-space":
            return self.words() + c.choice((b" ", b"\t", b"  "))
        if kind == "long" and self.spare:
            return (self.words(1, 3) + b" ") * c.integer(60, 700)  # 1 KB to ~20 KB, no line break
        if kind == "binary" and self.spare:
            return _sanitise(c.raw(c.integer(1, 160)))
        if kind == "nul":
            return self.words(1, 3) + b"\x00" + self.words(1, 3)
        if kind == "control":
            return self.words(1, 2) + c.choice(_CONTROLS) + self.words(1, 2)
        if kind == "from":
            return b"From " + c.choice(_ASCII_WORDS) + b"@" + DOMAIN + b" Mon Jan  1 00:00:00 2024"
        if kind == "dot":
            return c.choice((b".", b"..", b". ", b".hidden"))
        if kind == "sig":
            return b"-- "
        if kind == "encoded":
            return self.encoded_word()
        if kind == "lookalike":
            return c.choice((b"--", b"----", b"--boundary", b"--=_Part_0--", b"Content-Type: text/plain",
                             b"Message-ID: <inner@" + DOMAIN + b">"))
        return self.words()

    def text(self, high: int = 24) -> list[bytes]:
        c = self.c
        lines = []
        for _ in range(c.integer(0, high if self.spare else 2)):
            lines += self.count([self.text_line()])  # counted as it goes: `spare` sees each line
        return lines

    def encoded_body(self, encoding: bytes) -> list[bytes]:
        c = self.c
        name = encoding.lower()
        if name == b"base64":
            data = c.raw(c.integer(0, 900 if self.spare else 40))
            flat = base64.b64encode(data)
            width = c.choice((76, 76, 64, 72, 1000))
            lines = [flat[i:i + width] for i in range(0, len(flat), width)]
            if lines and c.boolean(0.15):  # broken: characters outside the alphabet, lost padding
                at = c.integer(0, len(lines) - 1)
                lines[at] = c.choice((b"!!" + lines[at], lines[at].rstrip(b"="), lines[at][:-1] + b"*", b"===="))
            return self.count(lines)
        if name == b"quoted-printable":
            lines = []
            for line in self.text(12):
                out = b"".join(bytes([b]) if 33 <= b <= 126 and b != 61 or b in (9, 32) else b"=%02X" % b
                               for b in line)
                while len(out) > 76 and c.integer(0, 4):  # soft line breaks, now and then a line too long
                    lines.append(out[:75] + b"=")
                    out = out[75:]
                lines.append(out)
            if lines and c.boolean(0.15):  # broken: a bad escape, or a soft break at the very end
                lines[-1] += c.choice((b"=ZZ", b"=", b"=3", b"=\xe9"))
            return self.count(lines)
        return self.text()

    def leaf(self) -> list[bytes]:
        """A non-multipart entity: its headers, an empty line, its body."""
        c = self.c
        headers = []
        encoding = c.choice(_ENCODINGS) if c.boolean(0.6) else None
        c_type = None
        if c.integer(0, 5):
            c_type = c.choice(_BINARY_TYPES) if encoding and encoding.lower() == b"base64" and c.boolean(0.5) \
                else c.choice(_TEXT_TYPES)
        if c_type is not None:
            headers.append(b"Content-Type: " + c_type)
        if encoding is not None:
            headers.append(b"Content-Transfer-Encoding: " + encoding)
        if c.boolean(0.2):
            headers.append(b"Content-Disposition: " + c.choice((b"inline", b'attachment; filename="a b.txt"',
                                                                  b"attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt",
                                                                  b"attachment; filename=\"" + _UTF8_WORDS[0] + b"\"")))
        body = self.encoded_body(encoding or b"7bit")
        return headers + [b""] + body

    def boundary(self, outer: bytes | None) -> bytes:
        c = self.c
        kind = c.choice(("token", "token", "specials", "long", "space", "extends-outer", "dashes"))
        token = c.raw(6).hex().encode()
        if kind == "specials":
            return b"=_" + bytes(c.choice(_BOUNDARY_CHARS) for _ in range(c.integer(1, 30))) + token
        if kind == "long":
            return (b"b" + token) * 5 + b"x" * 9  # 70 characters, the longest RFC 2046 allows
        if kind == "space":
            return b"with space " + token
        if kind == "extends-outer" and outer is not None:
            return outer + b"-" + token[:4]  # the outer boundary is a prefix of this one
        if kind == "dashes":
            return b"----" + token
        return b"b_" + token

    def multipart(self, depth: int, outer: bytes | None) -> list[bytes]:
        """A multipart entity (headers, empty line, body) nested at most ``MAX_DEPTH`` deep."""
        c = self.c
        boundary = self.boundary(outer)
        subtype = c.choice(_MULTIPART)
        if c.boolean(0.04):
            param = b""  # no boundary parameter at all
        elif b" " in boundary or b"=" in boundary or b"?" in boundary or c.boolean(0.5):
            param = b'; boundary="' + boundary + b'"'
        else:
            param = b"; boundary=" + boundary
        pieces = [b"multipart/" + subtype + b";", param[2:]] if param else [b"multipart/" + subtype]
        lines = self.folded(b"Content-Type", pieces) + [b""]
        if c.boolean(0.3):
            lines += self.text(3) or [b"This is a multi-part message in MIME format."]
        for _ in range(c.integer(0, 4 if self.spare else 1)):
            lines.append(b"--" + boundary + (c.choice((b" ", b"\t", b"  \t")) if c.boolean(0.1) else b""))
            lines += self.entity(depth + 1, boundary)
        if not c.boolean(0.08):  # sometimes the final boundary is missing
            lines.append(b"--" + boundary + b"--")
        if c.boolean(0.25):
            lines += self.text(3)
        return lines

    def rfc822(self, depth: int) -> list[bytes]:
        inner = [b"Content-Type: message/rfc822", b""]
        inner += self.addresses(b"From") + self.subject()[:1] + self.date()
        return inner + [b""] + self.text(6)

    def entity(self, depth: int, outer: bytes | None) -> list[bytes]:
        c = self.c
        if depth < MAX_DEPTH and self.spare:
            kind = c.choice(("leaf", "leaf", "leaf", "multipart", "rfc822"))
            if kind == "multipart":
                return self.multipart(depth, outer)
            if kind == "rfc822":
                return self.rfc822(depth)
        return self.leaf()

    # -- the whole message ---------------------------------------------------------------------

    def build(self, seed: int | None) -> list[bytes]:
        c = self.c
        top = [b"X-Fuzz-Index: %d" % self.index]
        if seed is not None:
            top.append(b"X-Fuzz-Seed: %d" % seed)
        fields: list[list[bytes]] = [self.subject(), self.message_id(), self.date()]
        if c.integer(0, 19):
            fields.append(self.addresses(b"From"))
        if c.integer(0, 9):
            fields.append(self.addresses(b"To"))
        fields += [self.extra_header() for _ in range(c.integer(0, 6))]
        if c.boolean(0.5):
            fields = c.shuffled(fields)
        headers = top + [line for lines in fields if lines for line in lines]
        kind = c.choice(("plain", "plain", "mime-leaf", "multipart", "multipart", "rfc822", "headers-only"))
        if kind == "headers-only":  # no empty line, no body
            return self.count(headers)
        if kind == "plain":
            return self.count(headers) + [b""] + self.text()
        mime = [c.choice((b"MIME-Version: 1.0", b"MIME-Version: 1.0", b"MIME-Version: 1.0 (fuzz)",
                          b"Mime-Version: 2.0"))] if c.integer(0, 9) else []
        self.count(headers + mime)
        if kind == "multipart":
            entity = self.multipart(1, None)
        elif kind == "rfc822":
            entity = self.rfc822(1)
        else:
            entity = self.leaf()
        return headers + mime + entity  # the entity's own headers continue the message's header

    def join(self, lines: list[bytes]) -> bytes:
        """Lines with their ends: CRLF, LF everywhere, or LF here and there; the last line
        sometimes without any."""
        c = self.c
        mode = c.choice(("crlf", "crlf", "crlf", "crlf", "lf", "mixed"))
        out = bytearray()
        for line in lines:
            out += line
            if mode == "crlf" or mode == "mixed" and not c.boolean(0.2):
                out += b"\r\n"
            else:
                out += b"\n"
        if lines and c.boolean(0.05):
            out[-2 if out.endswith(b"\r\n") else -1:] = b""  # no line end after the last line
        return bytes(out)


# -- public ----------------------------------------------------------------------------------------


def build(choices: Choices, index: int, seed: int | None = None) -> bytes:
    """Message ``index`` with every decision taken by ``choices`` (``seed`` only labels it)."""
    message = _Message(choices, index)
    return message.join(message.build(seed))


def generate(seed: int, index: int) -> bytes:
    """Message ``index`` of the corpus ``seed``: the same bytes everywhere, every time."""
    return build(SeededChoices(seed, index), index, seed)


def messages(seed: int, count: int, start: int = 0) -> list[bytes]:
    return [generate(seed, i) for i in range(start, start + count)]


def internal_date(index: int) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(minutes=index, seconds=30)


def fill(folder, count: int, *, seed: int) -> None:
    """Append fuzzed messages 0..count-1 of corpus ``seed`` to ``folder``."""
    if count < 0:
        raise ValueError("the number of fuzzed messages is at least 0")
    for i in range(count):
        folder.append(generate(seed, i), internal_date=internal_date(i), notify=False)
    folder.changed()


def strategy(indices=None):
    """A Hypothesis strategy of fuzzed messages (bytes) whose every decision Hypothesis takes;
    ``indices`` draws the X-Fuzz-Index (default 0..9999)."""
    from hypothesis import strategies as st

    @st.composite
    def fuzzed(draw):
        index = draw(indices if indices is not None else st.integers(0, 9999))
        return build(HypothesisChoices(draw), index)

    return fuzzed()


def main(argv: list[str] | None = None) -> int:
    """``python -m fake_servers.mailstore.fuzz --seed S --index N``: replay one message."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m fake_servers.mailstore.fuzz",
                                     description="Write fuzzed message INDEX of corpus SEED, as the fake serves it "
                                                 "(the X-Fuzz-Seed and X-Fuzz-Index headers of a message name them).")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--out", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    data = generate(args.seed, args.index)
    if args.out:
        with open(args.out, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
