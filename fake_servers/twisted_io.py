"""Small adapters between Twisted transports and the fakes' I/O seams."""

from __future__ import annotations

import socket
import struct
from typing import Any, Callable


class TwistedSink:
    """The :class:`~fake_servers.faults.transport.Sink` of a Twisted transport."""

    def __init__(self, transport: Any, reactor: Any) -> None:
        self.transport = transport
        self.reactor = reactor

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> None:
        # A registered producer (the IMAP fake streams large FETCHes) holds TLS shutdown back
        # until it is unregistered; the server closing means it will produce nothing more.
        if getattr(self.transport, "producer", None) is not None or getattr(self.transport, "_producer", None):
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def abort(self, flush: bool = False) -> None:
        """Reset the connection; with ``flush``, only once what was written reached the socket
        (Twisted buffers writes, and an abort drops its buffers)."""
        tcp = innermost(self.transport)
        if flush and not getattr(tcp, "disconnected", True):
            for layer in (self.transport, getattr(tcp, "protocol", None)):
                aggregator = getattr(layer, "_aggregator", None)  # TLS coalesces small writes
                if aggregator is not None:
                    aggregator.flush()
            if _unsent(tcp):
                self.reactor.callLater(0.001, self.abort, True)
                return
        # Abort the TCP transport itself: a TLS layer above it would first send close_notify,
        # which the client reads as a clean end of stream rather than a reset.
        sock = raw_socket(tcp)
        if sock is not None:
            try:  # linger 0 turns the close into a TCP RST, as a crashing middlebox does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        tcp.abortConnection()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        return self.reactor.callLater(delay, fn)


def _unsent(tcp: Any) -> int:
    """Bytes a Twisted file descriptor holds that the kernel has not taken yet."""
    try:
        return len(tcp.dataBuffer) - tcp.offset + tcp._tempDataLen
    except (AttributeError, TypeError):
        return 0


def innermost(transport: Any) -> Any:
    """The lowest transport under any wrappers (TLS), the one that owns the socket."""
    for _ in range(4):
        inner = getattr(transport, "transport", None)
        if inner is None:
            return transport
        transport = inner
    return transport


def raw_socket(transport: Any) -> socket.socket | None:
    for _ in range(4):
        sock = getattr(transport, "socket", None)
        if isinstance(sock, socket.socket):
            return sock
        transport = getattr(transport, "transport", None)
        if transport is None:
            return None
    return None


def tls_version(transport: Any) -> str | None:
    try:
        handle = transport.getHandle()
        return handle.get_protocol_version_name()
    except Exception:
        return None


def peer_of(transport: Any) -> str:
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except Exception:
        return "unknown"
