"""IMAP response data encoding (RFC 3501 §4, §9): strings, literals, flag lists, dates."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_servers.imap.encode import (
    NIL,
    astring,
    flag_list,
    imap_date_time,
    literal,
    literal8,
    nstring,
    parse_date,
    parse_date_time,
    quoted,
    string,
)

# -- strings ----------------------------------------------------------------------------------


def test_quoted_escapes_backslash_and_quote():
    assert quoted(b'say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'


def test_literal_and_literal8():
    assert literal(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert literal(b"") == b"{0}\r\n"
    assert literal8(b"\x00\x01") == b"~{2}\r\n\x00\x01"


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"hello world", b'"hello world"'),
        (b"", b'""'),
        ("text as str", b'"text as str"'),
        (b'one " two \\ three "', b'"one \\" two \\\\ three \\""'),  # four specials: still quoted
        (b'""""\\', b'{5}\r\n""""\\'),  # a fifth special tips it to a literal, as in Dovecot
        (b"line\r\nbreak", b"{11}\r\nline\r\nbreak"),
        (b"bare\nlf", b"{7}\r\nbare\nlf"),
        (b"nul\x00", b"{4}\r\nnul\x00"),
        (b"caf\xc3\xa9", b"{5}\r\ncaf\xc3\xa9"),
    ],
)
def test_string_picks_quoted_or_literal(value, expected):
    assert string(value) == expected


def test_string_utf8_keeps_valid_utf8_quoted():
    assert string(b"caf\xc3\xa9", utf8=True) == b'"caf\xc3\xa9"'
    assert string(b"bad \xff", utf8=True) == b"{5}\r\nbad \xff"
    assert string(b"caf\xc3\xa9\r\n", utf8=True) == b"{7}\r\ncaf\xc3\xa9\r\n"


def test_string_max_quoted_turns_long_values_into_literals():
    assert string(b"x" * 10, max_quoted=10) == b'"xxxxxxxxxx"'
    assert string(b"x" * 11, max_quoted=10) == b"{11}\r\n" + b"x" * 11
    assert string(b"x" * 5000) == b'"' + b"x" * 5000 + b'"'  # no limit by default


def test_nstring():
    assert nstring(None) == NIL == b"NIL"
    assert nstring(b"NIL") == b'"NIL"'
    assert nstring(b"a\nb") == b"{3}\r\na\nb"


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"INBOX", b"INBOX"),
        ("Sent", b"Sent"),
        (b"a]b", b"a]b"),  # resp-specials are ASTRING-CHARs
        (b"with space", b'"with space"'),
        (b"", b'""'),
        (b"NIL", b'"NIL"'),
        (b"nil", b'"nil"'),
        (b"100%", b'"100%"'),
        (b"a*", b'"a*"'),
        (b"(x)", b'"(x)"'),
        (b"{3}", b'"{3}"'),
        (b'q"', b'"q\\""'),
        (b"Entw\xc3\xbcrfe", b"{9}\r\nEntw\xc3\xbcrfe"),
    ],
)
def test_astring(value, expected):
    assert astring(value) == expected


def test_astring_utf8():
    assert astring(b"Entw\xc3\xbcrfe", utf8=True) == b'"Entw\xc3\xbcrfe"'


def _read_string(data: bytes) -> bytes:
    """Decode one quoted string or literal, checking nothing follows it."""
    if data.startswith(b'"'):
        assert data.endswith(b'"') and len(data) >= 2
        inner = data[1:-1]
        assert re.fullmatch(rb'(?:[^"\\\r\n\x00]|\\["\\])*', inner), data
        return re.sub(rb'\\(["\\])', rb"\1", inner)
    m = re.match(rb"\{(\d+)\}\r\n", data)
    assert m, data
    body = data[m.end():]
    assert len(body) == int(m.group(1))
    return body


@given(st.binary(max_size=200))
def test_string_round_trips(value):
    assert _read_string(string(value)) == value


@given(st.binary(max_size=60))
def test_astring_round_trips(value):
    out = astring(value)
    if out[:1] in (b'"', b"{"):
        assert _read_string(out) == value
    else:
        assert out == value and out.upper() != b"NIL"


# -- flags ------------------------------------------------------------------------------------


def test_flag_list_orders_system_flags_then_keywords():
    flags = {"$Label", "\\Seen", "Junk", "\\Recent", "\\Answered", "\\Draft", "\\Deleted", "\\Flagged"}
    assert flag_list(flags) == b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\Recent $Label Junk)"


def test_flag_list_small_cases():
    assert flag_list(set()) == b"()"
    assert flag_list({"\\Seen", "$Label"}) == b"(\\Seen $Label)"
    assert flag_list(frozenset({"\\seen"})) == b"(\\seen)"  # spelled as stored
    assert flag_list(["$b", "$a"]) == b"($a $b)"


# -- dates ------------------------------------------------------------------------------------


def test_imap_date_time_keeps_the_offset():
    tz = timezone(timedelta(hours=-7))
    assert imap_date_time(datetime(1996, 7, 17, 2, 44, 25, tzinfo=tz)) == b'"17-Jul-1996 02:44:25 -0700"'


def test_imap_date_time_two_digit_day_and_odd_offsets():
    assert imap_date_time(datetime(2020, 2, 3, 1, 2, 3, tzinfo=timezone.utc)) == b'"03-Feb-2020 01:02:03 +0000"'
    india = timezone(timedelta(hours=5, minutes=30))
    assert imap_date_time(datetime(2024, 12, 31, 23, 59, 59, tzinfo=india)) == b'"31-Dec-2024 23:59:59 +0530"'
    newfoundland = timezone(-timedelta(hours=3, minutes=30))
    assert imap_date_time(datetime(2024, 1, 1, tzinfo=newfoundland)) == b'"01-Jan-2024 00:00:00 -0330"'


def test_imap_date_time_same_instant_other_zone_is_not_confused():
    utc = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)
    plus2 = utc.astimezone(timezone(timedelta(hours=2)))
    assert imap_date_time(utc) == b'"01-Jan-2024 12:00:00 +0000"'
    assert imap_date_time(plus2) == b'"01-Jan-2024 14:00:00 +0200"'


@pytest.mark.parametrize(
    "text",
    ["17-Jul-1996 02:44:25 -0700", '"17-Jul-1996 02:44:25 -0700"', b"17-jul-1996 02:44:25 -0700"],
)
def test_parse_date_time(text):
    assert parse_date_time(text) == datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))


def test_parse_date_time_day_forms():
    assert parse_date_time(" 7-Jul-1996 02:44:25 +0000").day == 7
    assert parse_date_time("7-Jul-1996 02:44:25 +0000").day == 7
    assert parse_date_time("07-Jul-1996 02:44:25 +0130").utcoffset() == timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "17-Jul-1996",
        "17-Juli-1996 02:44:25 -0700",
        "17-Xyz-1996 02:44:25 -0700",
        "17-Jul-96 02:44:25 -0700",
        "17-Jul-1996 02:44 -0700",
        "17-Jul-1996 02:44:25",
        "17-Jul-1996 02:44:25 -07",
        "17-Jul-1996 02:44:25 -0760",
        "32-Jul-1996 02:44:25 -0700",
        "17-Jul-1996 25:44:25 -0700",
        b"17-Jul-1996 02:44:25 \xff0700",
    ],
)
def test_parse_date_time_rejects(text):
    with pytest.raises(ValueError):
        parse_date_time(text)


@pytest.mark.parametrize("text", ["1-Feb-1994", "01-feb-1994", '"1-Feb-1994"', b"1-FEB-1994"])
def test_parse_date(text):
    assert parse_date(text) == date(1994, 2, 1)


@pytest.mark.parametrize("text", ["", "1-Feb-94", "1 Feb 1994", "30-Feb-1994", "1-Feb-1994 00:00:00 +0000", "001-Feb-1994"])
def test_parse_date_rejects(text):
    with pytest.raises(ValueError):
        parse_date(text)


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31),
                    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-7)),
                                               timezone(timedelta(hours=5, minutes=45))])))
def test_date_time_round_trips(dt):
    dt = dt.replace(microsecond=0)
    assert parse_date_time(imap_date_time(dt)) == dt
