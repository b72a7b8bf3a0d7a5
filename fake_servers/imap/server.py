"""The IMAP fake's I/O: a Twisted protocol around :class:`ImapSession`.

Bytes in: recorded, parsed, offered to the fault rules, then to the session. Bytes out:
offered to the fault rules, then written through the :class:`OutboundPipe`, the one seam
where transport faults apply, and recorded when they actually go out (a response that a
fault delays is recorded late; one that a reset or stall drops is not recorded at all).
Nothing here decides protocol behaviour.

Fault events, in the order a connection meets them: ``connect`` (accepted), ``tls``
(handshake done: at once on the implicit-TLS port, after STARTTLS on the other),
``greeting``, then per command ``command`` (received; state actions happen before the
command runs) and ``response`` (its tagged response is about to be sent, after it ran),
and ``idle`` (the client has just entered IDLE).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from ..faults import Action, FaultEngine, OutboundPipe
from ..mailstore import MailStore
from ..runtime import set_nodelay
from ..twisted_io import TwistedSink, peer_of, tls_version
from ..wire import WireLog
from . import state_actions
from .config import ImapConfig
from .mailbox_commands import idle_updates
from .parser import Command, CommandParser, ContinuationNeeded, Line, ParseError
from .redact import describe_command, describe_unparsable
from .responses import Close, Send, StartTLS, Stream, continuation, status_untagged, tagged, untagged
from .session import ImapSession, State

log = Logger()

STREAM_BACKLOG = 1 << 20  # bytes the pipe may hold (under shaping) before a Stream waits
STREAM_BATCH = 64 * 1024  # a Stream's responses are written in pieces of about this size

HALTING = ("bye", "close", "reset", "stall")  # actions after which the command is not executed


class ImapServerFactory(Factory):
    """One listening IMAP server of a fake provider (plaintext+STARTTLS, or implicit TLS)."""

    def __init__(
        self,
        *,
        name: str,
        store: MailStore,
        config: ImapConfig,
        wire: WireLog,
        faults: FaultEngine,
        tls_context: Any = None,
        implicit_tls: bool = False,
        reactor: Any,
        provider_configs: list[ImapConfig] | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.config = config
        self.wire = wire
        self.faults = faults
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.reactor = reactor
        # every server config of the provider: a "capabilities" action changes them together
        self.provider_configs = provider_configs if provider_configs is not None else [config]
        self.connections: set[ImapServerProtocol] = set()

    def buildProtocol(self, addr):  # noqa: N802 - Twisted's name
        proto = ImapServerProtocol()
        proto.factory = self
        return proto

    def abort_all(self) -> Deferred:
        """Drop every connection; the Deferred fires once each one is gone."""
        gone = []
        for proto in list(self.connections):
            gone.append(proto.gone)
            proto.transport.abortConnection()
        return DeferredList(gone)


@dataclass
class _Plan:
    """What the fault actions of one event add around the protocol's own output."""

    before: list = field(default_factory=list)  # untagged lines before the response
    after: list = field(default_factory=list)  # untagged lines right behind the tagged response
    tail: list = field(default_factory=list)  # BYE and closes, after everything else
    reply: Action | None = None  # the last "reply" action, if any
    halted: bool = False  # bye/close/reset/stall: the command is not executed

    def extend(self, other: "_Plan") -> "_Plan":
        return _Plan(self.before + other.before, self.after + other.after, self.tail + other.tail,
                     other.reply or self.reply, self.halted or other.halted)


@implementer(IHandshakeListener)
class ImapServerProtocol(Protocol):
    factory: ImapServerFactory

    def connectionMade(self) -> None:  # noqa: N802
        f = self.factory
        set_nodelay(self.transport)
        f.connections.add(self)
        self.gone = Deferred()
        self.record = f.wire.open("imap", f.name, peer_of(self.transport), implicit_tls=f.implicit_tls)
        self.pipe = OutboundPipe(TwistedSink(self.transport, f.reactor), on_write=self.record.sent,
                                 seed=f.faults.seed + self.record.id)
        self.session = ImapSession(f.store, f.config, tls=False)
        self.session.on_folder_change = self._folder_changed
        self.parser = CommandParser(max_literal=f.config.max_append_size)
        self._closed = False  # the connection is gone
        self._ending = False  # the server has decided to end it (BYE, close, reset, stall, truncation)
        self._tls_pending = False
        self._line_command: str | None = None  # the command whose continuation lines are awaited
        self._began: float | None = None  # when input not yet recorded as a command started to arrive
        self._starttls_at: int | None = None  # plaintext bytes received up to the end of STARTTLS
        self._backlog: collections.deque = collections.deque()  # outputs behind a Stream
        self._paused = False  # the transport's buffer is full (we are its push producer)
        self._pumping = False
        self._input_waiting = False  # input stopped behind a Stream; resume when it is done
        self.pipe.on_drained = self._pump
        self.transport.registerProducer(self, True)
        plan = self._apply(self._fire("connect"))
        if plan.reply is not None:  # a refusal instead of the greeting
            self._deliver(self._greeting_reply(plan.reply, default="BYE"), plan)
            return
        self._deliver([], plan)
        if plan.halted or self._closed:
            return
        if f.implicit_tls:
            return  # greet once the handshake completed (see handshakeCompleted)
        self._greet()

    def _greet(self) -> None:
        outputs = self.session.greeting()
        plan = self._apply(self._fire("greeting"))
        if plan.reply is not None:
            outputs = self._greeting_reply(plan.reply, default="OK")
        self._deliver(outputs, plan)

    def _greeting_reply(self, action: Action, default: str) -> list:
        status = action.get("status", default).upper()
        text = _with_code(action.get("code"), action.get("text", ""))
        outputs: list = [Send(f"* {status} {text}\r\n".encode(), "greeting", None, status, action.get("code"),
                              injected=True)]
        if status == "BYE":
            outputs.append(Close("greeting BYE"))
        elif status == "PREAUTH" and self.session.state is State.NOT_AUTHENTICATED:
            self.session._authenticate_as(self.session._preauth_account())  # as ImapConfig.preauth does
        return outputs

    # -- TLS ---------------------------------------------------------------------------------

    def handshakeCompleted(self) -> None:  # noqa: N802
        self._record_dropped_plaintext()
        self.record.tls_started(tls_version(self.transport))
        self.session.tls_started()
        self._tls_pending = False
        plan = self._apply(self._fire("tls"))
        self._deliver([], plan)
        if plan.halted or self._closed:
            return
        if self.factory.implicit_tls:
            self._greet()

    def _start_tls(self) -> None:
        if self._closed:
            return
        self.parser = CommandParser(max_literal=self.factory.config.max_append_size)  # drop injected plaintext
        self._tls_pending = True
        self.transport.startTLS(self.factory.tls_context)

    def _record_dropped_plaintext(self) -> None:
        """Keep as evidence the commands a client sent in plaintext behind STARTTLS: they were
        never executed, but a password among them crossed the wire in the clear."""
        if self._starttls_at is None:
            return
        dropped = self.record.client_bytes(tls=False)[self._starttls_at:]
        self._starttls_at = None
        parser = CommandParser(max_literal=self.factory.config.max_append_size)
        parser.receive_data(dropped)
        while (event := parser.next_event()) is not None:
            if isinstance(event, Command):
                redacted, credentials, mail_data = describe_command(event)
                name = f"UID {event.name}" if event.uid else event.name
            elif isinstance(event, ParseError):
                redacted, credentials = describe_unparsable(event.raw)
                name, mail_data = "(unparsable)", False
            else:
                continue
            self.record.add_command(self.record.tls_at or time.monotonic(), False,
                                    self.session.state.value, getattr(event, "tag", None),
                                    name, event.raw, redacted, credentials, mail_data,
                                    executed=False)
        if dropped:
            self.record.note(f"{len(dropped)} plaintext bytes after STARTTLS thrown away unexecuted")

    # -- input -------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.record.received(data)
        if self._tls_pending:
            return  # plaintext after STARTTLS, before the handshake: never executed
        if self._done:
            return  # the server is closing, resetting or stalled: nothing more is executed
        if self._began is None:
            self._began = time.monotonic()
        self.parser.receive_data(data)
        self._process()

    @property
    def _done(self) -> bool:
        return self._closed or self._ending or self.pipe.ended or self.session.state is State.LOGOUT

    def _process(self) -> None:
        while not self._done and not self._tls_pending:
            if self._backlog:  # a large response is still being written: commands wait their turn
                self._input_waiting = True
                return
            if self.session.wants_line:
                self.parser.expect_line()
            else:
                self.parser.expect_command()
            event = self.parser.next_event()
            if event is None:
                return
            if isinstance(event, Command):
                self._command(event)
            elif isinstance(event, Line):
                self._line(event)
            elif isinstance(event, ContinuationNeeded):
                self._emit([continuation(b"OK")])
            elif isinstance(event, ParseError):
                redacted, credentials = describe_unparsable(event.raw)
                self._record(event.tag, "(unparsable)", event.raw, redacted, credentials=credentials)
                self._emit(self.session.protocol_error(event.tag, event.text))

    def _record(self, tag, name, raw, redacted, *, credentials=False, mail_data=False) -> None:
        began, self._began = self._began, None
        self.record.add_command(began or time.monotonic(), self.session.tls,
                                self.session.state.value, tag, name, raw, redacted, credentials,
                                mail_data)
        if self.record.listener is not None:
            self.record.announce(f"C: {redacted}")

    def _command(self, cmd: Command) -> None:
        name = f"UID {cmd.name}" if cmd.uid else cmd.name
        redacted, credentials, mail_data = describe_command(cmd)
        self._record(cmd.tag, name, cmd.raw, redacted, credentials=credentials, mail_data=mail_data)
        plan = self._apply(self._fire("command", command=name))
        if plan.reply is not None:
            outputs: list = [self._reply(cmd.tag, plan.reply)]
        elif plan.halted:
            outputs = []
        else:
            outputs = self._run(cmd.tag, lambda: self.session.handle(cmd))
        self._line_command = name if self.session.wants_line else None
        self._respond(name, outputs, plan)
        if name == "IDLE" and self.session.idle_tag is not None and not self._done:
            self._deliver([], self._apply(self._fire("idle")))

    def _line(self, line: Line) -> None:
        # a cancel (*) and OAUTHBEARER's ^A acknowledgement (AQ==) carry nothing secret
        secret = self.session.sasl is not None and line.data.strip() not in (b"*", b"AQ==")
        shown = "***" if secret else line.data.decode("utf-8", "replace")
        self._record(None, "CONTINUATION", line.data + b"\r\n", shown, credentials=secret)
        tag = self.session.sasl[0] if self.session.sasl is not None else self.session.idle_tag
        outputs = self._run(tag, lambda: self.session.handle_line(line.data))
        name = self._line_command or "CONTINUATION"
        if not self.session.wants_line:
            self._line_command = None
        self._respond(name, outputs, _Plan())

    def _run(self, tag: str | None, handler: Callable[[], list]) -> list:
        """The session's answer; a defect in it is logged and answered, never fatal to the fake."""
        try:
            return handler()
        except Exception:
            log.failure("IMAP session failed on connection {id}", id=self.record.id)
            self.record.note("internal error in the fake (see the log); answered NO [SERVERBUG]")
            text = "[SERVERBUG] Internal error in the fake server."
            return [tagged(tag, "NO", text) if tag else status_untagged("NO", text)]

    def _respond(self, name: str, outputs: list, plan: _Plan) -> None:
        """Offer a tagged response to the ``response`` rules, then send it with every addition."""
        if self.record.user is None and self.session.username is not None:
            self.record.user = self.session.username
        status = _tagged_status(outputs)
        if status is not None:
            after = self._apply(self._fire("response", command=name, status=status))
            if after.reply is not None:
                outputs = [self._reply(o.tag, after.reply) if _is_tagged(o) else o for o in outputs]
            plan = plan.extend(after)
        self._deliver(outputs, plan)

    def _consumed_plaintext(self) -> int:
        """Plaintext bytes received up to the end of the last recorded command (STARTTLS)."""
        data = self.record.client_bytes(tls=False)
        *earlier, last = self.record.commands or [None]
        if last is None:
            return len(data)
        # the earlier commands' bytes come first; the parser only ever skips more
        start = data.find(last.raw, sum(len(c.raw) for c in earlier))
        return start + len(last.raw) if start >= 0 else len(data)

    def _reply(self, tag: str, action: Action) -> Send:
        out = tagged(tag, action.get("status").upper(), _with_code(action.get("code"), action.get("text", "")))
        out.injected = True
        return out

    def _folder_changed(self) -> None:
        if not self._done and self.session.idle_tag is not None:
            self._emit(idle_updates(self.session))

    # -- faults ------------------------------------------------------------------------------

    def _fire(self, event: str, **extra) -> list:
        faults = self.factory.faults
        if not faults.wants(event):
            return []
        ctx = {
            "session": self.record.session,
            "run": self.record.run,
            "state": self.session.state.value,
            "tls": self.session.tls,
            "user": self.session.username,
            "open_connections": self.factory.wire.open_count(self.factory.name),
            **extra,
        }
        chosen = faults.decide(event, ctx)
        for rule, action in chosen:
            self.record.note(f"fault on {event}: {action}" + (f" ({rule.description})" if rule.description else ""))
        return chosen

    def _apply(self, actions: list) -> _Plan:
        """Carry out transport and state actions now; collect what adds to the output."""
        plan = _Plan()
        for _, a in actions:
            name = a.name
            if name == "reply":
                plan.reply = a
            elif name == "untagged":
                lines = [_injected_untagged(line) for line in a.get("lines", [])]
                (plan.after if a.get("when", "before") == "after" else plan.before).extend(lines)
            elif name == "bye":
                bye = status_untagged("BYE", _with_code(a.get("code"), a.get("text", "Server shutting down.")))
                bye.injected = True
                plan.tail += [bye, Close("fault: bye")]
            elif name == "close":
                plan.tail.append(Close("fault: close"))
            elif self.pipe.apply(a):  # reset, stall, delay, latency, bandwidth, slice, truncate
                pass
            else:
                state_actions.apply(a, self.factory.store, self.session.account, self.factory.provider_configs)
            if name in HALTING:
                plan.halted = True
        if plan.halted:
            self._ending = True
        return plan

    def _deliver(self, outputs: list, plan: _Plan) -> None:
        if plan.after:
            # "after" lines go right behind the tagged response (before STARTTLS takes over)
            index = next((i + 1 for i, o in enumerate(outputs) if _is_tagged(o)), len(outputs))
            outputs = outputs[:index] + plan.after + outputs[index:]
        self._emit(plan.before + outputs + plan.tail)

    # -- output ------------------------------------------------------------------------------

    def _emit(self, outputs: list) -> None:
        self._backlog.extend(outputs)
        self._pump()

    def _pump(self) -> None:
        """Write the backlog; a Stream is pulled only while the transport and the pipe have room."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._backlog and not self._closed:
                out = self._backlog[0]
                if isinstance(out, Stream):
                    if self._paused or self.pipe.pending_bytes > STREAM_BACKLOG:
                        return  # resumeProducing or the pipe's on_drained calls back
                    batch, size = [], 0
                    for item in out.items:  # coalesce small responses into one write
                        batch.append(item)
                        size += len(item.data)
                        if size >= STREAM_BATCH:
                            break
                    else:
                        self._backlog.popleft()  # exhausted
                    if batch:
                        self.pipe.write(b"".join(item.data for item in batch), self._on_sent_all(batch))
                    continue
                self._backlog.popleft()
                self._write(out)
        finally:
            self._pumping = False
        if not self._backlog and self._input_waiting and not self._closed:
            self._input_waiting = False
            self._process()

    def _write(self, out) -> None:
        if isinstance(out, Send):
            self.pipe.write(out.data, self._on_sent(out))
        elif isinstance(out, StartTLS):
            self._starttls_at = self._consumed_plaintext()
            self.pipe.then(self._start_tls)
            self._tls_pending = True
        elif isinstance(out, Close):
            self._ending = True
            reason = out.reason
            self.pipe.then(lambda: self.record.note(f"server closes: {reason}"))
            self.pipe.close()

    # -- IPushProducer: the transport tells us when its buffer is full and when it drained ----

    def pauseProducing(self) -> None:  # noqa: N802
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:  # noqa: N802
        self._paused = True

    def _on_sent_all(self, outs: list[Send]) -> Callable[[], None]:
        recorders = [self._on_sent(out) for out in outs]

        def sent() -> None:
            for record in recorders:
                record()

        return sent

    def _on_sent(self, out: Send) -> Callable[[], None]:
        """Records ``out`` as the client receives it: when its first byte is written."""
        def sent() -> None:
            self.record.add_response(time.monotonic(), self.session.tls, out.kind, out.tag,
                                     out.status, out.code, out.line, out.injected)
            if self.record.listener is not None:
                self.record.announce(f"S: {out.line}")

        return sent

    def connectionLost(self, reason) -> None:  # noqa: N802
        self._record_dropped_plaintext()
        self._closed = True
        for out in self._backlog:
            if isinstance(out, Stream):
                out.items.close()
        self._backlog.clear()
        self.pipe.shutdown()
        self.session.close()
        self.factory.connections.discard(self)
        self.record.closed(reason.getErrorMessage() if reason is not None else "closed")
        self.gone.callback(None)


def _injected_untagged(line: str) -> Send:
    word = line.split(" ", 1)[0].upper()
    out = untagged(line, word if word in ("OK", "NO", "BAD", "BYE", "PREAUTH") else None)
    out.injected = True
    return out


def _with_code(code: str | None, text: str) -> str:
    return f"[{code}] {text}" if code else text


def _is_tagged(out: Any) -> bool:
    return isinstance(out, Send) and out.kind == "tagged"


def _tagged_status(outputs: list) -> str | None:
    for out in outputs:
        if _is_tagged(out):
            return out.status
    return None
