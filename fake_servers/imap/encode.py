"""Writing IMAP response data: strings, literals, flag lists, dates (RFC 3501 §4, §9).

Every function returns bytes ready for the wire. The choice between atom, quoted string and
literal follows Dovecot 2.3, so that differential tests against it compare equal: quoted
unless the value has CR, LF, NUL or 8-bit bytes, or more than four quoted-specials.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

__all__ = [
    "NIL",
    "quoted",
    "literal",
    "literal8",
    "string",
    "nstring",
    "astring",
    "flag_list",
    "imap_date_time",
    "parse_date_time",
    "parse_date",
]

NIL = b"NIL"

# Quoting a string with many quoted-specials costs more than a literal; Dovecot switches to a
# literal after four of them, and so do we.
_MAX_ESCAPES = 4

# Bytes that can never appear inside a quoted string.
_NOT_QUOTABLE = re.compile(rb"[\x00\r\n\x80-\xff]")
_SPECIALS = re.compile(rb'["\\]')
# ASTRING-CHAR: any CHAR except atom-specials, but "]" is allowed (RFC 3501 §9).
_NOT_ASTRING_CHAR = re.compile(rb'[\x00-\x20\x7f-\xff(){%*"\\]')


def quoted(b: bytes) -> bytes:
    """A quoted string; `\\` and `"` are escaped. The caller makes sure `b` is quotable."""
    if b"\\" in b:
        b = b.replace(b"\\", b"\\\\")
    if b'"' in b:
        b = b.replace(b'"', b'\\"')
    return b'"' + b + b'"'


def literal(b: bytes) -> bytes:
    """A synchronizing literal: `{N}` CRLF and the bytes, as a server sends it."""
    return b"{%d}\r\n" % len(b) + b


def literal8(b: bytes) -> bytes:
    """A binary literal (RFC 3516): may carry NUL bytes."""
    return b"~{%d}\r\n" % len(b) + b


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _needs_literal(b: bytes, utf8: bool, max_quoted: int | None) -> bool:
    if max_quoted is not None and len(b) > max_quoted:
        return True
    bad = _NOT_QUOTABLE.search(b)
    if bad is not None:
        if not utf8 or b"\x00" in b or b"\r" in b or b"\n" in b:
            return True
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return True
    return len(_SPECIALS.findall(b)) > _MAX_ESCAPES


_PLAIN = re.compile(rb'[^\x00\r\n"\\\x80-\xff]*')


def string(value: bytes | str, utf8: bool = False, *, max_quoted: int | None = None) -> bytes:
    """A `string` (quoted or literal) holding `value` exactly.

    A literal is used when the data has CR, LF, NUL or 8-bit bytes (8-bit valid UTF-8 stays
    quoted when `utf8` is true, after UTF8=ACCEPT), more than four `"`/`\\`, or, when
    `max_quoted` is given, more bytes than that. Dovecot has no length limit, hence the default.
    """
    b = value.encode("utf-8") if isinstance(value, str) else value
    if _PLAIN.fullmatch(b) is not None and (max_quoted is None or len(b) <= max_quoted):
        return b'"' + b + b'"'
    b = bytes(b)
    if _needs_literal(b, utf8, max_quoted):
        return literal(b)
    return quoted(b)


def nstring(value: bytes | str | None, utf8: bool = False, *, max_quoted: int | None = None) -> bytes:
    """`NIL` for None, otherwise `string(value)`."""
    if value is None:
        return NIL
    return string(value, utf8, max_quoted=max_quoted)


def astring(value: bytes | str, utf8: bool = False, *, max_quoted: int | None = None) -> bytes:
    """An atom when every byte is an ASTRING-CHAR, otherwise a string.

    The empty string and `NIL` are always quoted so they cannot be read as nothing or as NIL.
    8-bit names are never atoms; with `utf8` (after UTF8=ACCEPT) valid UTF-8 is quoted
    instead of sent as a literal.
    """
    b = _as_bytes(value)
    if b and b.upper() != b"NIL" and _NOT_ASTRING_CHAR.search(b) is None:
        return b
    return string(b, utf8, max_quoted=max_quoted)


# -- flags ------------------------------------------------------------------------------------

# The order of the flag ABNF in RFC 3501 §9 (and of Dovecot's output), then \Recent.
_SYSTEM_ORDER = {
    "\\answered": 0,
    "\\flagged": 1,
    "\\deleted": 2,
    "\\seen": 3,
    "\\draft": 4,
    "\\recent": 5,
}
_flag_cache: dict[frozenset, bytes] = {}


def flag_list(flags) -> bytes:
    """`(\\Seen $Label)`: system flags in RFC order, then other flags sorted.

    Results are cached by flag set: a FETCH of 10,000 messages mostly repeats a few sets.
    """
    key = flags if isinstance(flags, frozenset) else frozenset(flags)
    cached = _flag_cache.get(key)
    if cached is not None:
        return cached
    system = sorted((f for f in key if f.lower() in _SYSTEM_ORDER), key=lambda f: _SYSTEM_ORDER[f.lower()])
    others = sorted(f for f in key if f.lower() not in _SYSTEM_ORDER)
    out = b"(" + " ".join(system + others).encode("utf-8") + b")"
    if len(_flag_cache) > 4096:
        _flag_cache.clear()
    _flag_cache[key] = out
    return out


# -- dates ------------------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {m.lower(): i for i, m in enumerate(_MONTHS, 1)}


_date_cache: dict[datetime, tuple] = {}  # equal instants in other zones differ: keep the offset


def imap_date_time(dt: datetime) -> bytes:
    """`"17-Jul-1996 02:44:25 -0700"`, quoted, in the datetime's own offset.

    The day has two digits, as Dovecot writes it; naive datetimes are taken as UTC.
    """
    cached = _date_cache.get(dt)
    if cached is not None and cached[0] == dt.utcoffset():
        return cached[1]
    text = _format_date_time(dt)
    if len(_date_cache) > 50000:
        _date_cache.clear()
    _date_cache[dt] = (dt.utcoffset(), text)
    return text


def _format_date_time(dt: datetime) -> bytes:
    offset = dt.utcoffset() if dt.tzinfo is not None else timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    text = "%02d-%s-%04d %02d:%02d:%02d %s%02d%02d" % (
        dt.day, _MONTHS[dt.month - 1], dt.year, dt.hour, dt.minute, dt.second,
        sign, minutes // 60, minutes % 60,
    )
    return b'"' + text.encode("ascii") + b'"'


_DATE_TIME = re.compile(
    r'"?([ \d]?\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"?\Z'
)
_DATE = re.compile(r'"?(\d{1,2})-([A-Za-z]{3})-(\d{4})"?\Z')


def _text(value: bytes | str) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError("date contains non-ASCII bytes") from exc
    return str(value)


def _month(name: str) -> int:
    try:
        return _MONTH_NUMBER[name.lower()]
    except KeyError:
        raise ValueError(f"unknown month {name!r}") from None


def parse_date_time(text: bytes | str) -> datetime:
    """Parse an APPEND `date-time` (`" 7-Jul-1996 02:44:25 -0700"`) into an aware datetime.

    Surrounding quotes are optional; the day may be `7`, ` 7` or `07`. ValueError otherwise.
    """
    m = _DATE_TIME.match(_text(text))
    if m is None:
        raise ValueError(f"invalid date-time {text!r}")
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    if int(zm) > 59:
        raise ValueError(f"invalid zone in {text!r}")
    offset = timedelta(hours=int(zh), minutes=int(zm))
    tz = timezone(-offset if sign == "-" else offset)
    return datetime(int(year), _month(mon), int(day), int(hh), int(mm), int(ss), tzinfo=tz)


def parse_date(text: bytes | str) -> date:
    """Parse a SEARCH `date` (`1-Feb-1994`, optionally quoted) into a date; ValueError otherwise."""
    m = _DATE.match(_text(text))
    if m is None:
        raise ValueError(f"invalid date {text!r}")
    day, mon, year = m.groups()
    return date(int(year), _month(mon), int(day))
