"""The client's bytes as the SMTP fake reads them: command lines, and messages up to the final dot.

Lines are cut here rather than by the stream reader so an over-long line is answered
(and an endless one ends the connection) instead of filling memory; a message is read in
large pieces and searched for CRLF "." CRLF, the only thing that ends it (a bare-LF dot
does not: SMTP smuggling), keeping at most ``cap`` bytes of it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_COMMAND_LINE = 12288 + 2  # RFC 4954 section 4: an AUTH line may be this long
ENDLESS_LINE = 64 * 1024  # a line longer than this without CRLF ends the connection
HEAD = 1024  # what the wire record keeps of an over-long line
TERMINATOR = b"\r\n.\r\n"


@dataclass
class TooLong:
    """A line over MAX_COMMAND_LINE, thrown away but for its head."""

    size: int
    head: bytes
    endless: bool = False  # no line end in sight after ENDLESS_LINE bytes


@dataclass
class Message:
    """What came after DATA, up to and including the final dot."""

    kept: bytes  # the raw bytes, terminator included (only the first ``cap`` when over)
    received: int  # every byte of it, terminator included
    overflow: bool  # more than ``cap`` bytes came
    stuffed: bool = True  # some line may be dot-stuffed (False: the reader saw that none is)

    @property
    def data(self) -> bytes:
        """The message: terminator removed, dot-stuffing undone (RFC 5321 section 4.5.2)."""
        body = self.kept if self.overflow else self.kept[:-3]
        if not self.stuffed:
            return body
        body = body.replace(b"\r\n.", b"\r\n")
        return body[1:] if body.startswith(b".") else body


class Input:
    """The client's bytes not read yet, cut into command lines and messages.

    No I/O and no waiting: the connection feeds bytes in (:meth:`feed`, :meth:`end`) and
    the server takes what is complete (:meth:`line`, :meth:`message`), which return None
    until it is. A message is taken in pieces as they come, so the buffer never holds
    more than one read of it.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.ended = False  # the end of the stream came (after what is in the buffer)
        self.began = 0.0  # when the first byte of the line or message taken last arrived
        self.fed_at = 0.0  # when the last bytes were fed in
        self.message_bytes = 0  # bytes of the message being read so far
        self._next_began = 0.0  # when the first byte of what is read next arrived
        self._scanned = 0  # bytes of the buffer already searched for a line end
        self._dropped = 0  # bytes of an over-long line thrown away so far ...
        self._head = b""  # ... and its first HEAD bytes
        self._message: _Partial | None = None
        self._alone: bytes | None = None  # the one read the buffer holds, when it holds one

    def feed(self, data: bytes, at: float) -> None:
        """Bytes that arrived at ``at`` (time.monotonic())."""
        if not self.buffer and not self.message_bytes and not self._dropped:
            self._next_began = at
            self._alone = data  # the buffer holds just these bytes (see message())
        else:
            self._alone = None
        self.buffer += data
        self.fed_at = at

    def takes_whole_line(self, data: bytes, at: float) -> bool:
        """True when ``data`` is exactly one line and nothing is pending before it: then it
        is the next line, taken as it is (``began`` is ``at``), and the buffer stays empty.
        False: nothing was taken; :meth:`feed` it."""
        end = len(data) - 1
        if (self.buffer or self._dropped or self.message_bytes or end < 0 or data.find(b"\n") != end
                or end >= MAX_COMMAND_LINE):
            return False
        self.began = self.fed_at = at
        return True

    def end(self) -> None:
        self.ended = True

    def clear(self) -> None:
        """Throw away everything not read yet (the connection is ending)."""
        self.buffer.clear()
        self._scanned = self._dropped = 0
        self._head = b""

    def line(self) -> bytes | TooLong | None:
        """The next line (LF or CRLF ended), or None until one is complete."""
        buf = self.buffer
        end = buf.find(b"\n", self._scanned)
        if end < 0 or self._dropped or end >= MAX_COMMAND_LINE:
            return self._long_line(end)
        line = bytes(buf[: end + 1])
        del buf[: end + 1]
        self._scanned = 0
        self.began = self._next_began
        if buf:
            self._next_began = self.fed_at  # what follows came with the last read (pipelining)
        return line

    def _long_line(self, end: int) -> TooLong | None:
        buf = self.buffer
        if end >= 0:  # the end of a line too long to keep
            head = self._head or bytes(buf[:HEAD])
            size = self._dropped + end + 1
            del buf[: end + 1]
            self._scanned, self._dropped, self._head = 0, 0, b""
            self.began = self._next_began
            if buf:
                self._next_began = self.fed_at
            return TooLong(size, head)
        if len(buf) > MAX_COMMAND_LINE:
            self._head = self._head or bytes(buf[:HEAD])
            self._dropped += len(buf)
            buf.clear()
            if self._dropped > ENDLESS_LINE:
                size, head = self._dropped, self._head
                self._scanned, self._dropped, self._head = 0, 0, b""
                self.began = self._next_began
                return TooLong(size, head, endless=True)
        self._scanned = len(buf)
        return None

    def message(self, cap: int) -> Message | None:
        """The message after DATA, up to and including the CRLF "." CRLF that ends it, keeping
        at most ``cap`` bytes of it; None until the final dot came."""
        partial = self._message
        buf = self.buffer
        if partial is None:
            self.message_bytes = 0
            # The first line-start dot is either the final one or a stuffed one: when it is
            # final, the message is whole in this read and has no stuffing to undo.
            found = buf.find(b"\r\n.")
            stuffed = found < 0 or buf[found + 3:found + 5] != b"\r\n" or buf.startswith(b".")
            if stuffed:
                found = buf.find(TERMINATOR)
            if 0 <= found <= cap - 5 and not buf.startswith(b".\r\n"):  # the whole message in one read
                end = found + 5
                alone = self._alone
                # the bytes of that read themselves when they are the message (no copy: the
                # wire record keeps them already)
                kept = alone if alone is not None and len(alone) == end == len(buf) else bytes(buf[:end])
                del buf[:end]
                self.began = self._next_began
                if buf:
                    self._next_began = self.fed_at
                return Message(kept, end, False, stuffed)
            partial = self._message = _Partial()
        if not buf:
            return None
        end = -1
        tail = partial.tail
        if tail:  # a terminator across the previous read and this one
            found = (tail + bytes(buf[:4])).find(TERMINATOR)
            if found >= 0:
                end = found + 5 - len(tail)
        if end < 0:
            found = buf.find(TERMINATOR)
            if found >= 0:
                end = found + 5
        size = len(buf) if end < 0 else end
        if not partial.received:
            partial.began = self._next_began
        partial.received += size
        self.message_bytes = partial.received
        kept = partial.kept
        if not partial.overflow:
            if len(kept) + size > cap:
                partial.overflow = True
                kept += buf[: max(0, cap - len(kept))]
            else:
                kept += buf[:size]
        if end < 0:
            partial.tail = (tail + bytes(buf[-4:]))[-4:]
            buf.clear()
            return None
        del buf[:size]
        self._message = None
        self.message_bytes = 0
        self.began = partial.began
        if buf:
            self._next_began = self.fed_at
        return Message(bytes(kept), partial.received, partial.overflow)


class _Partial:
    """A message being read."""

    __slots__ = ("kept", "received", "overflow", "tail", "began")

    def __init__(self) -> None:
        self.kept = bytearray()
        self.received = 0
        self.began = 0.0
        self.overflow = False
        self.tail = b"\r\n"  # the CRLF that ended the DATA command begins the first terminator


def split_handshake(data: bytes) -> tuple[bytes, bytes]:
    """(plaintext lines, TLS handshake) of what a client sent after STARTTLS: the handshake
    starts with a TLS handshake record (0x16 0x03) at the start of a line."""
    at = 0
    while at < len(data):
        if data[at:at + 2] == b"\x16\x03":
            return data[:at], data[at:]
        newline = data.find(b"\n", at)
        if newline < 0:
            break
        at = newline + 1
    return data, b""
