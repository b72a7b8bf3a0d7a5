"""The part tree: headers, boundaries and nesting of a raw message, as Dovecot 2.3 reads them."""

from __future__ import annotations

from .content import _content_type, _params
from .headers import _MIME_FIELD, _blank_line, _fields
from .part import DIGEST, IS_MIME, MULTIPART, RFC822, TEXT, Part, _cache


MAX_DEPTH = 100
MAX_PARTS = 10000

# RFC 2046 limits a boundary to 70 characters; like Dovecot, look a little further and
# truncate absurd ones (matching is by prefix, so truncation keeps them working).
_BOUNDARY_MAX = 80
_BOUNDARY_SCAN = 70 + 2 + 2 + 10


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
