"""The SMTP fake's reader (fake_servers.smtp.reading.Input) fed bytes in every possible way.

However a client's bytes are cut into reads, the fake must see the same command lines and
the same message: these properties feed one stream whole and in arbitrary pieces.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fake_servers.smtp.reading import MAX_COMMAND_LINE, Input, TooLong

# Message lines from the characters that matter to the end of DATA, none holding a CRLF
# (that would end the line); a line starting with "." is dot-stuffed on the wire.
message_lines = st.lists(st.text("a.\r\n", max_size=12).filter(lambda line: "\r\n" not in line), max_size=8)


def wire_message(lines: list[str]) -> bytes:
    """The message as a client sends it after DATA, final dot included."""
    stuffed = ["." + line if line.startswith(".") else line for line in lines]
    return ("\r\n".join(stuffed) + "\r\n.\r\n").encode() if lines else b".\r\n"


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` in pieces, cut at ``points`` (clipped to its length)."""
    edges = sorted({0, len(data), *(min(p, len(data)) for p in points)})
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def read_message(reader: Input, pieces: list[bytes], cap: int):
    """Feed the pieces one by one, taking the message as soon as it is complete."""
    message = None
    for at, piece in enumerate(pieces):
        reader.feed(piece, float(at))
        if message is None:
            message = reader.message(cap)
    return message


@settings(max_examples=300)
@given(first=message_lines, second=message_lines, points=st.lists(st.integers(0, 120), max_size=6))
def test_messages_are_the_same_however_they_are_cut_into_reads(first, second, points):
    # two messages back to back (a client pipelining), then a command
    stream = wire_message(first) + wire_message(second) + b"NOOP\r\n"
    reader, messages = Input(), []
    for at, piece in enumerate(cut(stream, points)):
        reader.feed(piece, float(at))
        while len(messages) < 2 and (message := reader.message(1 << 20)) is not None:
            messages.append(message)
    assert len(messages) == 2
    for message, lines in zip(messages, (first, second)):
        assert not message.overflow
        assert message.kept == wire_message(lines) and message.received == len(message.kept)
        # dot-stuffing undone; the last line keeps its CRLF, the final dot's own line goes
        assert message.data == "".join(line + "\r\n" for line in lines).encode()
    assert reader.line() == b"NOOP\r\n" and reader.line() is None  # what follows the dot is a command


@settings(max_examples=200)
@given(lines=message_lines, points=st.lists(st.integers(0, 120), max_size=6), cap=st.integers(0, 40))
def test_a_message_over_the_cap_keeps_its_head_and_counts_every_byte(lines, points, cap):
    stream = wire_message(lines)
    message = read_message(Input(), cut(stream, points), cap=cap)
    assert message is not None and message.received == len(stream)
    assert message.overflow == (len(stream) > cap)
    assert message.kept == stream[:cap] if message.overflow else message.kept == stream


@settings(max_examples=200)
@given(commands=st.lists(st.text("EHLO x.\r", min_size=1, max_size=20), min_size=1, max_size=6),
       points=st.lists(st.integers(0, 150), max_size=8), crlf=st.booleans())
def test_command_lines_are_the_same_however_they_are_cut_into_reads(commands, points, crlf):
    end = b"\r\n" if crlf else b"\n"
    stream = b"".join(c.encode() + end for c in commands)
    reader, taken = Input(), []
    for at, piece in enumerate(cut(stream, points)):
        reader.feed(piece, float(at))
        while (line := reader.line()) is not None:
            taken.append(line)
    assert taken == [c.encode() + end for c in commands]


def test_the_time_of_a_line_is_when_its_first_byte_arrived():
    reader = Input()
    reader.feed(b"NO", 1.0)
    assert reader.line() is None
    reader.feed(b"OP\r\nRSET\r\nQU", 2.0)
    assert reader.line() == b"NOOP\r\n" and reader.began == 1.0
    assert reader.line() == b"RSET\r\n" and reader.began == 2.0  # pipelined behind it
    reader.feed(b"IT\r\n", 3.0)
    assert reader.line() == b"QUIT\r\n" and reader.began == 2.0


def test_an_overlong_line_is_thrown_away_but_for_its_head_and_the_next_line_is_read():
    reader = Input()
    reader.feed(b"X" * (MAX_COMMAND_LINE + 10), 1.0)
    assert reader.line() is None and not reader.buffer  # dropped as it comes
    reader.feed(b"YY\r\nNOOP\r\n", 2.0)
    long = reader.line()
    assert isinstance(long, TooLong) and long.size == MAX_COMMAND_LINE + 14 and not long.endless
    assert long.head == b"X" * len(long.head)
    assert reader.line() == b"NOOP\r\n"
