"""The SMTP fake's two seams onto asyncio: where its bytes go out, and the TLS layer put under it.

:class:`AsyncioSink` is the :class:`~fake_servers.faults.transport.Sink` of one connection:
it writes to whichever transport is current (plaintext, then TLS after STARTTLS), resets
with a real TCP RST, and closes politely. :func:`tls_layer` starts TLS under a connection
at a moment of the fake's choosing (right after the 220 and any injected plaintext went
out), feeding the layer handshake bytes the client sent before it existed.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto as sslproto
import ssl
import time
from typing import Any, Callable

from ..faults.transport import reset_on_close

FLUSH_WAIT = 5.0  # how long a "flush, then reset" waits for a client that does not read
LINGER = 2.0  # after the server shut its write side: how long the client has to close its own
HANDSHAKE_TIMEOUT = 30.0


class AsyncioSink:
    """Writes, closes and resets for one connection (``proto``: its SmtpServerProtocol)."""

    def __init__(self, proto: Any) -> None:
        self.proto = proto

    def write(self, data: bytes) -> None:
        transport = self.proto.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        """Close once written bytes went out. On plaintext the write side is shut first and the
        socket closed when the client has read everything and closed too (or after a while):
        closing a socket with unread input would send a reset that can destroy the last reply."""
        transport = self.proto.transport
        if transport is None:
            return
        if (transport is self.proto.raw_transport and not self.proto.peer_eof and not transport.is_closing()
                and transport.can_write_eof()):
            try:
                transport.write_eof()
            except OSError:  # the client is already gone (ENOTCONN): nothing left to flush
                transport.close()
                return
            self.proto.linger()
        else:
            transport.close()

    def abort(self, flush: bool = False, deadline: float | None = None) -> None:
        """Reset the connection (RST); with ``flush``, once what was written left the buffers."""
        raw = self.proto.raw_transport
        if raw is None:
            return
        if flush and not raw.is_closing():
            deadline = deadline if deadline is not None else time.monotonic() + FLUSH_WAIT
            current = self.proto.transport
            pending = raw.get_write_buffer_size()
            if current is not None and current is not raw:
                pending += current.get_write_buffer_size()
            if pending and time.monotonic() < deadline:
                self.proto.loop.call_later(0.001, self.abort, True, deadline)
                return
        reset_on_close(raw.get_extra_info("socket"))
        raw.abort()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        return self.proto.loop.call_later(delay, fn)


def tls_layer(loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, raw: asyncio.Transport,
              context: ssl.SSLContext, hello: bytes = b"") -> tuple[asyncio.Future, Any]:
    """Put a server-side TLS layer between ``raw`` and ``protocol`` now; returns the future
    the handshake settles and the layer (its ``_app_transport`` is the new transport).

    Unlike ``loop.start_tls`` this happens at once, not at the next turn of the loop, and
    takes ``hello``: handshake bytes already read from the socket.
    """
    waiter = loop.create_future()
    layer = sslproto.SSLProtocol(loop, protocol, context, waiter, server_side=True, call_connection_made=False,
                                 ssl_handshake_timeout=HANDSHAKE_TIMEOUT, ssl_shutdown_timeout=LINGER)
    raw.set_protocol(layer)
    layer.connection_made(raw)
    while hello:
        buffer = layer.get_buffer(len(hello))
        size = min(len(buffer), len(hello))
        buffer[:size] = hello[:size]
        layer.buffer_updated(size)
        hello = hello[size:]
    return waiter, layer
