"""MIME structure of raw messages: parts, ENVELOPE, BODY/BODYSTRUCTURE and body sections.

Everything works on the stored bytes and never rewrites them: a section is a slice of the raw
message, so what the client receives is byte-exact (bare LF, NUL, 8-bit headers included).
The rules for broken input follow Dovecot 2.3, the server differential tests compare against:

* the header ends at the first empty line, or at a line that is a boundary of an enclosing
  multipart, or at the end of the data;
* a boundary line is a line that starts with ``--`` + a boundary of any open multipart (a
  prefix match; the longest match wins); ``--`` after it closes that multipart; a missing
  closing boundary simply lets the last part run to the end of its parent;
* the CRLF (or LF) before a boundary line belongs to the boundary, not to the part;
* Content-* headers count only in a MIME part (MIME-Version or Content-Type present, or a
  child of a multipart); parts of multipart/digest default to message/rfc822;
* nesting deeper than MAX_DEPTH and parts beyond MAX_PARTS are not opened, so broken input
  costs bounded time and never recurses without end.

Sizes are octets of the raw bytes and line counts are LF counts, which is what BODY[n] sends.
"""

from __future__ import annotations

import base64
import re

from .encode import NIL, nstring, string

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "Part",
    "UnknownCTE",
    "parse",
    "header_end",
    "envelope",
    "bodystructure",
    "section",
    "parse_section",
    "extract",
    "binary",
]

MAX_DEPTH = 100
MAX_PARTS = 10000

# RFC 2046 limits a boundary to 70 characters; like Dovecot, look a little further and
# truncate absurd ones (matching is by prefix, so truncation keeps them working).
_BOUNDARY_MAX = 80
_BOUNDARY_SCAN = 70 + 2 + 2 + 10

TEXT, MULTIPART, RFC822, DIGEST, IS_MIME = 1, 2, 4, 8, 16

_REPLACEMENT = "\ufffd".encode("utf-8")


class UnknownCTE(Exception):
    """BINARY asked for a part whose Content-Transfer-Encoding we cannot decode (RFC 3516)."""


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


# -- header fields ----------------------------------------------------------------------------

# The fields each reader cares about: name, colon, the rest of the line and its
# continuation lines. Searched in "\n" + header, so every field starts after a "\n" (which
# lets the regex engine jump from line to line); continuation lines start with a blank and
# never match a name.
_REST = rb"[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
_ENVELOPE_FIELD = re.compile(
    rb"\n(date|subject|from|sender|reply-to|to|cc|bcc|in-reply-to|message-id)" + _REST, re.I
)
_MIME_FIELD = re.compile(rb"\n(content-[^:\s]*|mime-version)" + _REST, re.I)


def _fields(raw: bytes, start: int, end: int, which: re.Pattern) -> list[tuple[bytes, bytes]]:
    """(lower-case name, value) for the fields of raw[start:end] that `which` finds.

    A value keeps its inner line breaks (callers unfold as they need).
    """
    return [(name.lower(), _field_value(value)) for name, value in which.findall(b"\n" + raw[start:end])]


def _field_value(value: bytes) -> bytes:
    if value.endswith(b"\r"):
        value = value[:-1]
    if value[:1] in (b" ", b"\t"):
        # Blanks after the colon are not part of the value, unless the first line is
        # nothing but blanks: then only the first one goes.
        stripped = value.lstrip(b" \t")
        value = value[1:] if stripped[:1] in (b"", b"\r", b"\n") else stripped
    return value


def _blank_line(raw: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, length) of the first empty line at or after pos, or (end, 0)."""
    if raw.startswith(b"\n", pos):
        return pos, 1
    if raw.startswith(b"\r\n", pos):
        return pos, 2
    crlf = raw.find(b"\n\r\n", pos, end)
    lf = raw.find(b"\n\n", pos, crlf + 1 if crlf >= 0 else end)
    if lf >= 0:
        return lf + 1, 1
    if crlf >= 0:
        return crlf + 1, 2
    return end, 0


def header_end(raw: bytes, start: int = 0) -> int:
    """End of the header that starts at `start` (after its empty line), ignoring boundaries."""
    blank, size = _blank_line(raw, start, len(raw))
    return blank + size


# -- low-level RFC 822 tokens (RFC 5322 §3.2, MIME tokens of RFC 2045) ------------------------

# atext (RFC 5322 §3.2.3, 8-bit bytes included as real mail needs) and the MIME token.
_ATEXT = frozenset(b"!#$%&'*+-/=?^_`{|}~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") | frozenset(range(128, 256))
_WSP = frozenset(b" \t\r\n")
_ATEXT_RUN = re.compile(rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff]*")
_WORD_RUN = re.compile(rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff.]*")
_TOKEN_RUN = re.compile(rb"[!#$%&'*+\-^_`{|}~0-9A-Za-z\x80-\xff.]*")


class _Reader:
    """A cursor over a header value with RFC 822 lexing: comments, atoms, quoted strings.

    Return conventions follow the classic parser: a positive number when more data follows,
    0 at the end of the data, negative on a syntax error.
    """

    __slots__ = ("data", "pos", "end", "comment")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.comment = b""

    def more(self) -> int:
        return 1 if self.pos < self.end else 0

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < self.end else -1

    def skip_comment(self) -> int:
        """Skip a (nested) comment, remembering its text (unfolded, unescaped) as the
        last comment; an unclosed one keeps what came before its last fold or escape."""
        data, level = self.data, 1
        self.pos += 1
        chunk = self.pos
        out = bytearray()
        self.comment = b""
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x28:
                level += 1
            elif c == 0x29:
                level -= 1
                if level == 0:
                    out += data[chunk:self.pos]
                    self.comment = bytes(out)
                    self.pos += 1
                    return self.more()
            elif c == 0x0A:
                stop = self.pos - 1 if self.pos > chunk and data[self.pos - 1] == 0x0D else self.pos
                out += data[chunk:stop]
                self.comment = bytes(out)
                chunk = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] in (0x0D, 0x0A):
                    self.pos -= 1
                else:
                    out += data[chunk:self.pos - 1]
                    self.comment = bytes(out)
                    chunk = self.pos
            self.pos += 1
        return -1

    def skip_lwsp(self) -> int:
        data = self.data
        while self.pos < self.end:
            c = data[self.pos]
            if c in _WSP:
                self.pos += 1
            elif c == 0x28:
                if self.skip_comment() < 0:
                    return -1
            else:
                return 1
        return 0

    def _run(self, pattern: re.Pattern) -> bytes:
        run = pattern.match(self.data, self.pos).group()
        self.pos += len(run)
        return run

    def atom(self, out: bytearray) -> int:
        if self.peek() not in _ATEXT:
            return -1
        out += self._run(_ATEXT_RUN)
        return self.skip_lwsp()

    def dot_atom(self, out: bytearray) -> int:
        """atext runs joined by dots, with blanks allowed around the dots (domains)."""
        if self.peek() not in _ATEXT:
            return -1
        while True:
            run = self._run(_ATEXT_RUN)
            if not run:
                return -1
            out += run
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            if self.data[self.pos] != 0x2E:
                return 1
            self.pos += 1
            out.append(0x2E)
            if self.skip_lwsp() <= 0:
                return -1

    def local_atoms(self, out: bytearray) -> int:
        """A local part's dot-atom, non-strict: dots may repeat or end it ("a..b", "a."),
        but a blank may not follow a dot."""
        ret = -1
        data = self.data
        while True:
            while data[self.pos] == 0x2E:
                out.append(0x2E)
                self.pos += 1
                if self.pos >= self.end:
                    return 0
                ret = 1
            if data[self.pos] == 0x40:
                return ret
            ret = self.atom(out)
            if ret <= 0 or data[self.pos] != 0x2E:
                return ret

    def token(self, out: bytearray) -> int:
        out += self._run(_TOKEN_RUN)
        return self.skip_lwsp()

    def quoted_string(self, out: bytearray) -> int:
        """The content of a quoted string, unescaped and unfolded.

        Without a closing quote it fails, keeping what preceded the last escape or fold.
        """
        data = self.data
        self.pos += 1
        chunk = self.pos
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x22:
                out += data[chunk:self.pos]
                self.pos += 1
                return self.skip_lwsp()
            if c == 0x0A:
                stop = self.pos - 1 if self.pos > chunk and data[self.pos - 1] == 0x0D else self.pos
                out += data[chunk:stop]
                chunk = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                out += data[chunk:self.pos - 1]
                chunk = self.pos
            self.pos += 1
        return -1

    def phrase(self, out: bytearray) -> int:
        """Words (atoms, quoted strings, dots) joined by single spaces."""
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 0x2E:
            return -1
        while True:
            if self.data[self.pos] == 0x22:
                ret = self.quoted_string(out)
            else:
                out += self._run(_WORD_RUN)
                ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            c = self.data[self.pos]
            if c not in _ATEXT and c != 0x22 and c != 0x2E:
                return self.skip_lwsp()
            out.append(0x20)

    def domain(self, out: bytearray) -> int:
        """After "@": a dot-atom or a [domain literal] (kept with its brackets)."""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1
        if self.data[self.pos] != 0x5B:
            return self.dot_atom(out)
        data, chunk = self.data, self.pos
        self.pos += 1
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x5B:
                return -1
            if c == 0x5D:
                self.pos += 1
                out += data[chunk:self.pos]
                return self.skip_lwsp()
            if c == 0x0A:
                stop = self.pos - 1 if data[self.pos - 1] == 0x0D else self.pos
                out += data[chunk:stop]
                chunk = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
            self.pos += 1
        return -1


# -- addresses --------------------------------------------------------------------------------

Address = tuple  # (name, route, mailbox, domain), each bytes or None


class _AddressParser:
    """RFC 5322 address lists the tolerant way: every broken entry still yields an address,
    with MISSING_MAILBOX / MISSING_DOMAIN / SYNTAX_ERROR filled in, as Dovecot does for
    ENVELOPE (clients must get *something* parseable for every mailbox)."""

    def __init__(self, value: bytes):
        self.r = _Reader(value)
        self.out: list[Address] = []

    def parse(self) -> list[Address]:
        r = self.r
        if r.skip_lwsp() <= 0:
            return self.out
        while True:
            if self.address() == 0:
                break
            if r.peek() != 0x2C:
                break
            r.pos += 1
            ret = r.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self.add(None, None, None, None)
                break
        return self.out

    def add(self, name, route, mailbox, domain) -> None:
        if mailbox is None:
            mailbox = b"MISSING_MAILBOX"
        if not domain:
            domain = b"MISSING_DOMAIN"
        self.out.append((name, route, mailbox, domain))

    def address(self) -> int:
        r = self.r
        start = r.pos
        ret = self.group()
        if ret is None:
            r.pos = start
            ret = self.mailbox()
        return ret

    def group(self) -> int | None:
        """display-name ":" [mailbox-list] ";" — None when this is not a group."""
        r = self.r
        name = bytearray()
        if r.phrase(name) <= 0 or r.peek() != 0x3A:
            return None
        r.pos += 1
        ret = r.skip_lwsp()
        self.out.append((None, None, bytes(name), None))
        if ret > 0 and r.peek() != 0x3B:
            while True:
                self.mailbox()  # a broken mailbox does not end the group
                if r.peek() != 0x2C:
                    break
                r.pos += 1
                if r.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if r.peek() != 0x3B:
                ret = -1
            else:
                r.pos += 1
                ret = r.skip_lwsp()
        self.out.append((None, None, None, None))
        return 0 if ret == 0 else 1

    def mailbox(self) -> int:
        r = self.r
        start = r.pos
        fields = self.name_addr()
        if fields is None:
            r.pos = start
            fields = self.addr_spec()
        ret, name, route, mailbox, domain = fields
        self.add(name, route, mailbox, domain)
        return ret

    def name_addr(self):
        r = self.r
        name = bytearray()
        if r.phrase(name) <= 0 or r.peek() != 0x3C:
            return None
        ok, route, mailbox, domain = self.angle_addr()
        if not ok:
            domain = b"SYNTAX_ERROR"
        return (1 if r.pos < r.end else 0), bytes(name) or None, route, mailbox, domain

    def angle_addr(self):
        """ "<" [route ":"] [local-part ["@" domain]] ">" -> (ok, route, mailbox, domain)."""
        r = self.r
        route = mailbox = domain = None
        r.pos += 1
        if r.skip_lwsp() <= 0:
            return False, route, mailbox, domain
        if r.peek() == 0x40:
            route = self.route()
            if route is not None and r.peek() == 0x3A:
                r.pos += 1
            else:
                route = b"INVALID_ROUTE"
                if r.pos >= r.end:
                    return False, route, mailbox, domain
            if r.skip_lwsp() <= 0:
                return False, route, mailbox, domain
        if r.peek() != 0x3E:
            text = bytearray()
            ret = self.local_part(text)
            if ret >= 0:
                mailbox = bytes(text)
            if ret <= 0:
                return False, route, mailbox, domain
            if r.peek() == 0x40:
                part = bytearray()
                ret = r.domain(part)
                if ret >= 0:
                    domain = bytes(part)
                if ret <= 0:
                    return False, route, mailbox, domain
        if r.peek() != 0x3E:
            return False, route, mailbox, domain
        r.pos += 1
        return r.skip_lwsp() >= 0, route, mailbox, domain

    def route(self) -> bytes | None:
        """obs-domain-list: "@a,@b" up to the colon; None when it ends early or is broken."""
        r = self.r
        out = bytearray()
        while True:
            if r.pos >= r.end:
                return None
            if r.peek() != 0x40:
                return bytes(out)
            if out:
                out.append(0x2C)
            out.append(0x40)
            if r.domain(out) <= 0:
                return None
            while r.skip_lwsp() > 0 and r.peek() == 0x2C:
                r.pos += 1

    def local_part(self, out: bytearray) -> int:
        r = self.r
        if r.peek() == 0x22:
            return r.quoted_string(out)
        return r.local_atoms(out)

    def addr_spec(self):
        """local-part ["@" domain], with the tolerance real mail needs: a trailing comment
        is the display name, several words without "@" are a display name."""
        r = self.r
        r.comment = b""
        quoted = r.peek() == 0x22
        text = bytearray()
        ret = self.local_part(text)
        # On failure `text` keeps what was read: it may become part of a display name.
        mailbox = bytes(text) if ret >= 0 else None
        invalid = ret <= 0
        name = domain = None
        at_domain = False
        if ret != 0 and r.pos < r.end and r.peek() == 0x40:
            at_domain = True
            part = bytearray()
            ret2 = r.domain(part)
            if ret2 >= 0:
                domain = bytes(part)
            if ret2 <= 0:
                ret = ret2
        if r.comment:
            name = r.comment
        elif not at_domain:
            text.append(0x20)
            before = len(text)
            r.phrase(text)
            if len(text) != before:
                mailbox, name = None, bytes(text)
            elif not quoted:
                domain = b""
            invalid = True
            ret = -1
        if invalid and name is None and mailbox is not None and domain is None:
            # A lone quoted word: take it for a name rather than a mailbox.
            name, mailbox = mailbox, None
        return ret, name, None, mailbox, domain


# The everyday shapes — `local@domain`, `Name <local@domain>`, `"Name" <local@domain>` —
# parsed by one regular expression; anything else goes to the full parser, which gives
# the same result for these shapes, only slower.
_A = rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff]"
_DOT_ATOM = _A + rb"+(?:\." + _A + rb"+)*"
_SIMPLE_ADDRESS = re.compile(
    rb"[ \t]*(?:"
    rb'(?:"(?P<quoted>[^"\\\r\n]*)"[ \t]*|(?P<words>' + _A + rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff.]*"
    rb"(?: " + _A + rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff.]*)*)[ \t]*)?"
    rb"<(?P<local>" + _DOT_ATOM + rb")@(?P<domain>" + _DOT_ATOM + rb")>"
    rb"|(?P<bare_local>" + _DOT_ATOM + rb")@(?P<bare_domain>" + _DOT_ATOM + rb"))"
    rb"[ \t]*(?:,|\Z)"
)


def _simple_addresses(value: bytes) -> list[Address] | None:
    out = []
    pos, end = 0, len(value)
    match = _SIMPLE_ADDRESS.match
    while pos < end:
        m = match(value, pos)
        if m is None:
            return None
        pos = m.end()
        if m.group("bare_local") is not None:
            out.append((None, None, m.group("bare_local"), m.group("bare_domain")))
        else:
            name = m.group("quoted")
            if name is None:
                name = m.group("words")
            out.append((name or None, None, m.group("local"), m.group("domain")))
        if value[pos - 1:pos] == b"," and pos >= end:
            return None  # a trailing comma: leave it to the full parser
    return out or None


def parse_addresses(value: bytes) -> list[Address]:
    """Parse an address-list header value into (name, route, mailbox, domain) tuples.

    A group is framed by (None, None, group name, None) and (None, None, None, None).
    """
    simple = _simple_addresses(value)
    if simple is not None:
        return simple
    return _AddressParser(value).parse()


# -- text conversions for ENVELOPE -----------------------------------------------------------


_BREAK_BEFORE_TEXT = re.compile(rb"[\r\n]+(?=[^ \t\r\n])")
_LWSP_RUN = re.compile(rb"[ \t\r\n]+")
_NOT_QUOTABLE = re.compile(rb'["\\\x80-\xff]')
# Words of printable ASCII without quoting, separated by single spaces: sent as they are.
_HUMAN_AS_IS = re.compile(rb'(?:[!#-\[\]-~]+(?: [!#-\[\]-~]+)*)?')


def _unfold(value: bytes) -> bytes:
    """Drop CR and LF; a line that does not start with blank space gets one."""
    if b"\r" not in value and b"\n" not in value:
        return value
    return _BREAK_BEFORE_TEXT.sub(b" ", value).replace(b"\r", b"").replace(b"\n", b"")


def _header_text(value: bytes) -> bytes:
    """A header value as envelope strings carry it: NUL replaced, unfolded."""
    if b"\x00" in value:
        value = value.replace(b"\x00", _REPLACEMENT)
    return _unfold(value)


def _for_humans(value: bytes) -> bytes:
    """Subject and display names: white space collapsed to single spaces and trimmed.

    Sent quoted when nothing had to change and no quoting is needed, else as a literal;
    all-blank becomes "".
    """
    if _HUMAN_AS_IS.fullmatch(value) is not None:
        return b'"' + value + b'"'
    if b"\x00" in value:
        value = value.replace(b"\x00", b"\x80")
    clean = _LWSP_RUN.sub(b" ", value).strip(b" ")
    if clean == value and _NOT_QUOTABLE.search(value) is None:
        return b'"' + value + b'"'
    if not clean:
        return b'""'
    return b"{%d}\r\n" % len(clean) + clean


def _nstring_text(value: bytes | None) -> bytes:
    return NIL if value is None else nstring(_header_text(value))


def _address_list(addresses: list[Address] | None) -> bytes:
    if not addresses:
        return NIL
    return b"(" + b"".join(
        b"(%s %s %s %s)" % (
            NIL if name is None else _for_humans(name),
            NIL if route is None else string(route),
            NIL if mailbox is None else string(mailbox),
            NIL if domain is None else string(domain),
        )
        for name, route, mailbox, domain in addresses
    ) + b")"


_ENVELOPE_STRINGS = {b"date": 0, b"subject": 1, b"in-reply-to": 8, b"message-id": 9}
_ENVELOPE_ADDRESSES = {b"from": 2, b"sender": 3, b"reply-to": 4, b"to": 5, b"cc": 6, b"bcc": 7}


def _envelope_at(raw: bytes, start: int, end: int) -> bytes:
    strings: dict[int, bytes] = {}
    addresses: dict[int, list[Address]] = {}
    for name, value in _fields(raw, start, end, _ENVELOPE_FIELD):
        slot = _ENVELOPE_STRINGS.get(name)
        if slot is not None:
            strings[slot] = value  # the last one wins
            continue
        slot = _ENVELOPE_ADDRESSES.get(name)
        if slot is not None:
            if b"\x00" in value:
                value = value.replace(b"\x00", _REPLACEMENT)
            addresses.setdefault(slot, []).extend(parse_addresses(value))
    subject = strings.get(1)
    if subject is None:
        subject_out = NIL
    else:
        if b"\x00" in subject:
            subject = subject.replace(b"\x00", _REPLACEMENT)
        subject_out = _for_humans(subject)
    from_out = _address_list(addresses.get(2))
    sender = addresses.get(3)
    reply_to = addresses.get(4)
    parts = [
        _nstring_text(strings.get(0)),
        subject_out,
        from_out,
        _address_list(sender) if sender else from_out,
        _address_list(reply_to) if reply_to else from_out,
        _address_list(addresses.get(5)),
        _address_list(addresses.get(6)),
        _address_list(addresses.get(7)),
        _nstring_text(strings.get(8)),
        _nstring_text(strings.get(9)),
    ]
    return b"(" + b" ".join(parts) + b")"


def envelope(raw: bytes) -> bytes:
    """The ENVELOPE of a message as its parenthesised list (RFC 3501 §7.4.2).

    Values are the header text as sent (encoded-words are not decoded); the subject and
    display names have their white space collapsed. Sender and Reply-To default to From.
    """
    facts = _cache.facts(raw)
    if facts.envelope is None:
        facts.envelope = _envelope_at(raw, 0, header_end(raw))
    return facts.envelope


# -- Content-Type and friends ----------------------------------------------------------------


def _content_type(value: bytes) -> tuple[bytes, bool, _Reader]:
    """Parse `type/subtype` the forgiving way: (text, ok, reader positioned at the params).

    Not ok means "don't read parameters"; the text is then "" except for a lone `type`
    with nothing after it, which is kept (so `Content-Type: text` is still text).
    """
    r = _Reader(value)
    if r.skip_lwsp() <= 0:
        return b"", False, r
    main = bytearray()
    ret = r.token(main)
    if not main:
        return b"", False, r
    if ret <= 0:
        return bytes(main), False, r
    if r.peek() != 0x2F:
        return b"", False, r
    r.pos += 1
    if r.skip_lwsp() <= 0:
        return b"", False, r
    sub = bytearray()
    ret = r.token(sub)
    if ret < 0 or not sub or (r.pos < r.end and r.peek() != 0x3B):
        return b"", False, r
    return bytes(main) + b"/" + bytes(sub), True, r


def _param(r: _Reader):
    """One `; key=value`. Returns (status, key, value) with the reader's conventions."""
    if r.pos >= r.end:
        return 0, None, None
    if r.peek() != 0x3B:
        return -1, None, None
    r.pos += 1
    if r.skip_lwsp() <= 0:
        return -1, None, None
    key = bytearray()
    if r.token(key) <= 0 or r.peek() != 0x3D:
        return -1, None, None
    r.pos += 1
    value = bytearray()
    ret = r.skip_lwsp()
    if ret > 0:
        c = r.peek()
        if c == 0x22:
            ret = r.quoted_string(value)
        elif c == 0x3D:
            # Broken but common: name==?utf-8?b?...?=
            data = r.data
            while r.pos < r.end and data[r.pos] not in b"; \t\r\n":
                value.append(data[r.pos])
                r.pos += 1
        else:
            ret = r.token(value)
    if ret < 0:
        return -1, None, None
    return 1, bytes(key), bytes(value)


def _params(r: _Reader) -> list[tuple[bytes, bytes]]:
    """Parameters in order, RFC 2231 continuations (`name*0*=`) merged into `name*`.

    Merged values are not decoded (clients get `utf-8''%E2%82%AC` as sent). A continuation
    with a missing index is left as its separate pieces.
    """
    plain: list[tuple[bytes, bytes]] = []
    pieces: list[tuple[bytes, int, bool, bytes]] = []
    while True:
        status, key, value = _param(r)
        if status == 0:
            break
        if status < 0:
            if r.pos >= r.end:
                break
            r.pos += 1
            continue
        star = key.find(b"*")
        if star < 0:
            plain.append((key, value))
            continue
        rest = key[star + 1:]
        digits = rest.rstrip(b"*")
        if rest == b"":
            pieces.append((key[:star], 0, True, value))
        elif digits.isdigit() and rest in (digits, digits + b"*"):
            pieces.append((key[:star], int(digits), rest.endswith(b"*"), value))
        else:
            plain.append((key, value))
    if not pieces:
        return plain
    pieces.sort(key=lambda p: (p[0].lower(), p[1]))
    i = 0
    while i < len(pieces):
        name = pieces[i][0].lower()
        j = i
        while j < len(pieces) and pieces[j][0].lower() == name:
            j += 1
        group = pieces[i:j]
        extended = any(p[2] for p in group)
        if any(p[1] != n for n, p in enumerate(group)):
            for key, idx, ext, value in group:
                plain.append((key + b"*%d" % idx + (b"*" if ext else b""), value))
        else:
            value = b"".join(p[3] for p in group)
            if extended and not group[0][2]:
                value = b"''" + value
            plain.append((group[0][0] + (b"*" if extended else b""), value))
        i = j
    return plain


def _cte(value: bytes) -> bytes | None:
    r = _Reader(value)
    r.skip_lwsp()
    out = bytearray()
    if r.token(out) < 0 or r.skip_lwsp() != 0 or not out:
        return None
    return bytes(out)


def _disposition(value: bytes):
    r = _Reader(value)
    r.skip_lwsp()
    out = bytearray()
    if r.token(out) < 0:
        return None
    return bytes(out), _params(r)


def _languages(value: bytes) -> list[bytes] | None:
    r = _Reader(value)
    r.skip_lwsp()
    langs = []
    while True:
        out = bytearray()
        if r.atom(out) < 0:
            break
        langs.append(bytes(out))
        if r.peek() != 0x2C:
            break
        r.pos += 1
        r.skip_lwsp()
    return langs or None


class _Content:
    """The Content-* data of one part, as BODYSTRUCTURE reports it."""

    __slots__ = ("type", "subtype", "params", "id", "description", "cte", "md5",
                 "disposition", "language", "location")

    def __init__(self):
        self.type = self.subtype = None
        self.params: list[tuple[bytes, bytes]] = []
        self.id = self.description = self.cte = self.md5 = self.location = None
        self.disposition = None
        self.language = None


def _content(raw: bytes, part: Part) -> _Content:
    if part.content is None:
        part.content = _read_content(raw, part)
    return part.content


def _read_content(raw: bytes, part: Part) -> _Content:
    c = _Content()
    if not part.flags & IS_MIME:
        return c
    seen: set[bytes] = set()
    for name, value in _fields(raw, part.start, part.hdr_end, _MIME_FIELD):
        if not name.startswith(b"content-") or name in seen:
            continue
        kind = name[8:]
        # The first of each header counts; for these three, the first *usable* one.
        if kind not in (b"transfer-encoding", b"language", b"disposition"):
            seen.add(name)
        if kind == b"type":
            text, ok, r = _content_type(value)
            main, _, sub = text.partition(b"/")
            c.type, c.subtype = main, sub
            if ok:
                c.params = _params(r)
        elif kind == b"transfer-encoding":
            c.cte = _cte(value)
            if c.cte is not None:
                seen.add(name)
        elif kind == b"id":
            c.id = value
        elif kind == b"md5":
            c.md5 = value
        elif kind == b"description":
            c.description = value
        elif kind == b"location":
            c.location = value
        elif kind == b"language":
            c.language = _languages(value)
            if c.language is not None:
                seen.add(name)
        elif kind == b"disposition":
            disposition = _disposition(value)
            if disposition is not None:
                c.disposition = disposition
                if disposition[1]:
                    seen.add(name)
    return c


# -- the part tree ------------------------------------------------------------------------------


def _match_boundary(raw: bytes, ls: int, stack: list) -> tuple[int, bool, int] | None:
    """If the line at ls is a boundary line of an open multipart: (stack index, closing,
    end of the line after its LF, or -1 when the data ends inside the line)."""
    start = ls + 2
    lf = raw.find(b"\n", start, start + _BOUNDARY_SCAN)
    if lf < 0:
        text = raw[start:start + _BOUNDARY_SCAN]
    else:
        size = lf - start
        if size and raw[lf - 1] == 13:
            size -= 1
        if size > 2 and raw[start + size - 2:start + size] == b"--":
            size -= 2
        text = raw[start:start + size]
    best = -1
    best_len = -1
    for idx in range(len(stack) - 1, -1, -1):
        b = stack[idx][0]
        if len(b) > best_len and text.startswith(b):
            best, best_len = idx, len(b)
            if best_len == len(text):
                break
    if best < 0:
        return None
    closing = raw[start + best_len:start + best_len + 2] == b"--"
    lf = raw.find(b"\n", start + best_len)
    return best, closing, (lf + 1 if lf >= 0 else -1)


def _next_boundary(raw: bytes, pos: int, stack: list):
    """The first boundary line at or after pos: (stack index, cut, line end, closing) or None.

    `cut` is where the content before the boundary ends: the CRLF before the line is the
    boundary's, unless the boundary is the very first line.
    """
    if not stack:
        return None
    if raw.startswith(b"--", pos):
        m = _match_boundary(raw, pos, stack)
        if m is not None:
            return m[0], pos, m[2], m[1]
    i = raw.find(b"\n--", pos)
    while i >= 0:
        m = _match_boundary(raw, i + 1, stack)
        if m is not None:
            cut = i - 1 if i > pos and raw[i - 1] == 13 else i
            return m[0], cut, m[2], m[1]
        i = raw.find(b"\n--", i + 1)
    return None


def _scan_header(raw: bytes, pos: int, stack: list):
    """(header end, boundary match or None, start of the empty line or -1) for the header
    starting at pos.

    With boundaries open, the header also ends at a boundary line; the search goes from
    one "--" line to the next, so every byte is looked at a bounded number of times.
    """
    n = len(raw)
    if not stack:
        blank, size = _blank_line(raw, pos, n)
        return blank + size, None, (blank if size else -1)
    if raw.startswith(b"--", pos):
        m = _match_boundary(raw, pos, stack)
        if m is not None:
            return pos, (m[0], pos, m[2], m[1]), -1
    seg = pos
    while True:
        i = raw.find(b"\n--", seg)
        limit = n if i < 0 else i + 1
        blank, size = _blank_line(raw, seg, limit)
        if size:
            return blank + size, None, blank
        if i < 0:
            return n, None, -1
        ls = i + 1
        m = _match_boundary(raw, ls, stack)
        if m is not None:
            # The header's last newline belongs to the boundary; the header ends before
            # it, while enclosing parts end at the boundary line.
            end = ls - 2 if ls - 2 >= pos and raw[ls - 2] == 13 else ls - 1
            return end, (m[0], ls, m[2], m[1]), -1
        seg = ls


def _header_flags(raw: bytes, start: int, end: int, parent_flags: int) -> tuple[int, bytes | None]:
    """MIME flags of a part from its header, and the multipart boundary if any."""
    flags = IS_MIME if parent_flags & MULTIPART else 0
    ctype = None
    for name, value in _fields(raw, start, end, _MIME_FIELD):
        if name == b"mime-version":
            flags |= IS_MIME
        elif name == b"content-type":
            flags |= IS_MIME
            if ctype is None:
                ctype = value
    boundary = None
    if ctype is not None and flags & IS_MIME:
        text, ok, r = _content_type(ctype)
        low = text.lower()
        if low == b"message/rfc822":
            flags |= RFC822
        elif low[:4] == b"text" and (len(low) == 4 or low[4:5] == b"/"):
            flags |= TEXT
        elif low.startswith(b"multipart/"):
            flags |= MULTIPART
            if low == b"multipart/digest":
                flags |= DIGEST
            if ok:
                for key, value in _params(r):
                    if key.lower() == b"boundary":
                        boundary = value[:_BOUNDARY_MAX]
                        break
    else:
        # No Content-Type (or not MIME): text/plain, or message/rfc822 inside a digest.
        flags |= RFC822 if parent_flags & DIGEST else TEXT
    return flags, boundary


def _parse(raw: bytes, pos: int, stack: list, parent_flags: int, depth: int, budget: list):
    """Parse the part starting at pos. Returns (part, the boundary match that ended it)."""
    budget[0] -= 1
    part = Part(pos)
    hdr_end, m, blank = _scan_header(raw, pos, stack)
    flags, boundary = _header_flags(raw, pos, hdr_end, parent_flags)
    if blank >= 0 and stack and raw.startswith(b"--", hdr_end):
        # An enclosing boundary right after the empty line: the empty line is the CRLF
        # that belongs to that boundary, so the header ends before it (and the body is
        # empty). The part's own boundary does not count.
        candidates = stack + [[boundary, part]] if flags & MULTIPART and boundary is not None else stack
        hit = _match_boundary(raw, hdr_end, candidates)
        if hit is not None and hit[0] < len(stack):
            hdr_end, m = blank, (hit[0], hdr_end, hit[2], hit[1])
    part.hdr_end = hdr_end
    if depth + 1 >= MAX_DEPTH or budget[0] <= 0:
        # Not opened: written as application/octet-stream by BODYSTRUCTURE.
        if boundary is not None:
            flags &= ~MULTIPART
            boundary = None
        flags &= ~RFC822
    part.flags = flags
    if m is not None:
        # The header ran into a boundary line: the part has no body.
        part.end = hdr_end
        if flags & RFC822:
            part.children = [Part(hdr_end, hdr_end, hdr_end, TEXT)]
        return part, m
    if flags & MULTIPART and boundary is not None:
        return _parse_multipart(raw, part, boundary, stack, depth, budget)
    if flags & RFC822:
        child, m = _parse(raw, hdr_end, stack, RFC822, depth + 1, budget)
        part.children = [child]
        part.end = m[1] if m is not None else child.end
        return part, m
    if budget[0] <= 0:
        # The last part we allow takes the rest of the message, boundaries and all.
        part.end = len(raw)
        return part, None
    m = _next_boundary(raw, hdr_end, stack)
    part.end = m[1] if m is not None else len(raw)
    return part, m


def _parse_multipart(raw: bytes, part: Part, boundary: bytes, stack: list, depth: int, budget: list):
    own = [boundary, part]
    stack.append(own)
    mine = len(stack) - 1
    m = _next_boundary(raw, part.hdr_end, stack)
    while m is not None:
        idx, cut, line_end, closing = m
        if stack[idx] is not own:
            part.end = cut
            return part, m
        if line_end < 0:
            # The data ends inside the boundary line: no part follows it.
            break
        if closing:
            del stack[mine:]
            m = _next_boundary(raw, line_end, stack)
            part.end = m[1] if m is not None else len(raw)
            return part, m
        del stack[mine + 1:]
        child, m = _parse(raw, line_end, stack, part.flags, depth + 1, budget)
        part.children.append(child)
    part.end = len(raw)
    return part, None


def parse(raw: bytes) -> Part:
    """The part tree of a message (cached by message bytes)."""
    facts = _cache.facts(raw)
    if facts.tree is None:
        facts.tree, _ = _parse(raw, 0, [], 0, 0, [MAX_PARTS])
    return facts.tree


# -- BODY / BODYSTRUCTURE --------------------------------------------------------------------


def _params_out(params: list[tuple[bytes, bytes]], default_charset: bool) -> bytes:
    if not params and not default_charset:
        return NIL
    items = []
    seen_charset = False
    for key, value in params:
        if default_charset and key.lower() == b"charset":
            seen_charset = True
        items.append(string(key))
        items.append(string(value))
    if default_charset and not seen_charset:
        items.append(b'"charset" "us-ascii"')
    return b"(" + b" ".join(items) + b")"


def _extension_tail(c: _Content, out: list) -> None:
    """Disposition, language and location: the tail both kinds of part share."""
    if c.disposition is None:
        out.append(b" NIL")
    else:
        kind, params = c.disposition
        out.append(b" (" + string(kind) + b" " + _params_out(params, False) + b")")
    if c.language is None:
        out.append(b" NIL")
    else:
        out.append(b" (" + b" ".join(string(lang) for lang in c.language) + b")")
    out.append(b" " + _nstring_text(c.location))


_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0'


def _write_structure(raw: bytes, part: Part, extensible: bool, out: list) -> None:
    c = _content(raw, part)
    if part.flags & MULTIPART:
        if part.children:
            for child in part.children:
                out.append(b"(")
                _write_structure(raw, child, extensible, out)
                out.append(b")")
        else:
            out.append(_EMPTY_BODY + (b" NIL NIL NIL NIL)" if extensible else b")"))
        out.append(b" " + string(c.subtype or b""))
        if extensible:
            out.append(b" " + _params_out(c.params, False))
            _extension_tail(c, out)
        return
    text = False
    if part.flags & RFC822:
        out.append(b'"message" "rfc822"')
    elif c.type is None:
        text = True
        out.append(b'"text" "plain"')
    elif c.type.lower() == b"multipart" or (c.type.lower() == b"message" and c.subtype.lower() == b"rfc822"):
        # A container we did not open (too deep, too many parts, or no subtype).
        out.append(b'"application" "octet-stream"')
    else:
        text = c.type.lower() == b"text"
        out.append(string(c.type) + b" " + string(c.subtype))
    out.append(b" " + _params_out(c.params, text))
    out.append(b" " + _nstring_text(c.id))
    out.append(b" " + _nstring_text(c.description))
    out.append(b" " + (string(c.cte) if c.cte is not None else b'"7bit"'))
    body = part.hdr_end
    out.append(b" %d" % (part.end - body))
    if text:
        out.append(b" %d" % raw.count(b"\n", body, part.end))
    elif part.flags & RFC822:
        child = part.children[0]
        out.append(b" " + _envelope_at(raw, child.start, child.hdr_end) + b" (")
        _write_structure(raw, child, extensible, out)
        out.append(b") %d" % raw.count(b"\n", body, part.end))
    if extensible:
        out.append(b" " + _nstring_text(c.md5))
        _extension_tail(c, out)


def _plain_7bit(raw: bytes, root: Part) -> bool:
    """A single-part text/plain message with nothing but charset=us-ascii and 7bit."""
    if root.flags & (MULTIPART | RFC822) or not root.flags & TEXT:
        return False
    c = _content(raw, root)
    if c.subtype is not None and c.subtype.lower() != b"plain":
        return False
    if c.params and (len(c.params) != 1 or c.params[0][0].lower() != b"charset"
                     or c.params[0][1].lower() != b"us-ascii"):
        return False
    if c.cte is not None and c.cte.lower() != b"7bit":
        return False
    return (c.id is None and c.description is None and c.md5 is None
            and c.disposition is None and c.language is None and c.location is None)


def bodystructure(raw: bytes, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (or BODY with extensible=False) as a parenthesised list (RFC 3501 §7.4.2).

    Types and parameters are sent as spelled in the message; defaults are
    "text" "plain" ("charset" "us-ascii") and "7bit". MD5 is the Content-MD5 header, if any.
    """
    facts = _cache.facts(raw)
    cached = facts.bodystructure if extensible else facts.body
    if cached is None:
        root = parse(raw)
        out = [b"("]
        if _plain_7bit(raw, root):
            # Dovecot writes such messages in a fixed spelling, whatever the header says.
            body = root.hdr_end
            out.append(b'"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d'
                       % (root.end - body, raw.count(b"\n", body, root.end)))
            if extensible:
                out.append(b" NIL NIL NIL NIL")
        else:
            _write_structure(raw, root, extensible, out)
        out.append(b")")
        cached = b"".join(out)
        if extensible:
            facts.bodystructure = cached
        else:
            facts.body = cached
    return cached


# -- sections ----------------------------------------------------------------------------------

_SECTION = re.compile(
    r"\A(?P<part>\d+(?:\.\d+)*)?(?:(?(part)\.)(?P<text>HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?"
    r"(?: +\((?P<fields>[^()]*)\))?\Z",
    re.I,
)
_FIELD_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s"()]+)')


def parse_section(spec: str) -> tuple[tuple[int, ...], str, tuple[bytes, ...]]:
    """Split a section spec into (part numbers, text, header names); ValueError if invalid.

    `text` is "", HEADER, TEXT, MIME, HEADER.FIELDS or HEADER.FIELDS.NOT (upper case);
    header names are lower-case bytes, for matching.
    """
    m = _SECTION.match(spec)
    if m is None:
        raise ValueError(f"invalid section {spec!r}")
    part = m.group("part")
    text = (m.group("text") or "").upper()
    fields_text = m.group("fields")
    numbers = tuple(int(n) for n in part.split(".")) if part else ()
    if text.startswith("HEADER.FIELDS"):
        if fields_text is None:
            raise ValueError(f"invalid section {spec!r}")
        names = tuple(
            (q or a).replace('\\"', '"').replace("\\\\", "\\").lower().encode("utf-8")
            for q, a in _FIELD_NAME.findall(fields_text)
        )
        if not names:
            raise ValueError(f"invalid section {spec!r}")
        return numbers, text, names
    if fields_text is not None or (text == "MIME" and not numbers):
        raise ValueError(f"invalid section {spec!r}")
    return numbers, text, ()


def _find(root: Part, numbers: tuple[int, ...]) -> Part | None:
    """The part a section number names, or None (RFC 3501 §6.4.5, as Dovecot resolves it).

    The message itself is part 1 when it is not multipart; the body of a message/rfc822 part
    is numbered as a message of its own.
    """
    part = root
    last = len(numbers) - 1
    for i, n in enumerate(numbers):
        more = i < last
        if part.flags & MULTIPART:
            if not 1 <= n <= len(part.children):
                return None
            part = part.children[n - 1]
        elif n != 1 or (more and not part.flags & RFC822):
            return None
        if more and part.flags & RFC822:
            part = part.children[0]
    return part


# One header field as sent: its first line and its continuation lines (the first line of a
# header may itself start with a blank).
_RAW_FIELD = re.compile(rb"[^\n]*\n?(?:[ \t][^\n]*\n?)*")


def _header_fields(raw: bytes, start: int, end: int, names: frozenset, exclude: bool) -> bytes:
    """The header lines of raw[start:end] whose field name is (or, excluding, is not) in names,
    with their folding, followed by the header's empty line."""
    block = raw[start:end]
    if block.endswith(b"\n\r\n") or block == b"\r\n":
        body, blank = block[:-2], b"\r\n"
    elif block.endswith(b"\n\n") or block == b"\n":
        body, blank = block[:-1], b"\n"
    else:
        body, blank = block, b""
    out = []
    for field in _RAW_FIELD.findall(body):
        colon = field.find(b":")
        lf = field.find(b"\n")
        if colon < 0 or 0 <= lf < colon:
            keep = exclude  # a line without a colon has no name to match
        else:
            keep = (field[:colon].rstrip(b" \t").lower() in names) != exclude
        if keep:
            out.append(field)
    if not blank and not exclude and block:
        # A header without its empty line (it ran to the end of the data or into a
        # boundary): Dovecot still ends the field list with one.
        blank = b"\r\n"
    out.append(blank)
    return b"".join(out)


def extract(raw: bytes, numbers: tuple[int, ...], text: str, names: tuple[bytes, ...] = ()) -> bytes:
    """The bytes of a parsed section; b"" when the part does not exist."""
    if not numbers:
        if text == "":
            return raw
        start, hdr = 0, header_end(raw)
    else:
        part = _find(parse(raw), numbers)
        if part is None:
            return b""
        if text == "":
            return raw[part.hdr_end:part.end]
        if text == "MIME":
            return raw[part.start:part.hdr_end]
        if not part.flags & RFC822:
            return b""
        inner = part.children[0]
        if text == "TEXT":
            return raw[inner.hdr_end:inner.end]
        start, hdr = inner.start, inner.hdr_end
    if text == "HEADER":
        return raw[start:hdr]
    if text == "TEXT":
        return raw[hdr:]
    return _header_fields(raw, start, hdr, frozenset(names), text == "HEADER.FIELDS.NOT")


def section(raw: bytes, spec: str) -> bytes:
    """The bytes of BODY[spec]: "" (all), HEADER, TEXT, HEADER.FIELDS (A B), 1.2, 1.2.MIME...

    A part that does not exist gives b"" (Dovecot sends an empty literal; RFC 3501 leaves it
    open). ValueError for a malformed spec.
    """
    numbers, text, names = parse_section(spec)
    return extract(raw, numbers, text, names)


# -- BINARY (RFC 3516) ---------------------------------------------------------------------------

_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _qp_decode(data: bytes) -> bytes:
    """Quoted-printable (RFC 2045 §6.7): blanks at line ends dropped, `=` at a line end
    joins lines, `=XX` is a byte; anything else malformed is kept as it is."""
    out = []
    lines = data.split(b"\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        eol = b""
        if i < last:
            eol = b"\n"
            if line.endswith(b"\r"):
                line, eol = line[:-1], b"\r\n"
        line = line.rstrip(b" \t")
        if line.endswith(b"="):
            out.append(line[:-1])
        else:
            out.append(line + eol)
    return _QP_ESCAPE.sub(lambda e: bytes((int(e.group(1), 16),)), b"".join(out))


def _decode(data: bytes, cte: bytes | None) -> tuple[bytes, bool]:
    """(decoded data, whether a transfer encoding was undone). Broken base64 is decoded as
    far as it goes rather than refused."""
    kind = (cte or b"7bit").lower()
    if kind in (b"7bit", b"8bit", b"binary"):
        return data, False
    if kind == b"base64":
        clean = _B64_JUNK.sub(b"", data)
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        return base64.b64decode(clean + b"=" * (-len(clean) % 4)), data != b""
    if kind == b"quoted-printable":
        return _qp_decode(data), data != b""
    raise UnknownCTE(kind.decode("ascii", "replace"))


def binary(raw: bytes, numbers: tuple[int, ...]) -> tuple[bytes, bool]:
    """BINARY[part]: (the part's body with its Content-Transfer-Encoding undone, whether
    anything was decoded).

    The whole message, multipart and message/rfc822 parts are sent as stored. Raises
    UnknownCTE for an encoding other than 7bit, 8bit, binary, base64 and quoted-printable.
    """
    if not numbers:
        return raw, False
    part = _find(parse(raw), numbers)
    if part is None:
        return b"", False
    body = raw[part.hdr_end:part.end]
    if part.flags & (MULTIPART | RFC822):
        return body, False
    return _decode(body, _content(raw, part).cte)
