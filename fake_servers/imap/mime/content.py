"""Content-Type, Content-Transfer-Encoding and the other Content-* fields of a part."""

from __future__ import annotations

from .headers import _MIME_FIELD, _fields
from .part import IS_MIME, Part
from .tokens import _Reader


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
