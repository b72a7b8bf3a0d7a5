"""Body section specs (BODY[1.2.HEADER.FIELDS (...)]) and the bytes they name."""

from __future__ import annotations

import re

from .headers import header_end
from .part import MULTIPART, RFC822, Part
from .structure import parse


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
