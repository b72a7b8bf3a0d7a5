"""SEARCH criteria: parse once with :func:`parse_search`, then match message by message.

Grammar: RFC 3501 / RFC 9051 §6.4.4 search keys, an optional ``RETURN (...)`` (RFC 4731, and
``SAVE`` from RFC 5182) before an optional ``CHARSET``, ``$`` for the saved result (RFC 5182) and
``MODSEQ`` (RFC 7162). Matching follows Dovecot 2.3, checked by hand against 2.3.19, because a
fake that finds more or less than a real server would give clients false verdicts:

- Strings compare as substrings after :func:`fold`, Dovecot's "decomposed titlecase": ``cafe``
  finds ``Café``, ``abc`` finds ``ＡＢＣ``, but ``ss`` does not find ``ß``.
- ``HEADER name value``: every occurrence of the field (names compared case-insensitively,
  ``Subject :`` counts as ``Subject``), unfolded (line breaks dropped, whitespace kept), RFC 2047
  encoded-words decoded, 8-bit bytes read as UTF-8. An empty value tests that the field exists.
  ``SUBJECT`` also squeezes runs of whitespace to one space. ``FROM``/``TO``/``CC``/``BCC`` match
  the address list rewritten as ``name <local@domain>, group: <a@b>;`` (comments dropped, a
  comment names an address that has no display name, names with non-atom characters quoted,
  routes kept). The raw
  encoded-word text itself never matches (Dovecot does not match it either); an encoded-word that
  cannot be decoded stays in the text as written.
- ``BODY`` searches text parts only (``text/*`` and parts without a Content-Type), decoded from
  base64/quoted-printable and from their charset (unknown charsets read as UTF-8), inside
  multiparts and attached messages; no headers, no preamble/epilogue, no attachments.
  ``TEXT`` searches the same plus every header line of the message and of its parts.
- ``BEFORE``/``ON``/``SINCE`` use the calendar date of ``internal_date`` in its own timezone (the
  date a client sees in INTERNALDATE). ``SENT*`` use the date written in the first ``Date:``
  field; a missing or unparsable ``Date:`` counts as 1 January 1970, as in Dovecot 2.3.
- ``\\Recent`` is never stored here, so ``RECENT`` and ``NEW`` match nothing and ``OLD`` all.
- ``LARGER``/``SMALLER`` compare ``msg.size``; ``MODSEQ`` compares ``msg.modseq`` whatever the
  entry name (Dovecot keeps no per-flag mod-sequences either).
- Search strings are UTF-8 with or without ``CHARSET``; invalid UTF-8 is a syntax error. A
  ``CHARSET`` after ``ENABLE UTF8=ACCEPT`` is a syntax error (RFC 6855 §3 and its erratum).
- Stricter than Dovecot: an impossible date such as ``31-Feb-2024`` is a syntax error.

Cheap criteria run first; a message's header block is split once per match call, its MIME tree is
walked only when ``BODY`` or ``TEXT`` is asked.
"""

from __future__ import annotations

import binascii
import functools
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import date
from email.utils import parsedate_tz
from typing import Any

__all__ = [
    "SUPPORTED_CHARSETS",
    "RETURN_OPTIONS",
    "SearchSyntaxError",
    "BadCharset",
    "SearchQuery",
    "parse_search",
    "search",
    "highest_modseq",
    "fold",
]

SUPPORTED_CHARSETS = ("US-ASCII", "UTF-8")
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})

_MAX_NZ_NUMBER = 2**32 - 1  # sequence numbers and UIDs
_MAX_NUMBER64 = 2**63 - 1  # sizes (RFC 9051 number64) and mod-sequences
_MAX_NESTING = 64
_MAX_MIME_DEPTH = 20
_NO_SENT_DATE = date(1970, 1, 1)


# --- errors -------------------------------------------------------------------------------


class SearchSyntaxError(ValueError):
    """The criteria are malformed: the session answers ``BAD`` with :attr:`text`."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class BadCharset(SearchSyntaxError):
    """``CHARSET`` names a charset we lack: answer ``NO [BADCHARSET (US-ASCII UTF-8)]``."""

    def __init__(self, charset: str):
        super().__init__(f"Unsupported charset {charset}")
        self.charset = charset
        self.supported = SUPPORTED_CHARSETS


def _show(token: Any) -> str:
    """A token as error text: one printable ASCII line (it goes on the wire), kept short."""
    if isinstance(token, list):
        text = "(...)"
    elif isinstance(token, bytes):
        text = '"' + token.decode("utf-8", "replace") + '"'
    else:
        text = str(token) if token != "" else '""'
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= 60 else text[:57] + "..."


# --- text folding ---------------------------------------------------------------------------


class _FoldTable(dict):
    """Fold of one code point, computed on first use (``str.translate`` calls ``__missing__``).

    Dovecot maps each character to its simple titlecase, then applies one level of its
    Unicode decomposition, canonical or compatibility alike.
    """

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        title = ch.title()
        if len(title) == 1:  # simple one-to-one mappings only: "ß" stays "ß"
            ch = title
        if "\uac00" <= ch <= "\ud7a3":  # Hangul syllables decompose algorithmically
            out = unicodedata.normalize("NFD", ch)
        else:
            parts = unicodedata.decomposition(ch).split()
            out = "".join(chr(int(p, 16)) for p in parts if not p.startswith("<")) or ch
        self[code] = out
        return out


_FOLD = _FoldTable()
_PLACEHOLDER = 0xF0000  # private use plane: NFKD and upper() leave it alone
_MAX_PLACEHOLDERS = 16
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_odd_bmp: re.Pattern[str] | None = None


@functools.lru_cache(maxsize=4096)
def _is_odd(ch: str) -> bool:
    """Whether ``NFKD(ch).upper()`` misses Dovecot's fold of ``ch``, or NFKD could reorder it."""
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF or code >= 0x30000:
        return True
    if not (unicodedata.decomposition(ch) or unicodedata.combining(ch)
            or ch.upper() != ch or ch.title() != ch):
        return False  # NFKD and upper() leave it as it is (Hangul decomposes alike)
    fast = unicodedata.normalize("NFKD", ch).upper()
    return (unicodedata.combining(ch) != 0 or fast != _FOLD[code]
            or unicodedata.combining(fast[:1]) != 0)


def _odd_bmp_pattern() -> re.Pattern[str]:
    """The odd characters of the BMP as one class (sre tests it through a bitmap), built on
    first use in about 0.1 s. Characters above the BMP are rare in a text: tested one by one."""
    global _odd_bmp
    if _odd_bmp is None:
        spans: list[list[int]] = []
        for code in range(0x80, 0x10000):
            if _is_odd.__wrapped__(chr(code)):
                if spans and spans[-1][1] == code - 1:
                    spans[-1][1] = code
                else:
                    spans.append([code, code])
        _odd_bmp = re.compile("[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in spans) + "]")
    return _odd_bmp


def fold(text: str) -> str:
    """Normalise text for case-insensitive substring matching, the way Dovecot does.

    Same result as translating every character through :class:`_FoldTable`, but at C speed:
    ``NFKD`` then ``upper()`` agrees with Dovecot except for a few characters (``ß``, ``ﬁ``,
    Vietnamese double accents, combining marks...), which are swapped for placeholders first.
    """
    if text.isascii():
        return text.upper()
    odd = set(_odd_bmp_pattern().findall(text))
    if _ASTRAL.search(text):
        odd.update(ch for ch in set(_ASTRAL.findall(text)) if _is_odd(ch))
    if not odd:
        return unicodedata.normalize("NFKD", text).upper()
    if len(odd) > _MAX_PLACEHOLDERS or max(odd) >= chr(_PLACEHOLDER):
        return text.translate(_FOLD)
    marks = {}
    for i, ch in enumerate(odd):
        mark = chr(_PLACEHOLDER + i)
        text = text.replace(ch, mark)
        marks[mark] = _FOLD[ord(ch)]
    out = unicodedata.normalize("NFKD", text).upper()
    for mark, folded in marks.items():
        out = out.replace(mark, folded)
    return out


# --- operands ---------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+\Z")
_DATE_TEXT = re.compile(r"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})\Z")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}


def _string(token: Any, key: str) -> str:
    """An astring operand: atoms as they are, quoted strings and literals decoded as UTF-8."""
    if isinstance(token, list):
        raise SearchSyntaxError(f"{key} expects a string, not a parenthesised list")
    if isinstance(token, bytes):
        try:
            return token.decode("utf-8")
        except UnicodeDecodeError:
            raise SearchSyntaxError(f"Invalid UTF-8 in the search string for {key}") from None
    return str(token)


def _number(token: Any, key: str, limit: int) -> int:
    if not isinstance(token, str) or not _DIGITS.match(token):
        raise SearchSyntaxError(f"Invalid number {_show(token)} for {key}")
    digits = token.lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > limit:
        raise SearchSyntaxError(f"Number {_show(token)} for {key} is out of range")
    return int(digits)


def _date(token: Any, key: str) -> date:
    """``d-Mon-yyyy``, bare or quoted (RFC 3501 ``date``)."""
    if isinstance(token, list):
        raise SearchSyntaxError(f"{key} expects a date, not a parenthesised list")
    text = token.decode("ascii", "replace") if isinstance(token, bytes) else str(token)
    m = _DATE_TEXT.match(text)
    month = _MONTHS.get(m.group(2).upper()) if m else None
    if m and month:
        try:
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            pass
    raise SearchSyntaxError(f"Invalid date {_show(token)} for {key}: expected d-Mon-yyyy")


_Ranges = tuple[tuple["int | None", "int | None"], ...]


def _sequence_set(text: str, key: str) -> _Ranges | None:
    """Parse ``1:5,7,9:*`` into ranges (``None`` stands for ``*``); ``$`` gives ``None``."""
    if text == "$":
        return None
    ranges = []
    for item in text.split(","):
        ends = item.split(":")
        if len(ends) > 2:
            raise SearchSyntaxError(f"Invalid {key} {_show(text)}")
        numbers = []
        for end in ends:
            if end == "*":
                numbers.append(None)
                continue
            digits = end.lstrip("0")  # leading zeros pass, as in Dovecot; zero itself does not
            if not _DIGITS.match(end) or not digits or len(digits) > 10:
                raise SearchSyntaxError(f"Invalid {key} {_show(text)}")
            if int(digits) > _MAX_NZ_NUMBER:
                raise SearchSyntaxError(f"Invalid {key} {_show(text)}")
            numbers.append(int(digits))
        ranges.append((numbers[0], numbers[-1]))
    return tuple(ranges)


def _in_ranges(ranges: _Ranges, n: int, largest: int) -> bool:
    for low, high in ranges:
        low = largest if low is None else low
        high = largest if high is None else high
        if low > high:
            low, high = high, low
        if low <= n <= high:
            return True
    return False


# --- the query tree ---------------------------------------------------------------------------


class _Node:
    """One search key. ``cost`` orders evaluation: 0 index data, 1 headers, 2 MIME body."""

    __slots__ = ()
    cost = 0
    children: tuple[_Node, ...] = ()

    def test(self, m: _View) -> bool:
        raise NotImplementedError


class _Const(_Node):
    __slots__ = ("value",)

    def __init__(self, value: bool):
        self.value = value

    def test(self, m: _View) -> bool:
        return self.value


class _Flag(_Node):
    __slots__ = ("flag", "want")

    def __init__(self, flag: str, want: bool):
        self.flag, self.want = flag, want

    def test(self, m: _View) -> bool:
        return (self.flag in m.flags()) == self.want


class _Keyword(_Node):
    __slots__ = ("name", "want")

    def __init__(self, name: str, want: bool):
        self.name, self.want = name.lower(), want

    def test(self, m: _View) -> bool:
        # A system flag is not a keyword: KEYWORD \Seen matches nothing, as in Dovecot.
        present = not self.name.startswith("\\") and self.name in m.flags()
        return present == self.want


class _Size(_Node):
    __slots__ = ("limit", "larger")

    def __init__(self, limit: int, larger: bool):
        self.limit, self.larger = limit, larger

    def test(self, m: _View) -> bool:
        return m.msg.size > self.limit if self.larger else m.msg.size < self.limit


class _Date(_Node):
    __slots__ = ("op", "day", "sent", "cost")

    def __init__(self, op: str, day: date, sent: bool):
        self.op, self.day, self.sent = op, day, sent
        self.cost = 1 if sent else 0

    def test(self, m: _View) -> bool:
        day = m.sent_date() if self.sent else m.msg.internal_date.date()
        if self.op == "BEFORE":
            return day < self.day
        if self.op == "ON":
            return day == self.day
        return day >= self.day


class _Set(_Node):
    """A sequence set (``uid=False``) or ``UID`` set; ``ranges is None`` means ``$``."""

    __slots__ = ("ranges", "uid")

    def __init__(self, ranges: _Ranges | None, uid: bool):
        self.ranges, self.uid = ranges, uid

    def test(self, m: _View) -> bool:
        if self.ranges is None:
            return m.msg.uid in m.saved
        if self.uid:
            return _in_ranges(self.ranges, m.msg.uid, m.largest_uid)
        return _in_ranges(self.ranges, m.seq, m.largest_seq)


class _ModSeq(_Node):
    __slots__ = ("value",)

    def __init__(self, value: int):
        self.value = value

    def test(self, m: _View) -> bool:
        return m.msg.modseq >= self.value


class _Header(_Node):
    """``mode`` is ``plain`` (HEADER), ``compress`` (SUBJECT) or ``address`` (FROM, TO...)."""

    __slots__ = ("name", "needle", "mode")
    cost = 1

    def __init__(self, name: str, needle: str, mode: str):
        self.name, self.needle, self.mode = name.lower(), fold(needle), mode

    def test(self, m: _View) -> bool:
        if not self.needle:
            return any(f[0] == self.name for f in m.fields())
        return any(self.needle in v for v in m.values(self.name, self.mode))


class _Body(_Node):
    __slots__ = ("needle", "with_headers")
    cost = 2

    def __init__(self, needle: str, with_headers: bool):
        self.needle, self.with_headers = fold(needle), with_headers

    def test(self, m: _View) -> bool:
        if not self.needle:
            return True
        heads, bodies = m.content()
        texts = heads + bodies if self.with_headers else bodies
        return any(self.needle in t for t in texts)


class _Not(_Node):
    __slots__ = ("children", "cost")

    def __init__(self, child: _Node):
        self.children, self.cost = (child,), child.cost

    def test(self, m: _View) -> bool:
        return not self.children[0].test(m)


class _Or(_Node):
    __slots__ = ("children", "cost")

    def __init__(self, a: _Node, b: _Node):
        self.children = tuple(sorted((a, b), key=lambda n: n.cost))
        self.cost = max(a.cost, b.cost)

    def test(self, m: _View) -> bool:
        return any(c.test(m) for c in self.children)


class _And(_Node):
    __slots__ = ("children", "cost")

    def __init__(self, items: list[_Node]):
        self.children = tuple(sorted(items, key=lambda n: n.cost))
        self.cost = max(n.cost for n in items)

    def test(self, m: _View) -> bool:
        return all(c.test(m) for c in self.children)


def _walk(node: _Node) -> Iterator[_Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


# --- parsing ----------------------------------------------------------------------------------

_FLAG_KEYS = {
    "ANSWERED": ("\\answered", True),
    "UNANSWERED": ("\\answered", False),
    "DELETED": ("\\deleted", True),
    "UNDELETED": ("\\deleted", False),
    "DRAFT": ("\\draft", True),
    "UNDRAFT": ("\\draft", False),
    "FLAGGED": ("\\flagged", True),
    "UNFLAGGED": ("\\flagged", False),
    "SEEN": ("\\seen", True),
    "UNSEEN": ("\\seen", False),
}
# \Recent is never stored, so RECENT and NEW (= RECENT UNSEEN) are empty and OLD is everything.
_CONST_KEYS = {"ALL": True, "OLD": True, "RECENT": False, "NEW": False}
_HEADER_KEYS = {
    "FROM": ("from", "address"),
    "TO": ("to", "address"),
    "CC": ("cc", "address"),
    "BCC": ("bcc", "address"),
    "SUBJECT": ("subject", "compress"),
}
_DATE_KEYS = {
    "BEFORE": ("BEFORE", False),
    "ON": ("ON", False),
    "SINCE": ("SINCE", False),
    "SENTBEFORE": ("BEFORE", True),
    "SENTON": ("ON", True),
    "SENTSINCE": ("SINCE", True),
}
_MODSEQ_ENTRY_TYPES = ("priv", "shared", "all")


class _Cursor:
    def __init__(self, items: Sequence[Any]):
        self.items, self.pos = items, 0

    def more(self) -> bool:
        return self.pos < len(self.items)

    def take(self, key: str) -> Any:
        if not self.more():
            raise SearchSyntaxError(f"Missing argument for {key}")
        self.pos += 1
        return self.items[self.pos - 1]


def _keys(cur: _Cursor, depth: int) -> _Node:
    """All keys left in ``cur``, ANDed."""
    items = [_key(cur, depth, "search key")]
    while cur.more():
        items.append(_key(cur, depth, "search key"))
    return items[0] if len(items) == 1 else _And(items)


def _key(cur: _Cursor, depth: int, owner: str) -> _Node:
    """One search key; ``owner`` names what needs it in the missing-argument error."""
    if depth > _MAX_NESTING:
        raise SearchSyntaxError("Search criteria are nested too deeply")
    token = cur.take(owner)
    if isinstance(token, list):
        if not token:
            raise SearchSyntaxError("Empty parenthesised list in search criteria")
        return _keys(_Cursor(token), depth + 1)
    if not isinstance(token, str):
        raise SearchSyntaxError(f"Unexpected string {_show(token)} where a search key belongs")
    if token and token[0] in "0123456789*$":
        return _Set(_sequence_set(token, "sequence set"), uid=False)
    key = token.upper() if token.isascii() else token

    if key in _FLAG_KEYS:
        return _Flag(*_FLAG_KEYS[key])
    if key in _CONST_KEYS:
        return _Const(_CONST_KEYS[key])
    if key in _HEADER_KEYS:
        name, mode = _HEADER_KEYS[key]
        return _Header(name, _string(cur.take(key), key), mode)
    if key in _DATE_KEYS:
        op, sent = _DATE_KEYS[key]
        return _Date(op, _date(cur.take(key), key), sent)
    if key in ("BODY", "TEXT"):
        return _Body(_string(cur.take(key), key), with_headers=key == "TEXT")
    if key == "HEADER":
        name = _string(cur.take(key), key)
        return _Header(name.strip(" \t"), _string(cur.take(key), key), "plain")
    if key in ("KEYWORD", "UNKEYWORD"):
        return _Keyword(_string(cur.take(key), key), want=key == "KEYWORD")
    if key in ("LARGER", "SMALLER"):
        return _Size(_number(cur.take(key), key, _MAX_NUMBER64), larger=key == "LARGER")
    if key == "UID":
        token = cur.take(key)
        if not isinstance(token, str):
            raise SearchSyntaxError(f"Invalid UID set {_show(token)}")
        return _Set(_sequence_set(token, "UID set"), uid=True)
    if key == "NOT":
        return _Not(_key(cur, depth + 1, "NOT"))
    if key == "OR":
        first = _key(cur, depth + 1, "OR")
        return _Or(first, _key(cur, depth + 1, "OR"))
    if key == "MODSEQ":
        return _modseq(cur)
    raise SearchSyntaxError(f"Unknown search key {_show(token)}")


def _modseq(cur: _Cursor) -> _ModSeq:
    """``MODSEQ [entry-name entry-type] mod-sequence-valzer`` (RFC 7162 §3.1.5)."""
    token = cur.take("MODSEQ")
    if isinstance(token, str) and _DIGITS.match(token):
        return _ModSeq(_number(token, "MODSEQ", _MAX_NUMBER64))
    entry = _string(token, "MODSEQ")
    if not entry.lower().startswith("/flags/") or len(entry) == len("/flags/"):
        raise SearchSyntaxError(f"Invalid MODSEQ entry name {_show(token)}")
    kind = cur.take("MODSEQ")
    if not isinstance(kind, str) or kind.lower() not in _MODSEQ_ENTRY_TYPES:
        raise SearchSyntaxError(
            f"Invalid MODSEQ entry type {_show(kind)}: expected priv, shared or all"
        )
    return _ModSeq(_number(cur.take("MODSEQ"), "MODSEQ", _MAX_NUMBER64))


def _is_word(token: Any, word: str) -> bool:
    return isinstance(token, str) and token.isascii() and token.upper() == word


def _return_options(token: Any) -> frozenset[str]:
    if not isinstance(token, list):
        raise SearchSyntaxError("RETURN expects a parenthesised list of options")
    options = set()
    for item in token:
        if not isinstance(item, str) or not item.isascii() or item.upper() not in RETURN_OPTIONS:
            raise SearchSyntaxError(f"Unknown RETURN option {_show(item)}")
        options.add(item.upper())
    return frozenset(options or {"ALL"})


def parse_search(args: Sequence[Any], *, utf8_enabled: bool = False) -> SearchQuery:
    """Parse SEARCH arguments (after the command name) into a :class:`SearchQuery`.

    Raises :class:`SearchSyntaxError` (answer ``BAD``), or its subclass :class:`BadCharset`
    (answer ``NO [BADCHARSET (US-ASCII UTF-8)]``).
    """
    args = list(args)
    pos = 0
    return_options = None
    if pos < len(args) and _is_word(args[pos], "RETURN"):
        if pos + 1 >= len(args):
            raise SearchSyntaxError("Missing argument for RETURN")
        return_options = _return_options(args[pos + 1])
        pos += 2
    charset = None
    if pos < len(args) and _is_word(args[pos], "CHARSET"):
        if utf8_enabled:
            raise SearchSyntaxError("CHARSET is not allowed after ENABLE UTF8=ACCEPT")
        if pos + 1 >= len(args):
            raise SearchSyntaxError("Missing argument for CHARSET")
        name = args[pos + 1]
        if isinstance(name, list):
            raise SearchSyntaxError("CHARSET expects a charset name, not a parenthesised list")
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        if not text.isascii() or text.upper() not in SUPPORTED_CHARSETS:
            raise BadCharset(_show(text))
        charset = text.upper()
        pos += 2
    if pos >= len(args):
        raise SearchSyntaxError("Missing search criteria")
    root = _keys(_Cursor(args[pos:]), 0)
    return SearchQuery(root, charset=charset, return_options=return_options)


# --- one message, as the criteria see it ------------------------------------------------------

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")
_LWSP = re.compile(r"[ \t\r\n]+")
_ENCODED_WORD = re.compile(r"=\?([^?]*)\?([bBqQ])\?(.*?)\?=")
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^\s;]*))', re.S)
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")

# One parsed header field: (lower-cased name, the whole unfolded line, the unfolded value).
_Field = tuple[str, str, str]


def _split_message(raw: bytes) -> tuple[bytes, bytes]:
    """Header block and body, at the first empty line (CRLF or bare LF)."""
    if raw.startswith(b"\n"):
        return b"", raw[1:]
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    m = _BLANK_LINE.search(raw)
    if m is None:
        return raw, b""
    return raw[: m.start()], raw[m.end() :]


def _parse_fields(header: bytes) -> list[_Field]:
    lines: list[str] = []
    for line in _LINE_BREAK.split(header.decode("utf-8", "replace")):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line  # unfold: the line break goes, the whitespace stays
        elif line:
            lines.append(line)
    fields: list[_Field] = []
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            fields.append((name.rstrip(" \t").lower(), line, value.lstrip(" \t")))
        else:  # Dovecot's reading: a field with an empty name whose value is the line
            fields.append(("", line, line))
    return fields


def _first(fields: list[_Field], name: str) -> str | None:
    for field_name, _, value in fields:
        if field_name == name:
            return value
    return None


def _to_text(data: bytes, charset: str | None) -> str:
    """Bytes in a MIME charset as text; unknown or missing charsets read as UTF-8."""
    name = (charset or "").strip().lower()
    if name and name not in ("us-ascii", "ascii", "utf-8", "utf8"):
        try:
            return data.decode(name, "replace")
        except (LookupError, ValueError, TypeError):
            pass
    return data.decode("utf-8", "replace")


def _unbase64(data: bytes) -> bytes:
    """Lenient base64: junk characters dropped, padding repaired."""
    data = _BASE64_JUNK.sub(b"", data)
    extra = len(data) % 4
    if extra == 1:
        data = data[:-1]
    elif extra:
        data += b"=" * (4 - extra)
    return binascii.a2b_base64(data)


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words; whitespace between two adjacent words goes away."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    after_word = False
    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos : m.start()]
        charset, encoding, payload = m.groups()
        data = payload.encode("utf-8", "replace")
        try:
            raw = _unbase64(data) if encoding in "bB" else binascii.a2b_qp(data, header=True)
        except (binascii.Error, ValueError):
            out.append(gap + m.group(0))
            after_word, pos = False, m.end()
            continue
        if not (after_word and not gap.strip(" \t\r\n")):
            out.append(gap)
        out.append(_to_text(raw, charset.partition("*")[0]))
        after_word, pos = True, m.end()
    out.append(text[pos:])
    return "".join(out)


def _address_tokens(text: str) -> list[tuple[str, str]]:
    """Split an address list into (kind, text): ``word``, ``quoted``, ``comment`` or a special."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in "<>,:;@":
            tokens.append((ch, ch))
            i += 1
        elif ch in "\"(":
            close, depth, j, buf = ('"' if ch == '"' else ")"), 1, i + 1, []
            while j < n:
                c = text[j]
                if c == "\\" and j + 1 < n:
                    j += 1
                    c = text[j]
                elif c == close:
                    depth -= 1
                    if depth == 0:
                        break
                elif c == "(" and ch == "(":
                    depth += 1
                buf.append(c)
                j += 1
            tokens.append(("quoted" if ch == '"' else "comment", "".join(buf)))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n"(<>,:;@':
                j += 1
            tokens.append(("word", text[i:j]))
            i = j
    return tokens


_ATEXT_SPECIALS = set("!#$%&'*+-/=?^_`{|}~")


def _quote_name(name: str) -> str:
    """Quote a display or group name unless it is atoms only; encoded-words stay bare so that
    they are decoded afterwards (what Dovecot does)."""
    if "=?" in name or all(c.isalnum() or c in _ATEXT_SPECIALS or not c.isascii() for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _phrase(tokens: list[tuple[str, str]]) -> str:
    return " ".join(text for kind, text in tokens if kind in ("word", "quoted"))


def _format_mailbox(tokens: list[tuple[str, str]]) -> str:
    kinds = [kind for kind, _ in tokens]
    if "<" in kinds:
        start = kinds.index("<")
        name = _phrase(tokens[:start])
        inner = tokens[start + 1 :]
        if ">" in kinds[start + 1 :]:
            inner = inner[: kinds[start + 1 :].index(">")]
    else:
        comments = [text.strip() for kind, text in tokens if kind == "comment"]
        name = comments[-1] if comments else ""
        inner = tokens
    spec = "".join(text for kind, text in inner if kind not in ("comment", "<", ">"))
    return f"{_quote_name(name)} <{spec}>" if name else f"<{spec}>"


def _normalize_addresses(value: str) -> str:
    """An address list rewritten the way Dovecot matches it:
    ``name <addr>, <@route:addr>, group: <addr>, <addr>;, empty:;``."""
    out: list[str] = []
    group: tuple[str, list[str]] | None = None
    current: list[tuple[str, str]] = []
    in_angle = False

    def flush() -> None:
        if current:
            (group[1] if group is not None else out).append(_format_mailbox(current))
        current.clear()

    def close_group() -> None:
        assert group is not None
        name, members = _quote_name(group[0]), group[1]
        out.append(f"{name}: {', '.join(members)};" if members else f"{name}:;")

    for kind, text in _address_tokens(value):
        if in_angle or kind == "<":  # a route's "," and ":" belong to the address
            in_angle = kind != ">"
            current.append((kind, text))
        elif kind == ",":
            flush()
        elif kind == ":" and group is None:
            group = (_phrase(current), [])
            current.clear()
        elif kind == ";" and group is not None:
            flush()
            close_group()
            group = None
        else:
            current.append((kind, text))
    flush()
    if group is not None:
        close_group()
    return ", ".join(out)


def _render(value: str, mode: str) -> str:
    if mode == "address":
        return _decode_words(_normalize_addresses(value))
    if mode == "compress":
        return _decode_words(_LWSP.sub(" ", value).lstrip(" "))
    return _decode_words(value)


def _content_type(fields: list[_Field], default: str) -> tuple[str, dict[str, str]]:
    value = _first(fields, "content-type")
    if value is None:
        return default, {}
    main, _, rest = value.partition(";")
    params = {
        name.lower(): re.sub(r"\\(.)", r"\1", quoted) if quoted else bare
        for name, quoted, bare in _PARAM.findall(";" + rest)
    }
    main = main.strip().lower()
    return (main if "/" in main else "text/plain"), params


def _decode_transfer(data: bytes, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            return _unbase64(data)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(data)
    except (binascii.Error, ValueError):
        pass
    return data


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts between delimiter lines; the preamble and the epilogue are dropped."""
    delimiter = b"--" + boundary
    parts: list[bytes] = []
    current: list[bytes] | None = None
    for line in body.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n").rstrip(b" \t")
        if bare.startswith(delimiter) and bare[len(delimiter) :] in (b"", b"--"):
            if current is not None:
                parts.append(_strip_last_break(b"".join(current)))
            if bare.endswith(b"--") and bare != delimiter:
                return parts
            current = []
        elif current is not None:
            current.append(line)
    if current is not None:  # no closing delimiter
        parts.append(b"".join(current))
    return parts


def _strip_last_break(part: bytes) -> bytes:
    """The line break before a delimiter belongs to the delimiter."""
    if part.endswith(b"\r\n"):
        return part[:-2]
    if part.endswith((b"\n", b"\r")):
        return part[:-1]
    return part


def _collect(
    fields: list[_Field], body: bytes, default: str, depth: int, heads: list[str], bodies: list[str]
) -> None:
    """Gather the searchable text of one MIME entity: header lines and decoded text bodies."""
    heads.extend(_decode_words(line) for _, line, _ in fields)
    if depth >= _MAX_MIME_DEPTH:
        return
    ctype, params = _content_type(fields, default)
    encoding = (_first(fields, "content-transfer-encoding") or "").strip().lower()
    boundary = params.get("boundary")
    if ctype.startswith("multipart/") and boundary:
        child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        for part in _split_multipart(body, boundary.encode("utf-8", "replace")):
            head, rest = _split_message(part)
            _collect(_parse_fields(head), rest, child_default, depth + 1, heads, bodies)
    elif ctype == "message/rfc822":
        head, rest = _split_message(_decode_transfer(body, encoding))
        _collect(_parse_fields(head), rest, "text/plain", depth + 1, heads, bodies)
    elif ctype.startswith(("text/", "multipart/")):
        bodies.append(_to_text(_decode_transfer(body, encoding), params.get("charset")))


class _View:
    """One message during one match: parses lazily and caches what the criteria ask for."""

    __slots__ = ("msg", "seq", "largest_seq", "largest_uid", "saved", "_split", "_fields",
                 "_flags", "_values", "_content")

    def __init__(self, msg: Any, seq: int, largest_seq: int, largest_uid: int,
                 saved: Collection[int]):
        self.msg, self.seq, self.saved = msg, seq, saved
        self.largest_seq, self.largest_uid = largest_seq, largest_uid
        self._split: tuple[bytes, bytes] | None = None
        self._fields: list[_Field] | None = None
        self._flags: set[str] | None = None
        self._values: dict[tuple[str, str], list[str]] = {}
        self._content: tuple[list[str], list[str]] | None = None

    def flags(self) -> set[str]:
        if self._flags is None:
            self._flags = {f.lower() for f in self.msg.flags}
        return self._flags

    def split(self) -> tuple[bytes, bytes]:
        if self._split is None:
            self._split = _split_message(self.msg.raw)
        return self._split

    def fields(self) -> list[_Field]:
        if self._fields is None:
            self._fields = _parse_fields(self.split()[0])
        return self._fields

    def values(self, name: str, mode: str) -> list[str]:
        """Every value of the field ``name``, rendered for ``mode`` and folded."""
        found = self._values.get((name, mode))
        if found is None:
            found = [fold(_render(v, mode)) for n, _, v in self.fields() if n == name]
            self._values[(name, mode)] = found
        return found

    def content(self) -> tuple[list[str], list[str]]:
        """Folded header lines (all entities) and folded text bodies, for BODY and TEXT."""
        if self._content is None:
            heads: list[str] = []
            bodies: list[str] = []
            _collect(self.fields(), self.split()[1], "text/plain", 0, heads, bodies)
            self._content = ([fold(t) for t in heads], [fold(t) for t in bodies])
        return self._content

    def sent_date(self) -> date:
        value = _first(self.fields(), "date")
        if value is None:
            return _NO_SENT_DATE
        try:
            parsed = parsedate_tz(value)
            if parsed:
                return date(parsed[0], parsed[1], parsed[2])
        except (ValueError, TypeError, IndexError, OverflowError):
            pass
        return _NO_SENT_DATE


# --- the public query -------------------------------------------------------------------------


class SearchQuery:
    """A parsed SEARCH program.

    ``return_options`` is ``None`` for a plain SEARCH, else the ESEARCH options (``RETURN ()``
    means ``{"ALL"}``). ``uses_modseq``: the response must carry ``(MODSEQ n)`` (RFC 7162);
    ``has_not``: the criteria use NOT (some provider personas refuse it); ``uses_saved``: they
    refer to ``$``, the saved result (RFC 5182).
    """

    __slots__ = ("root", "charset", "return_options", "uses_modseq", "has_not", "uses_saved")

    def __init__(self, root: _Node, *, charset: str | None = None,
                 return_options: frozenset[str] | None = None):
        self.root = root
        self.charset = charset
        self.return_options = return_options
        nodes = list(_walk(root))
        self.uses_modseq = any(isinstance(n, _ModSeq) for n in nodes)
        self.has_not = any(isinstance(n, _Not) for n in nodes)
        self.uses_saved = any(isinstance(n, _Set) and n.ranges is None for n in nodes)

    def matches(self, msg: Any, seq: int, *, largest_seq: int, largest_uid: int,
                saved_uids: Collection[int] = frozenset()) -> bool:
        """Whether message ``msg`` at sequence number ``seq`` satisfies the criteria.

        ``largest_seq``/``largest_uid`` give ``*``; ``saved_uids`` is the result ``$`` names.
        """
        return self.root.test(_View(msg, seq, largest_seq, largest_uid, saved_uids))

    def __repr__(self) -> str:
        return f"<SearchQuery charset={self.charset} return={self.return_options}>"


def search(query: SearchQuery, messages: Sequence[Any], *,
           saved_uids: Iterable[int] = ()) -> list[tuple[int, Any]]:
    """``(seq, msg)`` for every matching message; ``messages`` is the folder in sequence order."""
    saved = saved_uids if isinstance(saved_uids, (set, frozenset)) else frozenset(saved_uids)
    largest_uid = messages[-1].uid if messages else 0
    return [
        (seq, msg)
        for seq, msg in enumerate(messages, 1)
        if query.matches(msg, seq, largest_seq=len(messages), largest_uid=largest_uid,
                         saved_uids=saved)
    ]


def highest_modseq(messages: Iterable[Any]) -> int | None:
    """The ``n`` of ``(MODSEQ n)``: the highest mod-sequence among the matches, ``None`` if none
    matched (RFC 7162 §3.1.5: then the response has no MODSEQ)."""
    return max((m.modseq for m in messages), default=None)
