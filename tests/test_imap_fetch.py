"""FETCH attributes and the untagged FETCH response (RFC 3501 §6.4.5, §7.4.2; RFC 3516
BINARY; RFC 7162 MODSEQ). Item order and error texts are Dovecot 2.3's."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_servers.imap.fetch import FetchSyntaxError, UnknownCTE, parse_fetch_items, render_fetch
from fake_servers.imap.parser import Atom


@dataclass
class Msg:
    raw: bytes
    uid: int = 7
    flags: set = field(default_factory=lambda: {"\\Seen"})
    internal_date: datetime = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
    modseq: int = 12

    @property
    def size(self) -> int:
        return len(self.raw)


RAW = b"From: A <a@b.c>\r\nTo: x@y\r\nSubject: hi\r\n\r\nbody\r\n"
HEADER = b"From: A <a@b.c>\r\nTo: x@y\r\nSubject: hi\r\n\r\n"
ENVELOPE = (
    b'(NIL "hi" (("A" NIL "a" "b.c")) (("A" NIL "a" "b.c")) (("A" NIL "a" "b.c"))'
    b' ((NIL NIL "x" "y")) NIL NIL NIL NIL)'
)
STRUCTURE = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1'


def fetch(items, msg=None, seq=3, uid_command=False, **kw) -> bytes:
    if isinstance(items, str) and items.startswith("("):
        items = [Atom(a) for a in re.findall(r"[^\s\[]+(?:\[[^\]]*\](?:<[^>]*>)?)?", items[1:-1])]
    elif isinstance(items, str):
        items = Atom(items)
    return render_fetch(msg or Msg(RAW), seq, parse_fetch_items(items), uid_command=uid_command, **kw)


# -- parsing ------------------------------------------------------------------------------------


def test_macros():
    kinds = lambda arg: [i.kind for i in parse_fetch_items(Atom(arg))]  # noqa: E731
    assert kinds("FAST") == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert kinds("all") == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert kinds("Full") == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]


def test_items_that_set_seen():
    items = parse_fetch_items([Atom(a) for a in (
        "BODY[]", "BODY.PEEK[]", "RFC822", "RFC822.TEXT", "RFC822.HEADER", "BINARY[1]", "BINARY.PEEK[1]",
        "BINARY.SIZE[1]", "ENVELOPE", "FLAGS",
    )])
    assert [i.sets_seen for i in items] == [True, False, True, True, False, True, False, False, False, False]


def test_section_items_are_parsed_once():
    (item,) = parse_fetch_items(Atom("body.peek[1.2.header.fields (From  \"x-Y\")]<5.10>"))
    assert (item.kind, item.numbers, item.text, item.names, item.partial, item.peek) == (
        "BODY[]", (1, 2), "HEADER.FIELDS", (b"from", b"x-y"), (5, 10), True)
    assert item.label == b'BODY[1.2.HEADER.FIELDS (FROM "X-Y")]<5>'


@pytest.mark.parametrize(
    "args, text",
    [
        (Atom("FOO"), "Unknown parameter: FOO"),
        ([Atom("FLAGS"), Atom("all")], "Unknown parameter: ALL"),
        ([], "FETCH list is empty"),
        ([Atom("FLAGS"), [Atom("UID")]], "Invalid arguments"),
        (Atom("RFC822.PEEK"), "Unknown parameter: RFC822.PEEK"),
        (Atom("BODYX"), "Unknown parameter: BODYX"),
        (Atom("BODY.PEEK"), "Invalid BODY[..] parameter: Missing '['"),
        (Atom("BINARY"), "Invalid BINARY[..] parameter: Missing '['"),
        (Atom("BODY.PEEK["), "Invalid BODY[..] parameter: Missing ']'"),
        (Atom("BODY.PEEK[]x"), "Invalid BODY[..] parameter: Unexpected data after ']'"),
        (Atom("BODY[]<-1.2>"), "Invalid BODY[..] parameter: Invalid partial"),
        (Atom("BINARY.SIZE[1]<0.1>"), "Invalid BINARY[..] parameter: Unexpected data after ']'"),
        (Atom("BODY[MIME]"), "Invalid BODY[..] section"),
        (Atom("BODY[HEADER.FIELDS ()]"), "Invalid BODY[..] section"),
        (Atom("BODY[1..2]"), "Invalid BODY[..] section"),
        (Atom("BODY[TEXT.MIME]"), "Invalid BODY[..] section"),
    ],
)
def test_syntax_errors(args, text):
    with pytest.raises(FetchSyntaxError) as exc:
        parse_fetch_items(args)
    assert str(exc.value) == text


# -- rendering ----------------------------------------------------------------------------------


def test_uid_flags_body_peek():
    out = fetch("(UID FLAGS BODY.PEEK[])", uid_command=True)
    assert out == b"* 3 FETCH (UID 7 FLAGS (\\Seen) BODY[] {%d}\r\n" % len(RAW) + RAW + b")\r\n"


def test_uid_fetch_always_sends_uid_first():
    assert fetch("(FLAGS BODY.PEEK[TEXT])", uid_command=True) == (
        b"* 3 FETCH (UID 7 FLAGS (\\Seen) BODY[TEXT] {6}\r\nbody\r\n)\r\n"
    )


def test_small_items_come_first_then_the_rest_in_request_order():
    # Dovecot
    out = fetch("(BODY.PEEK[] RFC822.SIZE INTERNALDATE FLAGS ENVELOPE)")
    assert out == (
        b'* 3 FETCH (RFC822.SIZE %d INTERNALDATE "17-Jul-1996 02:44:25 -0700" FLAGS (\\Seen)'
        b" BODY[] {%d}\r\n" % (len(RAW), len(RAW)) + RAW + b" ENVELOPE " + ENVELOPE + b")\r\n"
    )
    assert fetch("(FLAGS UID)") == b"* 3 FETCH (FLAGS (\\Seen) UID 7)\r\n"


def test_macros_render_like_dovecot():
    assert fetch("FAST") == b'* 3 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 47)\r\n'
    assert fetch("FULL", uid_command=True) == (
        b'* 3 FETCH (UID 7 FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 47'
        b" ENVELOPE " + ENVELOPE + b" BODY " + STRUCTURE + b"))\r\n"
    )


def test_repeats_are_sent_once_except_sections():
    assert fetch("(FLAGS FLAGS UID UID ENVELOPE ENVELOPE)") == (
        b"* 3 FETCH (FLAGS (\\Seen) UID 7 ENVELOPE " + ENVELOPE + b")\r\n"
    )
    assert fetch("(BODY.PEEK[TEXT] BODY.PEEK[TEXT])") == (
        b"* 3 FETCH (BODY[TEXT] {6}\r\nbody\r\n BODY[TEXT] {6}\r\nbody\r\n)\r\n"
    )


def test_rfc822_items():
    assert fetch("(RFC822.HEADER RFC822.TEXT RFC822)") == (
        b"* 3 FETCH (RFC822.HEADER {%d}\r\n" % len(HEADER) + HEADER
        + b" RFC822.TEXT {6}\r\nbody\r\n RFC822 {%d}\r\n" % len(RAW) + RAW + b")\r\n"
    )


def test_structure_items():
    assert fetch("(BODYSTRUCTURE BODY MODSEQ)") == (
        b"* 3 FETCH (MODSEQ (12) BODYSTRUCTURE " + STRUCTURE + b" NIL NIL NIL NIL) BODY " + STRUCTURE + b"))\r\n"
    )


def test_section_labels_and_partials():
    assert fetch('(BODY.PEEK[header.fields (to "From")])') == (
        b'* 3 FETCH (BODY[HEADER.FIELDS (TO "FROM")] {28}\r\nFrom: A <a@b.c>\r\nTo: x@y\r\n\r\n)\r\n'
    )
    assert fetch("(BODY.PEEK[HEADER.FIELDS (SUBJECT)]<2.5>)") == b"* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)]<2> {5}\r\nbject)\r\n"
    assert fetch("(BODY.PEEK[]<0.4> BODY.PEEK[TEXT]<100.5> BODY.PEEK[]<10>)") == (
        b"* 3 FETCH (BODY[]<0> {4}\r\nFrom BODY[TEXT]<100> {0}\r\n BODY[]<10> {%d}\r\n" % (len(RAW) - 10) + RAW[10:] + b")\r\n"
    )
    assert fetch("(BODY.PEEK[01] BODY.PEEK[2] BODY[1.MIME])") == (
        b"* 3 FETCH (BODY[01] {6}\r\nbody\r\n BODY[2] {0}\r\n BODY[1.MIME] {%d}\r\n" % len(HEADER) + HEADER + b")\r\n"
    )


def test_flags_are_added_when_the_session_just_set_seen():
    # Dovecot: the changed FLAGS go after the small items the client asked for.
    msg = Msg(RAW, flags={"\\Seen", "$Work"})
    assert fetch("(RFC822.SIZE BODY[TEXT] INTERNALDATE)", msg, uid_command=True, add_flags=True) == (
        b'* 3 FETCH (UID 7 RFC822.SIZE 47 INTERNALDATE "17-Jul-1996 02:44:25 -0700" FLAGS (\\Seen $Work)'
        b" BODY[TEXT] {6}\r\nbody\r\n)\r\n"
    )
    assert fetch("(FLAGS BODY[TEXT])", msg, add_flags=True) == (
        b"* 3 FETCH (FLAGS (\\Seen $Work) BODY[TEXT] {6}\r\nbody\r\n)\r\n"
    )


MULTI = (
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"
    b"--b--\r\n"
)


def test_binary():
    msg = Msg(MULTI)
    assert fetch("(BINARY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[2] BINARY.PEEK[3] BINARY.PEEK[1]<1.3> BINARY.PEEK[9])", msg) == (
        b"* 3 FETCH (BINARY[1] ~{5}\r\nhello BINARY.SIZE[1] 5 BINARY[2] ~{3}\r\n\x00\x01\x02"
        b" BINARY[3] {5}\r\nplain BINARY[1]<1> ~{3}\r\nell BINARY[9] {0}\r\n)\r\n"
    )
    with pytest.raises(UnknownCTE):
        fetch("(BINARY.PEEK[4])", msg)


def test_plan_is_cached_on_the_item_list():
    items = parse_fetch_items([Atom("UID"), Atom("BODY.PEEK[]")])
    first = render_fetch(Msg(RAW), 1, items, uid_command=True)
    assert items.plans
    assert render_fetch(Msg(b"x"), 2, items, uid_command=True) == b"* 2 FETCH (UID 7 BODY[] {1}\r\nx)\r\n"
    assert first.startswith(b"* 1 FETCH (UID 7 BODY[] {47}\r\n")
    # A plain list of FetchItems works too.
    assert render_fetch(Msg(RAW), 1, list(items), uid_command=False) == first


def test_big_message_body_is_sent_whole():
    raw = b"Subject: big\r\nContent-Type: application/octet-stream\r\n\r\n" + b"A" * (5 << 20)
    out = fetch("(BODY.PEEK[] RFC822.SIZE)", Msg(raw))
    assert out == b"* 3 FETCH (RFC822.SIZE %d BODY[] {%d}\r\n" % (len(raw), len(raw)) + raw + b")\r\n"


# -- nothing breaks it -------------------------------------------------------------------------

_ITEMS = parse_fetch_items([Atom(a) for a in (
    "UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "ENVELOPE", "BODY", "BODYSTRUCTURE",
    "RFC822.HEADER", "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT)]", "BODY.PEEK[1.MIME]", "BODY.PEEK[2]",
    "BODY.PEEK[1.1]<0.10>", "BODY.PEEK[TEXT]", "BODY.PEEK[]",
)])
_BINARY = parse_fetch_items([Atom("BINARY.SIZE[1]"), Atom("BINARY.PEEK[1]<0.20>"), Atom("BINARY.PEEK[1.1]")])
_PIECES = st.sampled_from([
    b"\r\n", b"\n", b"\r\n\r\n", b"--b", b"--b--", b"\x00", b"\xc3\xa9", b"\xff", b" ",
    b"Content-Type: multipart/mixed; boundary=b", b"Content-Type: message/rfc822", b"MIME-Version: 1.0",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"From: ", b"Subject: ", b"To: a@b, <c@d>", b'"', b"(", b"<", b"=C3=A9", b"aGVsbG8=", b"text",
])
_MESSAGES = st.one_of(st.binary(max_size=300), st.lists(_PIECES, max_size=40).map(b"".join))


@settings(max_examples=300, deadline=None)
@given(_MESSAGES)
def test_random_messages_render_and_body_is_byte_exact(raw):
    out = render_fetch(Msg(raw, flags={"\\Seen", "$X"}), 1, _ITEMS, uid_command=True)
    assert out.startswith(b"* 1 FETCH (UID 7 FLAGS (\\Seen $X) ")
    tail = b" BODY[] {%d}\r\n" % len(raw) + raw + b")\r\n"
    assert out.endswith(tail)
    _check_literals(out)
    try:
        out = render_fetch(Msg(raw), 1, _BINARY, uid_command=False)
    except UnknownCTE:
        assert b"content-transfer-encoding" in raw.lower()
    else:
        assert out.startswith(b"* 1 FETCH (BINARY.SIZE[1] ") and out.endswith(b")\r\n")
        _check_literals(out)


def _check_literals(out: bytes) -> None:
    """Every literal announces exactly the bytes that follow it."""
    pos = 0
    while (m := re.compile(rb"~?\{(\d+)\}\r\n").search(out, pos)) is not None:
        pos = m.end() + int(m.group(1))
        assert pos <= len(out) - 3
