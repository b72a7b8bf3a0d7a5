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

from .addresses import Address, parse_addresses
from .body_structure import bodystructure
from .envelope_items import envelope
from .headers import header_end
from .part import DIGEST, IS_MIME, MULTIPART, RFC822, TEXT, Part, _cache
from .sections import extract, parse_section, section
from .structure import MAX_DEPTH, MAX_PARTS, parse
from .transfer import UnknownCTE, binary

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
