"""The incremental IMAP command parser: byte-level examples, error texts, limits, and
properties over random pipelines and random garbage in random splits."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_servers.imap.parser import (
    COMMAND,
    LINE,
    Atom,
    Command,
    CommandParser,
    ContinuationNeeded,
    Line,
    ParseError,
    String,
    split_tag,
)

EVENT_TYPES = (Command, Line, ParseError, ContinuationNeeded)


def drain(parser):
    events = []
    while (event := parser.next_event()) is not None:
        assert isinstance(event, EVENT_TYPES)
        events.append(event)
    return events


def feed(data, chunks=None, parser=None, **limits):
    """All events for `data`, delivered in one chunk or at the given split points."""
    parser = parser or CommandParser(**limits)
    cuts = sorted(set(chunks or []))
    events = []
    last = 0
    for cut in [*cuts, len(data)]:
        parser.receive_data(data[last:cut])
        events += drain(parser)
        last = cut
    return events


def one(data, **limits):
    events = feed(data, **limits)
    assert len(events) == 1, events
    return events[0]


def shape(value):
    """A comparable form that tells atoms, quoted strings and literals apart."""
    if isinstance(value, Atom):
        return ("atom", str(value))
    if isinstance(value, String):
        return ("literal" if value.literal else "quoted", bytes(value))
    if isinstance(value, list):
        return ("list", [shape(v) for v in value])
    raise AssertionError(f"unexpected value {value!r}")


def shapes(command):
    return [shape(a) for a in command.args]


# -- values ---------------------------------------------------------------------------------


def test_values_are_str_and_bytes():
    assert Atom("FLAGS") == "FLAGS" and isinstance(Atom("x"), str)
    s = String(b"abc", literal=True)
    assert s == b"abc" and s.literal and isinstance(s, bytes)
    assert String(b"abc").literal is False
    assert repr(s) == "String(b'abc', literal=True)"


def test_string_survives_pickle_and_copy():
    import copy
    import pickle

    s = String(b"x", literal=True)
    for clone in (pickle.loads(pickle.dumps(s)), copy.copy(s), copy.deepcopy(s)):
        assert clone == b"x" and clone.literal is True


# -- commands ---------------------------------------------------------------------------------


def test_login_with_quoted_strings():
    cmd = one(b'a001 LOGIN "joe" "p\\"a\\\\ss"\r\n')
    assert cmd == Command(
        tag="a001",
        name="LOGIN",
        uid=False,
        args=(String(b"joe"), String(b'p"a\\ss')),
        raw=b'a001 LOGIN "joe" "p\\"a\\\\ss"\r\n',
    )
    assert [a.literal for a in cmd.args] == [False, False]


def test_name_is_upper_cased_and_atoms_keep_case():
    cmd = one(b"t1 select inbox\r\n")
    assert cmd.name == "SELECT"
    assert cmd.args == ("inbox",)
    assert type(cmd.args[0]) is Atom


def test_empty_quoted_string_and_nil():
    cmd = one(b'x LOGIN "" NIL\r\n')
    assert shapes(cmd) == [("quoted", b""), ("atom", "NIL")]


def test_quoted_string_with_utf8():
    name = "Entwürfe/日本".encode()
    cmd = one(b'A1 SELECT "' + name + b'"\r\n')
    assert cmd.args == (name,)


def test_append_with_synchronizing_literal():
    p = CommandParser()
    p.receive_data(b'A003 APPEND saved-messages (\\Seen) "05-Jan-2024 10:00:00 +0100" {23}\r\n')
    assert p.next_event() == ContinuationNeeded(23)
    assert p.next_event() is None
    assert p.in_command
    p.receive_data(b"Subject: hi\r\n\r\nhello)\r\n")
    assert p.next_event() is None  # the literal is there, the line end is not
    p.receive_data(b"\r\n")
    cmd = p.next_event()
    assert cmd.name == "APPEND"
    assert shapes(cmd) == [
        ("atom", "saved-messages"),
        ("list", [("atom", "\\Seen")]),
        ("quoted", b"05-Jan-2024 10:00:00 +0100"),
        ("literal", b"Subject: hi\r\n\r\nhello)\r\n"),
    ]
    assert cmd.raw.endswith(b"{23}\r\nSubject: hi\r\n\r\nhello)\r\n\r\n")
    assert cmd.raw.startswith(b"A003 APPEND")
    assert not p.in_command
    assert p.next_event() is None


def test_literal_plus_asks_no_continuation():
    events = feed(b"a LOGIN {3+}\r\njoe {6+}\r\nsecret\r\nb NOOP\r\n")
    assert [type(e) for e in events] == [Command, Command]
    assert shapes(events[0]) == [("literal", b"joe"), ("literal", b"secret")]
    assert events[0].raw == b"a LOGIN {3+}\r\njoe {6+}\r\nsecret\r\n"


def test_several_synchronizing_literals_in_one_command():
    p = CommandParser()
    p.receive_data(b"a LOGIN {3}\r\n")
    assert p.next_event() == ContinuationNeeded(3)
    p.receive_data(b"joe {6}\r\n")
    assert p.next_event() == ContinuationNeeded(6)
    p.receive_data(b"secret\r\n")
    cmd = p.next_event()
    assert shapes(cmd) == [("literal", b"joe"), ("literal", b"secret")]
    assert cmd.raw == b"a LOGIN {3}\r\njoe {6}\r\nsecret\r\n"


def test_literal8_and_empty_literal():
    events = feed(b"a APPEND box ~{4}\r\n\x00\x01\r\n {0}\r\n\r\n")
    assert events[:2] == [ContinuationNeeded(4), ContinuationNeeded(0)]
    assert shapes(events[2]) == [("atom", "box"), ("literal", b"\x00\x01\r\n"), ("literal", b"")]
    assert [type(e) for e in feed(b"a APPEND box ~{2+}\r\nab\r\n")] == [Command]


def test_literal_inside_a_list_and_more_arguments_after_it():
    events = feed(b'a X ({2}\r\nab "q") (c) {1+}\r\nz\r\n')
    assert events[0] == ContinuationNeeded(2)
    assert shapes(events[1]) == [
        ("list", [("literal", b"ab"), ("quoted", b"q")]),
        ("list", [("atom", "c")]),
        ("literal", b"z"),
    ]


def test_pipelined_commands_in_one_chunk():
    data = b"".join(b"a%d NOOP\r\n" % i for i in range(500)) + b"z UID FETCH 1:* FLAGS\r\n"
    events = feed(data)
    assert [e.tag for e in events] == [f"a{i}" for i in range(500)] + ["z"]
    assert b"".join(e.raw for e in events) == data


def test_fetch_attributes_with_sections_are_single_atoms():
    cmd = one(
        b"a UID FETCH 1:4,7 (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> "
        b"BODY[] BINARY.PEEK[1.2] BODY[1.2.MIME] "
        b'BODY.PEEK[HEADER.FIELDS.NOT ("X-A]" Date)] RFC822.SIZE)\r\n'
    )
    assert cmd.uid and cmd.name == "FETCH"
    assert cmd.args[0] == "1:4,7"
    assert cmd.args[1] == [
        "UID",
        "FLAGS",
        "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>",
        "BODY[]",
        "BINARY.PEEK[1.2]",
        "BODY[1.2.MIME]",
        'BODY.PEEK[HEADER.FIELDS.NOT ("X-A]" Date)]',
        "RFC822.SIZE",
    ]
    assert all(type(a) is Atom for a in cmd.args[1])


def test_fetch_attribute_outside_a_list():
    cmd = one(b"a FETCH 1 body[header.fields (subject)]<5.10>\r\n")
    assert cmd.args == ("1", "body[header.fields (subject)]<5.10>")


def test_uid_commands():
    for line, name in [(b"a UID FETCH 1 UID\r\n", "FETCH"), (b"a uid move 1:* Trash\r\n", "MOVE")]:
        cmd = one(line)
        assert (cmd.uid, cmd.name) == (True, name)
    assert one(b"a UID EXPUNGE 3\r\n").args == ("3",)


def test_nested_lists():
    cmd = one(b"a SEARCH (OR (FROM x) (TO (y))) () ((()))\r\n")
    assert cmd.args == (["OR", ["FROM", "x"], ["TO", ["y"]]], [], [[[]]])


def test_flags_and_wildcards_are_atoms():
    cmd = one(b'a STORE 1:* +FLAGS.SILENT (\\Seen \\Deleted $Junk)\r\n')
    assert cmd.args == ("1:*", "+FLAGS.SILENT", ["\\Seen", "\\Deleted", "$Junk"])
    assert one(b'a LIST "" %/*\r\n').args == (b"", "%/*")
    assert one(b"a LIST ~ INBOX]\r\n").args == ("~", "INBOX]")


def test_one_byte_splits():
    data = b'a LOGIN {3}\r\njoe "pw"\r\nb FETCH 1 (BODY[HEADER.FIELDS (A B)])\r\nc IDLE\r\n'
    whole = feed(data)
    assert feed(data, chunks=range(len(data))) == whole
    assert [type(e) for e in whole] == [ContinuationNeeded, Command, Command, Command]


def test_bare_lf_line_ends_are_accepted_and_recorded():
    events = feed(b"a NOOP\nb LOGIN {3}\njoe x\n")
    assert events[0].raw == b"a NOOP\n"
    assert events[1] == ContinuationNeeded(3)
    assert events[2].raw == b"b LOGIN {3}\njoe x\n"
    assert shapes(events[2]) == [("literal", b"joe"), ("atom", "x")]


def test_extra_and_trailing_spaces_are_tolerated():
    assert one(b"a SELECT  INBOX \r\n").args == ("INBOX",)
    assert one(b"a X ( a  b )\r\n").args == (["a", "b"],)


def test_tags():
    assert one(b"A]1.x NOOP\r\n").tag == "A]1.x"
    assert split_tag(b"abc NOOP") == "abc"
    assert split_tag(b"abc") == "abc"
    assert split_tag(b"+ x") is None
    assert split_tag(b"a{ x") is None
    assert split_tag(b"") is None


def test_empty_data_is_nothing():
    p = CommandParser()
    p.receive_data(b"")
    assert p.next_event() is None
    p.receive_data(b"a NO")
    assert p.next_event() is None
    p.receive_data(b"")
    p.receive_data(b"OP\r")
    assert p.next_event() is None
    p.receive_data(b"\n")
    assert p.next_event().name == "NOOP"


def test_does_not_parse_ahead():
    p = CommandParser()
    p.receive_data(b"a NOOP\r\nb NOOP\r\n")
    assert p.next_event().tag == "a"
    assert p.next_event().tag == "b"
    assert p.next_event() is None


# -- line mode --------------------------------------------------------------------------------


def test_idle_done_pipelined_with_mode_switches():
    p = CommandParser()
    p.receive_data(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    assert p.next_event().name == "IDLE"
    p.expect_line()
    assert p.mode == LINE
    assert p.next_event() == Line(b"DONE")
    p.expect_command()
    assert p.mode == COMMAND
    assert p.next_event().name == "NOOP"


def test_authenticate_lines():
    p = CommandParser()
    p.receive_data(b"a AUTHENTICATE PLAIN\r\n")
    assert p.next_event().args == ("PLAIN",)
    p.expect_line()
    for chunk in (b"AGpv", b"ZQBzZWNyZXQ=\r", b"\n"):
        assert p.next_event() is None
        p.receive_data(chunk)
    assert p.next_event() == Line(b"AGpvZQBzZWNyZXQ=")
    p.receive_data(b"\r\n*\n{3}\r\n")
    assert drain(p) == [Line(b""), Line(b"*"), Line(b"{3}")]


def test_mode_switch_waits_for_the_command_in_progress():
    p = CommandParser()
    p.receive_data(b"a LOGIN {3}\r\n")
    assert p.next_event() == ContinuationNeeded(3)
    p.expect_line()
    p.receive_data(b"joe x\r\nDONE\r\n")
    assert p.next_event().args == (b"joe", "x")
    assert p.next_event() == Line(b"DONE")


def test_line_too_long_in_line_mode():
    p = CommandParser(max_line=10)
    p.expect_line()
    p.receive_data(b"x" * 20)
    error = p.next_event()
    assert error == ParseError(None, "Line too long (limit 10 bytes)", b"x" * 20)
    p.receive_data(b"xxx\r\nok\r\n")
    assert drain(p) == [Line(b"ok")]


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, tag, text",
    [
        (b"\r\n", None, "Empty command line"),
        (b"\n", None, "Empty command line"),
        (b"+ NOOP\r\n", None, "Invalid tag"),
        (b"* NOOP\r\n", None, "Invalid tag"),
        (b'"a" NOOP\r\n', None, "Invalid tag"),
        (b" a NOOP\r\n", None, "Invalid tag"),
        (b"a(b NOOP\r\n", None, "Invalid tag"),
        (b"\xc3\xa4 NOOP\r\n", None, "Invalid tag"),
        (b"a\r\n", "a", "Missing command"),
        (b"a \r\n", "a", "Missing command"),
        (b"a  NOOP\r\n", "a", "Invalid command name"),
        (b'a "NOOP"\r\n', "a", "Invalid command name"),
        (b"a {4}\r\n", "a", "Invalid command name"),
        (b"a NOOP(x)\r\n", "a", "Invalid command name"),
        (b"a UID\r\n", "a", "Missing command after UID"),
        (b"a UID (FETCH)\r\n", "a", "Invalid command name"),
        (b"a NOOP\r\r\n", "a", "Bare CR in command line"),
        (b'a LOGIN "x\ry" z\r\n', "a", "Bare CR in command line"),
        (b"a STATUS INBOX (MESSAGES))\r\n", "a", "Unexpected ')'"),
        (b"a STATUS INBOX ((MESSAGES)\r\n", "a", "Missing ')'"),
        (b'a LOGIN "joe\r\n', "a", "Unterminated quoted string"),
        (b'a LOGIN "joe\\"\r\n', "a", "Unterminated quoted string"),
        (b'a LOGIN "jo\\e" x\r\n', "a", "Unknown escape in quoted string"),
        (b'a LOGIN "jo\x00e" x\r\n', "a", "NUL in quoted string"),
        (b"a LOGIN {x}\r\n", "a", "Invalid literal size"),
        (b"a LOGIN {}\r\n", "a", "Invalid literal size"),
        (b"a LOGIN {+}\r\n", "a", "Invalid literal size"),
        (b"a LOGIN {-1}\r\n", "a", "Invalid literal size"),
        (b"a LOGIN {3\r\n", "a", "Invalid literal size"),
        (b"a LOGIN ~{3x}\r\n", "a", "Invalid literal size"),
        (b"a LOGIN {3} x\r\n", "a", "Unexpected data after literal size"),
        (b'a LOGIN "a""b"\r\n', "a", "Missing space between arguments"),
        (b"a FETCH 1 (FLAGS)(UID)\r\n", "a", "Missing space between arguments"),
        (b"a X y(z)\r\n", "a", "Missing space between arguments"),
        (b"a STATUS IN{3}\r\n", "a", "Invalid characters in atom"),
        (b'a STATUS IN"BOX"\r\n', "a", "Invalid characters in atom"),
        (b"a STATUS IN\x01BOX\r\n", "a", "Invalid characters in atom"),
        (b"a STATUS INB\xc3\xb6X\r\n", "a", "8-bit data in atom"),
        (b"a FETCH 1 BODY[HEADER.FIELDS (FROM)\r\n", "a", "Missing ']'"),
        (b"a FETCH 1 BODY[HEADER.FIELDS ({4}\r\n", "a", "Missing ']'"),
        (b'a FETCH 1 BODY[HEADER.FIELDS ("FROM)]\r\n', "a", "Unterminated quoted string"),
        (b"a FETCH 1 BODY[\xc3\xa4]\r\n", "a", "8-bit data in atom"),
        (b'a FETCH 1 BODY[("\xc3\xa4")]\r\n', "a", "8-bit data in atom"),
    ],
)
def test_errors(data, tag, text):
    error = one(data)
    assert error == ParseError(tag, text, data)
    # and the parser is ready for the next command, in one chunk or byte by byte
    events = feed(data + b"b NOOP\r\n", chunks=range(len(data) + 8))
    assert events[0] == error
    assert events[1:] == [Command("b", "NOOP", False, (), b"b NOOP\r\n")]


def test_error_in_a_later_line_of_a_command_keeps_the_tag_and_raw():
    events = feed(b"a LOGIN {3}\r\njoe )\r\nb NOOP\r\n")
    assert events[0] == ContinuationNeeded(3)
    assert events[1] == ParseError("a", "Unexpected ')'", b"a LOGIN {3}\r\njoe )\r\n")
    assert events[2].tag == "b"


def test_error_after_a_literal_needs_a_space():
    events = feed(b'a LOGIN {3+}\r\njoe"x"\r\n')
    raw = b'a LOGIN {3+}\r\njoe"x"\r\n'
    assert events == [ParseError("a", "Missing space between arguments", raw)]


def test_error_line_with_non_synchronizing_literal_skips_its_bytes():
    data = b"a LOGIN ) {9+}\r\nb NOOP\r\n plus the rest {3+}\r\nc N\r\nd NOOP\r\n"
    events = feed(data)
    assert events[0] == ParseError("a", "Unexpected ')'", b"a LOGIN ) {9+}\r\n")
    assert [e.tag for e in events[1:]] == ["d"]
    assert feed(data, chunks=range(len(data))) == events


def test_error_line_with_synchronizing_literal_expects_no_literal():
    # The client waits for "+", gets BAD instead, and sends no literal.
    events = feed(b"a LOGIN ) {9}\r\nb NOOP\r\n")
    assert events[0].text == "Unexpected ')'"
    assert events[1].tag == "b"


# -- limits -----------------------------------------------------------------------------------


def test_line_too_long_unterminated_is_reported_at_once():
    p = CommandParser(max_line=100)
    p.receive_data(b"a1 APPEND " + b"x" * 200)
    error = p.next_event()
    assert error.tag == "a1"
    assert error.text == "Line too long (limit 100 bytes)"
    assert error.raw.startswith(b"a1 APPEND xxx")
    for _ in range(100):  # the rest of the line is discarded as it comes, not buffered
        p.receive_data(b"y" * 10_000)
        assert p.next_event() is None
        assert len(p._buf) == 0
    p.receive_data(b"yyy\r\nb NOOP\r\n")
    assert drain(p) == [Command("b", "NOOP", False, (), b"b NOOP\r\n")]


def test_line_too_long_complete_in_one_chunk():
    data = b"a1 X " + b"x" * 200 + b"\r\nb NOOP\r\n"
    events = feed(data, max_line=100)
    assert events[0] == ParseError("a1", "Line too long (limit 100 bytes)", data[:-8])
    assert events[1].tag == "b"


def test_line_at_the_limit_is_accepted():
    line = b"a X " + b"x" * 96
    assert len(line) == 100
    for chunks in (None, range(len(line) + 2)):
        assert feed(line + b"\r\n", chunks=chunks, max_line=100)[0].name == "X"


def test_too_long_line_without_tag():
    assert one(b"x" * 200 + b"\r\n", max_line=100).tag is None


def test_too_long_line_after_a_literal():
    events = feed(b"a X {1}\r\nz " + b"y" * 200 + b"\r\nb NOOP\r\n", chunks=[10, 50], max_line=100)
    assert events[0] == ContinuationNeeded(1)
    assert (events[1].tag, events[1].text) == ("a", "Line too long (limit 100 bytes)")
    assert events[2].tag == "b"


def test_too_long_line_ending_in_non_synchronizing_literal():
    data = b"a X " + b"x" * 200 + b" {5+}\r\nNOOP\n\r\nb NOOP\r\n"
    for chunks in (None, range(0, len(data), 7)):
        events = feed(data, chunks=chunks, max_line=100)
        assert [(e.tag, type(e)) for e in events] == [("a", ParseError), ("b", Command)]


def test_literal_too_large_synchronizing():
    events = feed(b"a APPEND box {101}\r\nb NOOP\r\n", max_literal=100)
    assert events == [
        ParseError("a", "Literal too large: 101 bytes (limit 100)", b"a APPEND box {101}\r\n"),
        Command("b", "NOOP", False, (), b"b NOOP\r\n"),
    ]


def test_literal_too_large_huge_number():
    error = one(b"a APPEND box {99999999999999999999999}\r\n")
    assert error.text.startswith("Literal too large: more than 10^20 bytes")
    assert one(b"a APPEND box {0000000000000000000000000005}\r\n") == ContinuationNeeded(5)


def test_literal_too_large_non_synchronizing_is_skipped_without_buffering():
    p = CommandParser(max_literal=1000)
    p.receive_data(b"a APPEND box {5000000+}\r\n")
    error = p.next_event()
    text = "Literal too large: 5000000 bytes (limit 1000)"
    assert error == ParseError("a", text, b"a APPEND box {5000000+}\r\n")
    for _ in range(50):
        p.receive_data(b"z" * 100_000)
        assert p.next_event() is None
        assert len(p._buf) == 0
    p.receive_data(b"\r\nb NOOP\r\n")
    assert drain(p) == [Command("b", "NOOP", False, (), b"b NOOP\r\n")]


def test_literal_at_the_limit_is_accepted():
    events = feed(b"a APPEND box {100}\r\n" + b"m" * 100 + b"\r\n", max_literal=100)
    assert events[1].args[1] == b"m" * 100


def test_big_literal_in_small_chunks():
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value
    data = b"a APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n"
    events = feed(data, chunks=range(0, len(data), 1000))
    assert events[0].args[1] == body
    assert events[0].raw == data


# -- properties -------------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ATOM_CHARS = LETTERS + "0123456789\\.-_:,*%$<>]}+~!#&'/=?@^`|"
TAG_CHARS = "ABCXYZabcxyz0123456789.-_]!#"

atoms = st.text(ATOM_CHARS, min_size=1, max_size=8)
section_parts = st.lists(
    st.one_of(
        st.sampled_from(["HEADER.FIELDS", "TEXT", "1.2", "MIME", "(FROM TO)", "()", '"X]"', "[]"]),
        atoms.filter(lambda a: "]" not in a),
    ),
    max_size=4,
)
fetch_atoms = st.tuples(
    st.sampled_from(["BODY", "BODY.PEEK", "BINARY", "x"]),
    section_parts,
    st.sampled_from(["", "<0.100>", "<5>"]),
).map(lambda t: f"{t[0]}[{' '.join(t[1])}]{t[2]}")
quoted = st.binary(max_size=12).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00"))
literal_kinds = st.sampled_from(["{%d}", "{%d+}", "~{%d}", "~{%d+}"])


@st.composite
def literals(draw):
    line_end = draw(st.sampled_from([b"\r\n", b"\n"]))
    return ("literal", draw(st.binary(max_size=12)), draw(literal_kinds), line_end)


values = st.recursive(
    st.one_of(
        atoms.map(lambda a: ("atom", a)),
        fetch_atoms.map(lambda a: ("atom", a)),
        quoted.map(lambda q: ("quoted", q)),
        literals(),
    ),
    lambda inner: st.lists(inner, max_size=4).map(lambda items: ("list", items)),
    max_leaves=8,
)


def encode(value):
    """Wire bytes of a generated value, and the continuations a parser should ask for."""
    kind = value[0]
    if kind == "atom":
        return value[1].encode(), []
    if kind == "quoted":
        return b'"' + value[1].replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"', []
    if kind == "literal":
        _, data, marker, eol = value
        sync = [] if "+" in marker else [ContinuationNeeded(len(data))]
        return (marker % len(data)).encode() + eol + data, sync
    parts = [encode(v) for v in value[1]]
    return b"(" + b" ".join(p for p, _ in parts) + b")", [c for _, cs in parts for c in cs]


def expected_shape(value):
    kind = value[0]
    if kind == "list":
        return ("list", [expected_shape(v) for v in value[1]])
    if kind == "literal":
        return ("literal", value[1])
    return value


@st.composite
def commands(draw):
    tag = draw(st.text(TAG_CHARS, min_size=1, max_size=6))
    name = draw(st.text(LETTERS, min_size=1, max_size=8))
    if name.upper() == "UID":
        name = "NOOP"
    uid = draw(st.booleans())
    args = draw(st.lists(values, max_size=5))
    wire = tag.encode() + (b" UID " if uid else b" ") + name.encode()
    continuations = []
    for arg in args:
        data, cs = encode(arg)
        wire += b" " + data
        continuations += cs
    wire += draw(st.sampled_from([b"\r\n", b"\n"]))
    return wire, continuations, (tag, name.upper(), uid, [expected_shape(a) for a in args])


@settings(max_examples=150)
@given(st.lists(commands(), min_size=1, max_size=6), st.data())
def test_random_pipelines_parse_the_same_in_any_split(pipeline, data):
    wire = b"".join(w for w, _, _ in pipeline)
    events = feed(wire)
    expected_types = []
    for _, continuations, _ in pipeline:
        expected_types += [ContinuationNeeded] * len(continuations) + [Command]
    assert [type(e) for e in events] == expected_types
    got = [e for e in events if isinstance(e, Command)]
    for command, (w, _, (tag, name, uid, args)) in zip(got, pipeline):
        assert (command.tag, command.name, command.uid) == (tag, name, uid)
        assert shapes(command) == args
        assert command.raw == w
    asked = [e for e in events if isinstance(e, ContinuationNeeded)]
    assert asked == [c for _, cs, _ in pipeline for c in cs]
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=20))
    assert feed(wire, chunks=cuts) == events


GARBAGE_PIECES = [
    b"a", b"T1", b" ", b"(", b")", b"[", b"]", b'"', b"\\", b"{", b"}", b"+", b"~", b"3", b"0",
    b"*",
    b"\r", b"\n", b"\r\n", b"\x00", b"\xc3\xa4", b"\xff", b"UID", b"NOOP", b"FETCH", b"BODY[",
    b"{3}\r\n", b"{2+}\r\n", b"~{1}\r\n", b"{99999}\r\n", b"{99999+}\r\n", b"x" * 30,
]
garbage = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(GARBAGE_PIECES), max_size=40).map(b"".join),
)


def normalised(events):
    """Events with the raw of "Line too long" errors dropped: how much of an over-long line
    was buffered when the error came depends on how the bytes arrived."""
    return [
        ParseError(e.tag, e.text, b"")
        if isinstance(e, ParseError) and e.text.startswith("Line too long")
        else e
        for e in events
    ]


@settings(max_examples=500)
@given(garbage, st.data(), st.booleans())
def test_garbage_never_raises_and_does_not_depend_on_splits(junk, data, line_mode):
    limits = dict(max_line=40, max_literal=10)
    parser = CommandParser(**limits)
    if line_mode:
        parser.expect_line()
    events = feed(junk, parser=parser)
    cuts = data.draw(st.lists(st.integers(0, len(junk)), max_size=30))
    parser = CommandParser(**limits)
    if line_mode:
        parser.expect_line()
    assert normalised(feed(junk, chunks=cuts, parser=parser)) == normalised(events)
    for event in events:
        if isinstance(event, Command):
            assert event.raw in junk
        if isinstance(event, ParseError):
            assert event.tag is None or isinstance(event.tag, str)
            assert event.text


@settings(max_examples=500)
@given(garbage.map(lambda b: b.replace(b"{", b"")), st.data())
def test_a_valid_command_parses_after_garbage(junk, data):
    """Resynchronisation: whatever came before, a line end resets the parser (garbage without
    "{" cannot leave it inside a literal)."""
    wire = junk + b"\r\nz9 NOOP\r\n"
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30))
    events = feed(wire, chunks=cuts, max_line=40)
    assert events[-1] == Command("z9", "NOOP", False, (), b"z9 NOOP\r\n")
