"""Header fields: finding the fields a reader needs, their values, and where a header ends."""

from __future__ import annotations

import re


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
