"""Parse SEARCH arguments (RETURN, CHARSET, search keys and their operands) into node trees."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from .errors import SUPPORTED_CHARSETS, BadCharset, SearchSyntaxError, _show
from .nodes import (
    _And,
    _Body,
    _Const,
    _Date,
    _Flag,
    _Header,
    _Keyword,
    _ModSeq,
    _Node,
    _Not,
    _Or,
    _Ranges,
    _Set,
    _Size,
)
from .query import SearchQuery

RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})

_MAX_NZ_NUMBER = 2**32 - 1  # sequence numbers and UIDs
_MAX_NUMBER64 = 2**63 - 1  # sizes (RFC 9051 number64) and mod-sequences
_MAX_NESTING = 64


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
