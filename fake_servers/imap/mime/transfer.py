"""BINARY (RFC 3516): undoing a part's Content-Transfer-Encoding."""

from __future__ import annotations

import base64
import re

from .content import _content
from .part import MULTIPART, RFC822
from .sections import _find
from .structure import parse


class UnknownCTE(Exception):
    """BINARY asked for a part whose Content-Transfer-Encoding we cannot decode (RFC 3516)."""


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
