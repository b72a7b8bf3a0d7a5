"""Small adapters between Twisted transports and the fakes' I/O seams."""

from __future__ import annotations

import socket
from typing import Any, Callable

from .faults.transport import reset_on_close


class TwistedSink:
    """The :class:`~fake_servers.faults.transport.Sink` of a Twisted transport."""

    def __init__(self, transport: Any, reactor: Any) -> None:
        self.transport = transport
        self.reactor = reactor
        self._tcp_closer: Any = None

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> None:
        # A registered producer (the IMAP fake streams large FETCHes) holds TLS shutdown back
        # until it is unregistered; the server closing means it will produce nothing more.
        if getattr(self.transport, "producer", None) is not None or getattr(self.transport, "_producer", None):
            self.transport.unregisterProducer()
        self.transport.loseConnection()
        tcp = innermost(self.transport)
        if tcp is not self.transport:
            # Over TLS, Twisted sends close_notify and then keeps the TCP connection open until
            # the client answers with its own; real servers close it. A client that writes
            # after the server's BYE instead (curl's LOGOUT) would otherwise wait forever.
            self._tcp_closer = self.reactor.callLater(TLS_CLOSE_GRACE, _close_tcp, tcp)

    def forget(self) -> None:
        """The connection is gone: cancel what close() left scheduled."""
        if self._tcp_closer is not None and self._tcp_closer.active():
            self._tcp_closer.cancel()
        self._tcp_closer = None

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
        reset_on_close(raw_socket(tcp))
        tcp.abortConnection()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        return self.reactor.callLater(delay, fn)


TLS_CLOSE_GRACE = 1.0  # seconds a client has to answer close_notify before the server closes TCP


def _close_tcp(tcp: Any) -> None:
    if not getattr(tcp, "disconnected", True):
        tcp.loseConnection()  # what is buffered (close_notify included) goes out first


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
