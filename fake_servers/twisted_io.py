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
        self.transport.loseConnection()

    def abort(self) -> None:
        sock = raw_socket(self.transport)
        if sock is not None:
            try:  # linger 0 turns the close into a TCP RST, as a crashing middlebox does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abortConnection()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        return self.reactor.callLater(delay, fn)


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
