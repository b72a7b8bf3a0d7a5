"""The one seam every byte a fake sends passes through, and the transport faults on it.

The toxiproxy set: latency with jitter, bandwidth caps, slicing, pauses, stalls, truncation
followed by a reset or close. Ordering is kept: a STARTTLS hand-over or a close queued
after some bytes happens only once those bytes went out, so "inject plaintext after the
STARTTLS OK" and "delay the OK" compose.

Works for Twisted and asyncio transports alike through a small :class:`Sink`.
"""

from __future__ import annotations

import collections
import functools
import random
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol


class Sink(Protocol):
    """What the pipe needs from a transport."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...  # after buffered data is flushed
    def abort(self, flush: bool = False) -> None: ...  # a TCP RST where possible; flush: after written bytes left
    def call_later(self, delay: float, fn: Callable[[], None]) -> Any: ...  # returns a cancellable handle


def reset_on_close(sock: socket.socket | None) -> None:
    """Make closing ``sock`` send a TCP RST, as a crashing middlebox does (SO_LINGER 0)."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:  # already gone
        pass


def _cancel(handle: Any) -> None:
    cancel = getattr(handle, "cancel", None)
    if cancel is not None:
        try:
            cancel()
        except Exception:  # already fired or cancelled
            pass


@dataclass
class Shaping:
    latency: float = 0.0
    jitter: float = 0.0
    bytes_per_second: int = 0
    slice_size: int = 0
    slice_interval: float = 0.0005

    def __setattr__(self, name: str, value: Any) -> None:
        # ``active`` is kept up to date as the settings change (rarely) rather than worked out
        # on every write (the pipe asks it for each reply)
        object.__setattr__(self, name, value)
        d = self.__dict__
        object.__setattr__(self, "active", bool(d.get("latency") or d.get("jitter") or d.get("bytes_per_second")
                                                or d.get("slice_size")))


class OutboundPipe:
    """Queue of bytes, pauses and callbacks, drained onto a sink under the current shaping."""

    def __init__(self, sink: Sink, on_write: Callable[[bytes], None] | None = None, seed: int = 0) -> None:
        self.sink = sink
        self.on_write = on_write
        self.shaping = Shaping()
        self._rng = random.Random(seed)
        self._queue: collections.deque = collections.deque()
        self._timer: Any = None
        self._stalled = False
        self._closed = False
        self._limit: int | None = None
        self._limit_then = "reset"
        self._last_release = 0.0
        self.on_drained: Callable[[], None] | None = None  # a producer waiting for room

    @property
    def pending_bytes(self) -> int:
        """Bytes queued here and not yet handed to the transport (shaping holds them)."""
        return sum(len(item[1]) for item in self._queue if item[0] == "data")

    # -- what the protocol side calls ----------------------------------------------------

    def write(self, data: bytes, on_sent: Callable[..., None] | None = None, *args: Any) -> None:
        """Queue ``data``; ``on_sent(*args)`` runs just before its first byte reaches the sink
        (never, if the connection is reset or stalled first)."""
        if self._closed or self._stalled or not data:
            return
        if not self._queue and self._timer is None and not self.shaping.active and self._limit is None:
            # the fast path: no fault in force
            if on_sent is not None:
                on_sent(*args)
            if self.on_write is not None:
                self.on_write(data)
            self.sink.write(data)
            return
        if args:
            on_sent = functools.partial(on_sent, *args)
        release = 0.0
        if self.shaping.latency or self.shaping.jitter:
            delay = self.shaping.latency + self._rng.uniform(0, self.shaping.jitter)
            release = max(time.monotonic() + delay, self._last_release)
            self._last_release = release
        self._queue.append(("data", data, release, on_sent))
        self._drain()

    def pause(self, seconds: float) -> None:
        """Hold everything written after this point back by ``seconds``."""
        self._queue.append(("pause", seconds, 0.0, None))
        self._drain()

    def then(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once everything written before it has gone out (e.g. start TLS)."""
        if self._closed:
            return
        self._queue.append(("call", fn, 0.0, None))
        self._drain()

    def close(self) -> None:
        """Close once pending output has gone out."""
        self.then(self._close_now)

    def reset(self) -> None:
        """Abort the connection now, dropping pending output."""
        self._queue.clear()
        self._abort_now()

    def stall(self) -> None:
        """Send nothing more, ever; the connection stays open until the client gives up."""
        self._stalled = True
        self._queue.clear()
        self._cancel_timer()

    def truncate_after(self, nbytes: int, then: str = "reset") -> None:
        """Let ``nbytes`` more bytes through, then reset or close."""
        self._limit = nbytes
        self._limit_then = then

    def apply(self, action: Any) -> bool:
        """Carry out a fault rule's transport action (``reset``, ``stall``, ``delay``, ``latency``,
        ``bandwidth``, ``slice``, ``truncate``) on this pipe; False for any other action, which is
        the protocol's to handle."""
        name = action.name
        if name == "reset":
            self.reset()
        elif name == "stall":
            self.stall()
        elif name == "delay":
            self.pause(float(action.get("seconds", 0)))
        elif name == "latency":
            self.shaping.latency = float(action.get("seconds", 0))
            self.shaping.jitter = float(action.get("jitter", 0))
        elif name == "bandwidth":
            self.shaping.bytes_per_second = int(action.get("bytes_per_second"))
        elif name == "slice":
            self.shaping.slice_size = int(action.get("size", 1))
        elif name == "truncate":
            self.truncate_after(int(action.get("after_bytes", 0)), action.get("then", "reset"))
        else:
            return False
        return True

    def shutdown(self) -> None:
        """The connection is gone: drop the queue and cancel timers (nothing may leak)."""
        self._closed = True
        self._queue.clear()
        self._cancel_timer()
        forget = getattr(self.sink, "forget", None)  # a sink's own timers (TwistedSink's TLS close)
        if forget is not None:
            forget()

    @property
    def ended(self) -> bool:
        """Closed, reset or stalled: nothing written from now on reaches the client."""
        return self._closed or self._stalled

    @property
    def idle(self) -> bool:
        return not self._queue and self._timer is None

    # -- draining ------------------------------------------------------------------------

    def _drain(self) -> None:
        if self._timer is not None or self._stalled:
            return
        while self._queue and not self._closed and not self._stalled:
            kind, value, release, on_sent = self._queue[0]
            now = time.monotonic()
            if kind == "pause":
                self._queue.popleft()
                if value > 0:
                    self._schedule(value)
                    return
                continue
            if kind == "call":
                self._queue.popleft()
                value()
                continue
            if release > now:
                self._schedule(release - now)
                return
            piece = self._piece(value)
            if len(piece) < len(value):
                self._queue[0] = ("data", value[len(piece):], release, None)
            else:
                self._queue.popleft()
            if not self._emit_limited(piece, on_sent):
                return
            wait = self._wait_after(len(piece), more=bool(self._queue))
            if wait > 0:
                self._schedule(wait)
                return
        if not self._queue and self.on_drained is not None and not self._closed:
            self.on_drained()

    def _piece(self, data: bytes) -> bytes:
        size = len(data)
        if self.shaping.slice_size:
            size = min(size, self.shaping.slice_size)
        if self.shaping.bytes_per_second:
            size = min(size, max(1, self.shaping.bytes_per_second // 20))
        return data[:size] if size < len(data) else data

    def _wait_after(self, sent: int, more: bool) -> float:
        wait = 0.0
        if self.shaping.bytes_per_second:
            wait = sent / self.shaping.bytes_per_second
        if self.shaping.slice_size and more:
            wait = max(wait, self.shaping.slice_interval)
        return wait

    def _emit_limited(self, data: bytes, on_sent: Callable[[], None] | None) -> bool:
        if self._limit is not None:
            if len(data) >= self._limit:
                head = data[: self._limit]
                if head:
                    if on_sent is not None:
                        on_sent()
                    self._emit(head)
                self._limit = None
                self._queue.clear()
                if self._limit_then == "close":
                    self._close_now()
                else:
                    self._abort_now(flush=True)  # the client must get the bytes before the reset
                return False
            self._limit -= len(data)
        if on_sent is not None:
            on_sent()
        self._emit(data)
        return True

    def _emit(self, data: bytes) -> None:
        if self.on_write is not None:
            self.on_write(data)
        self.sink.write(data)

    def _schedule(self, delay: float) -> None:
        self._timer = self.sink.call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._drain()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            _cancel(self._timer)
            self._timer = None

    def _close_now(self) -> None:
        if not self._closed:
            self._closed = True
            self._cancel_timer()
            self.sink.close()

    def _abort_now(self, flush: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self._cancel_timer()
            if flush:
                self.sink.abort(flush=True)
            else:
                self.sink.abort()
