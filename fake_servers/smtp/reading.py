"""The client's bytes as the SMTP fake reads them: command lines, and messages up to the final dot.

Lines are cut here rather than by the stream reader so an over-long line is answered
(and an endless one ends the connection) instead of filling memory; a message is read in
large pieces and searched for CRLF "." CRLF, the only thing that ends it (a bare-LF dot
does not: SMTP smuggling), keeping at most ``cap`` bytes of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Awaitable

MAX_COMMAND_LINE = 12288 + 2  # RFC 4954 section 4: an AUTH line may be this long
ENDLESS_LINE = 64 * 1024  # a line longer than this without CRLF ends the connection
HEAD = 1024  # what the wire record keeps of an over-long line


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

    @property
    def data(self) -> bytes:
        """The message: terminator removed, dot-stuffing undone (RFC 5321 section 4.5.2)."""
        body = self.kept if self.overflow else self.kept[:-3]
        body = body.replace(b"\r\n.", b"\r\n")
        return body[1:] if body.startswith(b".") else body


class Input:
    """The client's bytes not read yet: the connection feeds them in, the command loop reads.

    ``more`` is what the loop awaits when it needs bytes that have not come yet; whoever
    drives the loop resumes it once :meth:`feed` or :meth:`end` was called.
    """

    def __init__(self, more: Awaitable[None]) -> None:
        self._more = more
        self.buffer = bytearray()
        self.ended = False  # the end of the stream came (after what is in the buffer)
        self.fed = 0  # bytes fed in so far
        self.began: float | None = None  # when the first byte of what is being read arrived
        self.message_bytes = 0  # bytes of the message being read so far

    def feed(self, data: bytes) -> None:
        if not self.buffer:
            self.began = time.monotonic()
        self.buffer += data
        self.fed += len(data)

    def end(self) -> None:
        self.ended = True

    def take_began(self) -> float:
        began, self.began = self.began, None
        return began or time.monotonic()

    async def fill(self) -> bool:
        """Wait for bytes beyond those in the buffer now; False at the end of the stream."""
        fed = self.fed
        while self.fed == fed:
            if self.ended:
                return False
            await self._more
        return True

    async def line(self) -> bytes | TooLong | None:
        """One line (LF or CRLF ended); None at the end of the stream."""
        buf = self.buffer
        start, dropped, head = 0, 0, b""
        if buf and self.began is None:
            self.began = time.monotonic()
        while True:
            end = buf.find(b"\n", start)
            if end >= 0:
                if dropped or end + 1 > MAX_COMMAND_LINE:
                    head = head or bytes(buf[:HEAD])
                    del buf[: end + 1]
                    return TooLong(dropped + end + 1, head)
                line = bytes(buf[: end + 1])
                del buf[: end + 1]
                return line
            if len(buf) > MAX_COMMAND_LINE:
                head = head or bytes(buf[:HEAD])
                dropped += len(buf)
                buf.clear()
                if dropped > ENDLESS_LINE:
                    return TooLong(dropped, head, endless=True)
            start = len(buf)
            if not await self.fill():
                return None

    async def message(self, cap: int) -> Message | None:
        """Bytes up to and including the CRLF "." CRLF that ends DATA; None at the end of the stream."""
        kept, total, overflow = bytearray(), 0, False
        self.message_bytes = 0
        tail = b"\r\n"  # the CRLF that ended the DATA command begins the first terminator
        self.began = time.monotonic() if self.buffer else None
        while True:
            if not self.buffer and not await self.fill():
                return None
            chunk = bytes(self.buffer)
            self.buffer.clear()
            window = tail + chunk
            found = window.find(b"\r\n.\r\n")
            if found >= 0:
                end = found + 5 - len(tail)
                piece = chunk[:end]
                self.buffer += chunk[end:]  # pipelined commands after the dot
            else:
                piece = chunk
                tail = window[-4:]
            total += len(piece)
            self.message_bytes = total
            if not overflow:
                if len(kept) + len(piece) > cap:
                    overflow = True
                    kept += piece[: max(0, cap - len(kept))]
                else:
                    kept += piece
            if found >= 0:
                return Message(bytes(kept), total, overflow)


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
