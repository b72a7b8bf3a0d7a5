"""Making a message fit a 7-bit transport, touching only the parts that need it.

When the server does not offer 8BITMIME (RFC 6152), a body with 8-bit bytes must not be
sent as it is. Every leaf part holding 8-bit bytes (or a line longer than the 998 octets
RFC 5322 §2.1.1 allows) is re-encoded: ``text/*`` as quoted-printable, anything else as
base64, with its ``Content-Transfer-Encoding`` field replaced. Multiparts are walked along
their boundaries and ``message/rfc822`` parts into the enclosed message (which may not be
encoded as a whole, RFC 2046 §5.2.1). Every other byte, headers included, stays as it was,
so decoding the result gives back exactly the original content.

A message whose top level is not MIME at all gets ``MIME-Version``, a ``text/plain``
``Content-Type`` (charset utf-8 when the bytes are UTF-8, else ``unknown-8bit``, RFC 1428)
and the encoding it is given. Bytes that cannot be re-encoded this way (8-bit in a
multipart's preamble, in a part already labelled base64, or in a header) stay 8-bit: the
caller checks :func:`body_is_8bit` on the result and refuses to send such a message.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from .outbox import split_header

MAX_LINE = 998  # octets, without the CRLF

_8BIT = re.compile(rb"[\x80-\xff]")
_CTE = re.compile(rb"^content-transfer-encoding[ \t]*:", re.IGNORECASE)


def has_8bit(data: bytes) -> bool:
    return _8BIT.search(data) is not None


def has_long_line(data: bytes) -> bool:
    """Whether a line of ``data`` (CRLF line endings) is longer than :data:`MAX_LINE` octets."""
    if len(data) <= MAX_LINE:
        return False
    return max(map(len, data.split(b"\r\n"))) > MAX_LINE


def header_is_8bit(message: bytes) -> bool:
    return has_8bit(split_header(message)[0])


def body_is_8bit(message: bytes) -> bool:
    return has_8bit(split_header(message)[1])


def needs_encoding(message: bytes) -> bool:
    """Whether the body has 8-bit bytes or over-long lines (CRLF data)."""
    body = split_header(message)[1]
    return has_8bit(body) or has_long_line(body)


def to_7bit(message: bytes) -> bytes:
    """``message`` (CRLF line endings) with every part that needs it re-encoded."""
    return _entity(message, top=True)


def _entity(entity: bytes, *, top: bool = False) -> bytes:
    header, body = split_header(entity)
    if not (has_8bit(body) or has_long_line(body)):
        return entity
    fields = BytesHeaderParser(policy=compat32).parsebytes(header + b"\r\n")
    ctype = fields.get_content_type()
    if fields.get_content_maintype() == "multipart":
        boundary = fields.get_boundary()
        if boundary:
            return header + _multipart(body, boundary.encode("utf-8", "surrogateescape"))
        return entity
    if ctype in ("message/rfc822", "message/global"):
        return header + body[:2] + _entity(body[2:])
    encoding = str(fields.get("content-transfer-encoding", "7bit")).strip().lower()
    if encoding in ("base64", "quoted-printable"):
        return entity  # already encoded (and broken if 8-bit): nothing honest to do here
    content = body[2:]  # after the empty line that ends the header
    if top and fields.get("content-type") is None:
        charset = "utf-8" if _is_utf8(content) else "unknown-8bit"
        extra = b"" if fields.get("mime-version") is not None else b"MIME-Version: 1.0\r\n"
        extra += b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        header += extra
    if fields.get_content_maintype() == "text":
        cte, encoded = b"quoted-printable", binascii.b2a_qp(content, quotetabs=False, istext=True)
    else:
        cte, encoded = b"base64", base64.encodebytes(content).replace(b"\n", b"\r\n")
    return _replace_cte(header, cte) + b"\r\n" + encoded


def _multipart(body: bytes, boundary: bytes) -> bytes:
    """The body of a multipart with each part passed through :func:`_entity`; delimiter
    lines, preamble and epilogue are kept byte for byte."""
    delimiter = re.compile(rb"(?m)^--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\Z)")
    out = []
    pos = 0
    inside = False
    for match in delimiter.finditer(body):
        segment = body[pos:match.start()]
        if inside:
            # the CRLF before a delimiter line belongs to the delimiter (RFC 2046 §5.1.1)
            content, tail = (segment[:-2], b"\r\n") if segment.endswith(b"\r\n") else (segment, b"")
            out.append(_entity(content) + tail)
        else:
            out.append(segment)  # preamble (or the empty line that ends the header)
        out.append(match.group(0))
        pos = match.end()
        if match.group(1):  # the close delimiter: what follows is the epilogue
            inside = False
            break
        inside = True
    rest = body[pos:]
    out.append(_entity(rest) if inside and rest else rest)
    return b"".join(out)


def _replace_cte(header: bytes, cte: bytes) -> bytes:
    lines = header.split(b"\r\n")[:-1]
    kept = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = _CTE.match(line) is not None
        if not dropping:
            kept.append(line)
    kept.append(b"Content-Transfer-Encoding: " + cte)
    return b"".join(line + b"\r\n" for line in kept)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
