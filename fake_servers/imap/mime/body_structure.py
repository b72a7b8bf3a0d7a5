"""BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) written from the part tree."""

from __future__ import annotations

from ..encode import NIL, string
from .content import _Content, _content
from .envelope_items import _envelope_at, _nstring_text
from .part import MULTIPART, RFC822, TEXT, Part, _cache
from .structure import parse


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
