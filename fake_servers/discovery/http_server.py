"""The web fakes' I/O: twisted.web on one HTTPS and one plain-HTTP port, recorded like IMAP.

Every TCP connection is one ``ConnectionRecord`` (protocol ``"http"``, server ``"https"`` or
``"http"``) holding the bytes both ways; every request is one ``CommandRecord`` and every
answer one ``ResponseRecord`` (see :mod:`.http_messages`). Which answer a request gets is
decided by a handler, ``HttpRequest -> HttpReply``, that does no I/O; this module carries
the reply out, including the faults a reply may ask for (a delay, a stall, a reset).

Request bodies are kept up to ``body_cap`` bytes and counted beyond it, so a huge body costs
no memory and the handler can still answer 413.
"""

from __future__ import annotations

import io
import time
from typing import Any, Callable

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IHandshakeListener
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web import resource, server
from zope.interface import implementer

from ..runtime import set_nodelay
from ..twisted_io import TwistedSink, peer_of, tls_version
from ..wire import ConnectionRecord, WireLog
from .http_messages import HttpReply, HttpRequest, text_reply

log = Logger()

DEFAULT_BODY_CAP = 64 * 1024
SERVER_HEADER = b"mailconform"

Handler = Callable[[HttpRequest, ConnectionRecord], HttpReply]


class _CappedContent(io.BytesIO):
    """A request body buffer that keeps the first ``cap + 1`` bytes and counts the rest."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap
        self.total = 0

    def write(self, data) -> int:  # type: ignore[override]
        self.total += len(data)
        room = self.cap + 1 - self.tell()
        if room > 0:
            super().write(bytes(data[:room]))
        return len(data)


class _Request(server.Request):
    def gotLength(self, length):  # noqa: N802 - Twisted's name
        self.content = _CappedContent(self.channel.site.body_cap)


@implementer(IHandshakeListener)
class _RecordingProtocol(ProtocolWrapper):
    """Sits between the socket (or TLS) and the HTTP channel: records bytes both ways."""

    factory: "_RecordingFactory"
    record: ConnectionRecord

    def makeConnection(self, transport) -> None:  # noqa: N802
        f = self.factory
        self.gone = Deferred()
        self.record = f.wire.open("http", f.name, peer_of(transport), implicit_tls=f.tls)
        set_nodelay(transport)
        super().makeConnection(transport)

    def handshakeCompleted(self) -> None:  # noqa: N802
        self.record.tls_started(tls_version(self.transport))

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.record.received(data)
        super().dataReceived(data)

    def write(self, data: bytes) -> None:
        self.record.sent(data)
        super().write(data)

    def writeSequence(self, data) -> None:  # noqa: N802
        for piece in data:
            self.record.sent(piece)
        super().writeSequence(data)

    def connectionLost(self, reason) -> None:  # noqa: N802
        super().connectionLost(reason)
        self.record.closed(reason.getErrorMessage() if reason is not None else "closed")
        self.gone.callback(None)


class _RecordingFactory(WrappingFactory):
    protocol = _RecordingProtocol
    noisy = False

    def __init__(self, site: "_Site", *, name: str, wire: WireLog, tls: bool) -> None:
        super().__init__(site)
        self.name = name
        self.wire = wire
        self.tls = tls

    def abort_all(self) -> Deferred:
        """Drop every connection; the Deferred fires once each one is gone."""
        gone = []
        for proto in list(self.protocols):
            gone.append(proto.gone)
            proto.transport.abortConnection()
        return DeferredList(gone)


class _Dispatch(resource.Resource):
    """The one resource: every request, whatever its path, goes to the handler."""

    isLeaf = True

    def __init__(self, site_options: "_Site") -> None:
        super().__init__()
        self.site_options = site_options

    def render(self, request: server.Request):
        site = self.site_options
        wrapper = request.channel.transport
        record: ConnectionRecord = wrapper.record
        http = _as_http_request(request, site.scheme)
        began = getattr(request, "_mailconform_began", None) or time.monotonic()
        basic = http.basic_credentials()
        if basic is not None and record.user is None:
            record.user = basic[0]
        record.add_command(began, site.tls, "", None, http.method, http.raw(), http.redacted(),
                           credentials=http.credentials)
        record.announce(f"C: {http.head_lines()[0]}")
        try:
            reply = site.handler(http, record)
        except Exception:
            log.failure("discovery HTTP handler failed on connection {id}", id=record.id)
            record.note("internal error in the fake (see the log); answered 500")
            reply = text_reply(500, "Internal error in the fake server.")
        if reply.note:
            record.note(reply.note)
        if reply.reset:
            record.note("server resets the connection")
            TwistedSink(wrapper, site.reactor).abort()
            return server.NOT_DONE_YET
        if reply.stall:
            record.note("server stalls: no answer, the connection stays open")
            return server.NOT_DONE_YET
        if reply.delay > 0:
            timer = site.reactor.callLater(reply.delay, _send, request, reply, record, site.tls)
            request.notifyFinish().addErrback(lambda _: timer.cancel() if timer.active() else None)
            return server.NOT_DONE_YET
        _send(request, reply, record, site.tls)
        return server.NOT_DONE_YET


def _send(request: server.Request, reply: HttpReply, record: ConnectionRecord, tls: bool) -> None:
    if request._disconnected:
        return
    request.setResponseCode(reply.status, reply.reason.encode("latin-1", "replace"))
    request.setHeader(b"server", SERVER_HEADER)
    for key, value in reply.headers:
        request.responseHeaders.addRawHeader(key.encode("latin-1"), value.encode("latin-1", "replace"))
    request.setHeader(b"content-length", str(len(reply.body)).encode())
    if reply.close:
        request.setHeader(b"connection", b"close")
    record.add_response(time.monotonic(), tls, "http", None, str(reply.status), None,
                        reply.status_line())
    record.announce(f"S: {reply.status_line()}")
    if reply.body:
        request.write(reply.body)
    request.finish()
    if reply.close:
        request.channel.loseConnection()


def _as_http_request(request: server.Request, scheme: str) -> HttpRequest:
    headers: list[tuple[str, str]] = []
    for name, values in request.requestHeaders.getAllRawHeaders():
        for value in values:
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
    content = request.content
    total = getattr(content, "total", None)
    body = b""
    if content is not None:
        content.seek(0)
        body = content.read()
    return HttpRequest(scheme, request.method.decode("latin-1"), request.uri.decode("latin-1"),
                       request.clientproto.decode("latin-1"), headers, body,
                       body_length=total if total is not None else len(body))


class _Site(server.Site):
    requestFactory = _Request
    noisy = False

    def __init__(self, handler: Handler, *, scheme: str, reactor: Any, body_cap: int) -> None:
        super().__init__(_Dispatch(self))
        self.handler = handler
        self.scheme = scheme
        self.tls = scheme == "https"
        self.reactor = reactor
        self.body_cap = body_cap

    def log(self, request) -> None:  # the wire record is the access log
        pass


class WebServer:
    """One listening web server (HTTPS or plain HTTP) on 127.0.0.1."""

    def __init__(self, handler: Handler, *, scheme: str, wire: WireLog, reactor: Any,
                 tls_context: Any = None, body_cap: int = DEFAULT_BODY_CAP) -> None:
        self.scheme = scheme
        self.site = _Site(handler, scheme=scheme, reactor=reactor, body_cap=body_cap)
        self.factory = _RecordingFactory(self.site, name=scheme, wire=wire, tls=scheme == "https")
        self.reactor = reactor
        self.tls_context = tls_context
        self.port: Any = None

    def listen(self, interface: str = "127.0.0.1") -> int:
        if self.scheme == "https":
            self.port = self.reactor.listenSSL(0, self.factory, self.tls_context, interface=interface)
        else:
            self.port = self.reactor.listenTCP(0, self.factory, interface=interface)
        return self.port.getHost().port

    def stop(self) -> Deferred:
        waits = []
        if self.port is not None:
            waits.append(self.port.stopListening())
            self.port = None
        waits.append(self.factory.abort_all())
        return DeferredList([w for w in waits if w is not None])
