"""The SMTP fake's I/O: an aiosmtpd ``SMTP`` protocol around :class:`SmtpSession`.

aiosmtpd's ``SMTP`` is the protocol's base (see :class:`SmtpServerProtocol` for what it
provides); the command loop is this module's own, because every line must be recorded as it
arrived, offered to the fault rules and answered through the one write seam, the
:class:`OutboundPipe`. Bytes out are recorded when they actually go out (a reply a fault
delays is recorded late; one that a reset or stall drops is not recorded at all). Nothing
here decides protocol behaviour.

Fault events, in the order a connection meets them: ``connect`` (accepted), ``tls``
(handshake done: at once on the implicit-TLS port, after STARTTLS on the other),
``greeting``, then per command ``command`` (received, before it runs; the message after
DATA is the command "END-OF-DATA", an AUTH response line "CONTINUATION") and ``response``
(its final reply is about to be sent, after it ran; 334 challenges are not final).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Callable

from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import __ident__ as AIOSMTPD_IDENT
from aiosmtpd.smtp import login_always_fail

from ..faults import FaultEngine, OutboundPipe
from ..mailstore import MailStore
from ..wire import WireLog
from . import faults as fault_actions
from .config import SmtpConfig
from .faults import NO_PLAN, Plan, fault_reply, final_index
from .policy import SubmissionPolicy
from .reading import Input, Message, TooLong, split_handshake
from .records import SubmissionLog
from .session import (Close, Reply, SmtpSession, StartTLS, describe_command, describe_line, parse_command,
                      split_command)
from .transport import LINGER, AsyncioSink, tls_layer

log = logging.getLogger("mailconform.smtp")

HARD_MESSAGE_CAP = 64 * 1024 * 1024  # what the fake keeps of one message when SIZE is off
MAX_UNREAD = 64 * 1024  # input the loop has not taken yet before reading from the socket pauses
MAX_PENDING = 1024 * 1024  # bytes held back for a TLS handshake that has not started yet
INTERNAL_ERROR = "451 4.3.0 Internal error in the fake"
IDLE_TIMEOUT = 300.0  # seconds of silence before the connection is closed (aiosmtpd's default)


class SmtpServer:
    """One listening SMTP server of a fake provider (plaintext+STARTTLS, or implicit TLS)."""

    def __init__(self, *, name: str, store: MailStore, config: SmtpConfig, policy: SubmissionPolicy,
                 wire: WireLog, faults: FaultEngine, submissions: SubmissionLog, ssl_context: ssl.SSLContext,
                 implicit_tls: bool, loop: asyncio.AbstractEventLoop,
                 provider_configs: list[SmtpConfig] | None = None) -> None:
        self.name = name
        self.store = store
        self.config = config
        self.policy = policy
        self.wire = wire
        self.faults = faults
        self.submissions = submissions
        self.ssl_context = ssl_context
        self.implicit_tls = implicit_tls
        self.loop = loop
        # every SMTP config of the provider: a "capabilities" action changes them together
        self.provider_configs = provider_configs if provider_configs is not None else [config]
        self.connections: set[SmtpServerProtocol] = set()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self, host: str) -> None:
        self._server = await self.loop.create_server(lambda: SmtpServerProtocol(self), host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, drop every connection and wait until each one is gone."""
        if self._server is not None:
            self._server.close()
        gone = []
        for proto in list(self.connections):
            proto.abort()
            gone.append(proto.gone)
        if gone:
            await asyncio.wait(gone, timeout=5)
        for proto in list(self.connections):  # a transport that never reported its end
            proto.finish("server stopped")
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class _NoHandlerTask:
    """Stands where aiosmtpd keeps its handler task, which ``SMTP.connection_lost`` cancels:
    this protocol has none (see :meth:`SmtpServerProtocol._pump`)."""

    __slots__ = ()

    def cancel(self) -> None:
        pass

    def done(self) -> bool:
        return True


_NO_HANDLER_TASK = _NoHandlerTask()

# What the connection is doing with the client's input (SmtpServerProtocol._phase)
OPENING = "opening"  # nothing read yet: the greeting (after an implicit-TLS handshake) is not out
COMMANDS = "commands"  # commands and messages are read and answered
DRAINING = "draining"  # the session is over: input is read (so recorded) and thrown away
DONE = "done"  # nothing more is read


class SmtpServerProtocol(SMTP):
    """One SMTP connection.

    What aiosmtpd's ``SMTP`` gives here: the protocol's base (an asyncio
    ``StreamReaderProtocol``), the end of its life (``connection_lost`` logs it, stops the
    idle timer and settles the stream protocol's state) and the idle timeout
    (``_timeout_cb`` closes the connection after ``_timeout_duration`` seconds of silence;
    armed here by :meth:`_arm_idle_timer`). Its command loop, handler hooks, AUTH, STARTTLS
    and stream reader are not used: every line must be recorded as it arrived and offered
    to the fault rules first, so the reading is this class's own.

    There is no task per connection: ``data_received`` feeds the bytes to the
    :class:`Input` and :meth:`_pump` answers every command and message complete in it, in
    the turn of the event loop that read them (a task and a stream reader would add a
    wake-up, a scheduled callback and a copy per command). The pump stops while a STARTTLS
    handshake runs; the handshake's end starts it again.
    """

    def __init__(self, server: SmtpServer) -> None:
        # Not SMTP.__init__: on every connection it builds tables of handler hooks, AUTH
        # mechanisms and smtp_* methods with inspect.getmembers() and dir(), about as costly
        # as the rest of a short session, for the command loop this class replaces. What the
        # inherited methods read is set as SMTP.__init__ sets it, with the tables empty
        # (test_smtp_fake checks this covers every attribute SMTP.__init__ sets).
        loop = server.loop
        asyncio.StreamReaderProtocol.__init__(self, None, loop=loop)
        self.__dict__.update(_SMTP_STATE)
        self.loop = loop
        self.hostname = server.config.hostname
        self._auth_methods, self._handle_hooks, self._smtp_methods = {}, {}, {}
        self.server = server
        self.gone: asyncio.Future = server.loop.create_future()
        self.raw_transport: asyncio.Transport | None = None
        self.tls_active = False
        self.input = Input()
        self._phase = OPENING
        self._pumping = False  # _pump is running (a callback it triggers must not re-enter it)
        self._ending = False  # the server decided to end it (close, reset, stall, bye, QUIT)
        self._finished = False
        self._tls_waiter: asyncio.Future | None = None  # settles when a STARTTLS handshake ends
        self._tls_pending = False  # input is held back for the TLS layer about to start
        self._pending = bytearray()
        self.peer_eof = False  # the client shut its write side
        self._linger: asyncio.TimerHandle | None = None
        self._idle_since = 0.0  # loop time of the last bytes read (see _arm_idle_timer)
        self._idle_limit = IDLE_TIMEOUT
        self._paused = False  # reading paused: input is not being taken (a handshake under way)

    # -- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's socket transports set TCP_NODELAY themselves (no reply waits for a delayed ACK)
        s = self.server
        self.raw_transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unknown"
        self.record = s.wire.open("smtp", s.name, where, implicit_tls=s.implicit_tls)
        s.connections.add(self)
        self._tls_pending = s.implicit_tls  # the first bytes are the client's TLS handshake
        self.pipe = OutboundPipe(AsyncioSink(self), on_write=self.record.sent, seed=s.faults.seed + self.record.id)
        self.machine = SmtpSession(s.store, s.config, s.policy, tls=False, on_submission=s.submissions.add,
                                   connection=(self.record.run, self.record.session, self.record.id, s.name))
        # what SMTP.connection_made does, but for the handler task: there is none
        self._set_rset_state()
        self.session = self._create_session()
        self.session.peer = peer
        self._idle_since = self.loop.time()
        self._arm_idle_timer()
        asyncio.StreamReaderProtocol.connection_made(self, transport)
        self.transport = transport
        self._handler_coroutine = _NO_HANDLER_TASK  # type: ignore[assignment]
        self._guarded(self._open)

    def data_received(self, data: bytes) -> None:
        if self._tls_pending:
            if len(self._pending) < MAX_PENDING:
                self._pending += data
            return
        now = self._idle_since = time.monotonic()  # the loop's clock too (asyncio's loop.time())
        self.record.received(data, now)
        input = self.input
        if (self._phase is COMMANDS and not self._pumping and self.machine.wants == "command"
                and self._tls_waiter is None and input.takes_whole_line(data, now)):
            # the common case, one command line in one read: answered without buffering it
            self._pumping = True
            try:
                self._command(data)
            except Exception:
                self._loop_defect()
            finally:
                self._pumping = False
            if self._finished or self._ending or self._paused:
                self._after_pump()
            return
        input.feed(data, now)
        if self._phase is COMMANDS and not self._pumping:
            self._pump()
        elif self._phase is DRAINING:
            self.input.clear()
        if len(self.input.buffer) > MAX_UNREAD and not self._paused and self.transport is not None:
            self._paused = True  # input is not being taken: hold the client back until it is
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        # aiosmtpd cancels the session at EOF; here the commands that arrived before it are
        # still answered (then the end of the stream ends the session).
        self.peer_eof = True
        self.input.end()
        if self._phase is COMMANDS and not self._pumping:
            self._pump()
        elif self._phase is DRAINING:
            self._drain()
        return not self.tls_active  # keep a plaintext socket half-open until then

    def connection_lost(self, error: Exception | None) -> None:
        if not self._finished and not self._ending and self.machine.wants == "data":
            self._vanished_mid_data()
        self.finish(_reason(error))
        super().connection_lost(error)

    def finish(self, reason: str) -> None:
        """The connection is gone: record it and release everything (safe to call twice)."""
        if self._finished:
            return
        self._finished = True
        self._ending = True
        self.pipe.shutdown()
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        if self._linger is not None:
            self._linger.cancel()
        if self._tls_waiter is not None and not self._tls_waiter.done():
            self._tls_waiter.set_result(False)
        self.server.connections.discard(self)
        self.record.closed(reason)
        if not self.gone.done():
            self.gone.set_result(None)
        if not self._pumping:
            self._release()

    def _release(self) -> None:
        """The connection is gone: nothing more is read, and the references that make this
        protocol, its pipe, input and session a cycle are dropped, so they are freed at once
        rather than by the cyclic garbage collector (which walks every object the records
        keep to find them: a tenth of the fake's time on a run of short sessions)."""
        self._phase = DONE
        self.pipe.sink.proto = None  # the pipe was shut down: it writes nothing more
        self.input.clear()
        self.machine.on_submission = None

    def _arm_idle_timer(self) -> None:
        """aiosmtpd's idle timer, re-armed lazily: each read only notes the time
        (``_idle_since``), and the one timer of the connection, when it fires early, waits
        for the rest (a timer per line, armed and cancelled each time, cost more than the
        line's own work)."""
        if self._timeout_handle is None:
            self._timeout_handle = self.loop.call_at(self._idle_since + self._idle_limit, self._idle_check)

    def _idle_check(self) -> None:
        due = self._idle_since + self._idle_limit
        if self.loop.time() >= due:
            self._timeout_cb()
        else:
            self._timeout_handle = self.loop.call_at(due, self._idle_check)

    def linger(self) -> None:
        """The server shut its write side: close for good once the client did (see
        ``_end_after_input``), or after LINGER seconds."""
        if self._linger is None:
            self._linger = self.loop.call_later(LINGER, self._close_transport)

    def _close_transport(self) -> None:
        if not self._finished and self.transport is not None:
            self.transport.close()

    def _end_after_input(self) -> None:
        """The client sent its last byte: close once our own output has gone."""
        if self._finished:
            return
        if self.pipe.ended:
            self._close_transport()
        else:
            self.pipe.close()

    def abort(self) -> None:
        """Drop the connection now (the provider is stopping)."""
        AsyncioSink(self).abort()
        if self.raw_transport is None:
            self.loop.call_soon(self.finish, "server stopped")

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> None:
        """``connect`` rules, then (implicit TLS) the handshake, then the greeting."""
        connect = self._apply(self._fire("connect"))
        if connect.halted and connect.reply is None and not connect.tail:
            return self._drain()  # reset or stall: nothing is said
        if self.server.implicit_tls:
            if connect.halted and connect.reply is None:  # a close at connect: before any handshake
                self._deliver([], connect)
                return self._drain()
            switched = self._switch_to_tls()
            if switched is None:
                return self._done()
            self.loop.create_task(self._implicit_tls(switched, connect))
            return
        self._start(connect)

    async def _implicit_tls(self, switched: tuple, connect: Plan) -> None:
        """The handshake before anything else; a refusal at connect is said once TLS is up."""
        tls = await self._handshake(*switched)
        if tls is None:
            self._guarded(self._done)
        elif tls.halted:
            self._guarded(self._drain)
        else:
            self._guarded(self._start, connect)

    def _start(self, connect: Plan) -> None:
        self._greet(connect)
        if self._ending:
            return self._drain()
        self._phase = COMMANDS
        self._pump()

    def _greet(self, held: Plan) -> None:
        if held.halted:  # bye or close at connect
            outputs = [fault_reply(held.reply, "greeting")] if held.reply else []
            self._deliver(outputs, held)
            self._ending = True
            return
        plan = held.extend(self._apply(self._fire("greeting")))
        if plan.reply is not None:
            out = fault_reply(plan.reply, "greeting")
            outputs: list = [out]
            if out.status == "554":
                self.machine.refused_greeting = True  # RFC 5321 section 3.1: only QUIT from now on
            elif out.status == "421" and not plan.halted:
                plan.tail.append(Close("greeting 421"))
                plan.halted = True
        elif plan.halted:
            outputs = []
        else:
            outputs = self.machine.greeting()
        self._deliver(outputs, plan)
        if plan.halted:
            self._ending = True

    # -- the commands ------------------------------------------------------------------------

    def _pump(self) -> None:
        """Answer every command and message complete in the input, in order, until the input
        runs out, the session ends, or a STARTTLS handshake must finish first."""
        machine, input = self.machine, self.input
        self._pumping = True
        try:
            while not self._ending:
                if not input.buffer and not input.ended:
                    break  # nothing (more) to read yet
                waiter = self._tls_waiter
                if waiter is not None:  # a STARTTLS handshake: the pump goes on once it ended
                    if not waiter.done():
                        waiter.add_done_callback(self._tls_settled)
                        break
                    self._tls_waiter = None
                    if not waiter.result():
                        self._ending = True
                    continue
                if machine.wants == "data":
                    message = input.message(self._message_cap)
                    if message is None:
                        if input.ended:
                            self._vanished_mid_data()
                            self._ending = True
                        break
                    self._message(message)
                    continue
                line = input.line()
                if line is None:
                    if input.ended:
                        if input.buffer:
                            self.record.note("the client closed the connection in the middle of a line "
                                             f"({len(input.buffer)} bytes)")
                        self._ending = True
                    break
                if line.__class__ is not bytes:
                    self._too_long(line)
                elif machine.wants == "command":
                    self._command(line)
                else:
                    self._continuation(line)
        except Exception:  # a defect in this loop: never fatal to the fake
            self._loop_defect()
        finally:
            self._pumping = False
        self._after_pump()

    def _loop_defect(self) -> None:
        log.exception("SMTP fake failed on connection %s", self.record.id)
        self.record.note("internal error in the fake's SMTP loop (see the log); connection closed")
        self._ending = True
        self.pipe.close()

    def _after_pump(self) -> None:
        if self._finished:
            self._release()
        elif self._ending:
            self._drain()
        elif self._paused and len(self.input.buffer) <= MAX_UNREAD and self._tls_waiter is None:
            self._paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    def _tls_settled(self, _waiter: asyncio.Future) -> None:
        if self._phase is COMMANDS and not self._pumping:
            self._pump()

    def _drain(self) -> None:
        """The session is over: keep reading (and so recording) what the client sends until
        it goes away, then close once our own output has gone."""
        if self._phase is DONE:
            return
        if self._phase is not DRAINING:
            self._phase = DRAINING
            self._cancel_tls_pending()
            if self._paused and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()
        self.input.clear()
        if self._finished or self.input.ended:
            self._done()

    def _done(self) -> None:
        """Nothing more is read."""
        self._end_after_input()
        if self._finished:
            self._release()
        else:
            self._phase = DONE

    def _guarded(self, step: Callable, *args) -> None:
        """Run a step of the connection outside the pump; a defect in it is logged and ends
        the connection, never the fake."""
        try:
            step(*args)
        except Exception:
            log.exception("SMTP fake failed on connection %s", self.record.id)
            self.record.note("internal error in the fake's SMTP loop (see the log); connection closed")
            self._ending = True
            self.pipe.close()
            self._drain()

    @property
    def _message_cap(self) -> int:
        """What the fake keeps of one message: a little over the size limit."""
        cap = self.server.config.size_limit
        return cap + cap // 50 + 64 * 1024 if cap else HARD_MESSAGE_CAP

    def _too_long(self, line: TooLong) -> None:
        self._record("(too long)", line.head, f"<line too long: {line.size} bytes>")
        outputs = self._run(self.machine._error, "500 5.5.2 Error: line too long")
        if line.endless:
            outputs.append(Close("endless line"))
        self.machine.cancel_line()
        self._respond("(too long)", outputs, NO_PLAN)

    def _command(self, line: bytes) -> None:
        name, arg, shown, credentials = parse_command(line)
        machine, record = self.machine, self.record
        record.add_command(self.input.began, self.tls_active, machine.state, None, name, line,
                           shown, credentials, False)
        if record.listener is not None:
            record.announce(f"C: {shown}")
        plan = NO_PLAN
        if "command" in self.server.faults.events:
            plan = self._apply(self._fire("command", command=name))
            if plan.reply is not None:
                return self._respond(name, [fault_reply(plan.reply)], plan)
            if plan.halted:
                return self._respond(name, [], plan)
        try:
            outputs = machine.command(line, (name, arg))
        except Exception:
            outputs = self._defect()
        self._respond(name, outputs, plan)

    def _continuation(self, line: bytes) -> None:
        redacted, credentials = describe_line(line)
        self._record("CONTINUATION", line, redacted, credentials)
        plan = self._apply(self._fire("command", command="CONTINUATION"))
        if plan.reply is not None or plan.halted:
            self.machine.cancel_line()
            outputs: list = [fault_reply(plan.reply)] if plan.reply is not None else []
        else:
            outputs = self._run(self.machine.line, line)
        self._respond("AUTH", outputs, plan)

    def _message(self, message: Message) -> None:
        """Answer the message after DATA (read up to the final dot)."""
        at = self.input.fed_at  # when the final dot came
        data = message.data
        size = (message.received - 3) if message.overflow else len(data)
        if message.overflow:
            self.record.note(f"message over the size limit: {message.received} bytes received, "
                             f"the first {len(message.kept)} kept")
        self._record("END-OF-DATA", message.kept, f"<message, {message.received} bytes>", mail_data=True)
        plan, override = NO_PLAN, None
        if "command" in self.server.faults.events:
            plan = self._apply(self._fire("command", command="END-OF-DATA"))
            if plan.reply is not None:
                override = fault_reply(plan.reply).lines[-1]
            elif plan.halted:
                override = ""
        outputs = self._run(self.machine.message, data, size, message.overflow, at, override)
        self._respond("END-OF-DATA", outputs, plan)

    def _vanished_mid_data(self) -> None:
        if self.machine.wants == "data":
            self.machine.wants = "command"  # noted once; the transaction is dropped with the connection
            self.record.note(f"the client vanished in the middle of DATA ({self.input.message_bytes} bytes of "
                             "the message received, no final dot)")

    # -- recording ---------------------------------------------------------------------------

    def _record(self, name: str, raw: bytes, redacted: str, credentials: bool = False,
                mail_data: bool = False) -> None:
        """The command just taken from the input, as it arrived."""
        self.record.add_command(self.input.began, self.tls_active, self.machine.state,
                                None, name, raw, redacted, credentials, mail_data)
        if self.record.listener is not None:
            self.record.announce(f"C: {redacted}")

    def _record_dropped(self, dropped: bytes) -> None:
        """Keep as evidence the commands a client sent in plaintext behind STARTTLS: they were
        never executed, but a password among them crossed the wire in the clear."""
        if not dropped:
            return
        at = time.monotonic()
        for line in dropped.splitlines(keepends=True):
            name, _ = split_command(line)
            redacted, credentials = describe_command(name, line)
            self.record.add_command(at, False, self.machine.state, None, name, line, redacted,
                                    credentials, executed=False)
        self.record.note(f"{len(dropped)} plaintext bytes after STARTTLS thrown away unexecuted")

    # -- TLS ---------------------------------------------------------------------------------

    def _begin_starttls(self) -> None:
        """Runs once the 220 (and any injected lines) went out: the handshake starts."""
        switched = self._switch_to_tls()
        if switched is not None:
            self.loop.create_task(self._starttls(switched))

    async def _starttls(self, switched: tuple) -> None:
        plan = await self._handshake(*switched)
        if self._tls_waiter is not None and not self._tls_waiter.done():
            self._tls_waiter.set_result(plan is not None and not plan.halted)

    def _switch_to_tls(self) -> tuple | None:
        """Put a TLS layer under the protocol, now. Bytes the client sent since STARTTLS was
        read are split: plaintext lines ahead of the handshake are kept as evidence and never
        executed; the handshake's first bytes go to the TLS layer."""
        raw = self.raw_transport
        if raw is None or raw.is_closing() or self._finished:
            return None
        pending = bytes(self._pending)
        self._pending.clear()
        self._tls_pending = False
        plaintext, hello = split_handshake(pending)
        if plaintext:
            self.record.received(plaintext)
        dropped = bytes(self.input.buffer) + plaintext
        self.input.buffer.clear()
        if self._paused:  # the TLS layer reads from now on
            self._paused = False
            raw.resume_reading()
        waiter, layer = tls_layer(self.loop, self, raw, self.server.ssl_context, hello)
        return waiter, layer, dropped

    async def _handshake(self, waiter: asyncio.Future, layer, dropped: bytes) -> "Plan | None":
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._record_dropped(dropped)
            text = str(exc) or type(exc).__name__
            self.record.note(f"TLS handshake failed: {text}")
            if self.raw_transport is not None:
                self.raw_transport.close()
            self.finish(f"TLS handshake failed: {text}")
            return None
        new = layer._app_transport
        if self._finished or new is None:  # the connection went away during the handshake
            self._record_dropped(dropped)
            self.record.note("TLS handshake failed: the connection closed before it completed")
            self.finish("closed during the TLS handshake")
            return None
        self.transport = new
        self._transport = new  # the StreamReaderProtocol's own reference
        self.tls_active = True
        self._record_dropped(dropped)
        ssl_object = new.get_extra_info("ssl_object")
        self.record.tls_started(ssl_object.version() if ssl_object is not None else None)
        self.machine.tls_started()
        plan = self._apply(self._fire("tls"))
        outputs = [fault_reply(plan.reply)] if plan.reply is not None else []
        self._deliver(outputs, plan)
        return plan

    def _cancel_tls_pending(self) -> None:
        """No handshake after all (a fault ended the connection first): bytes held back for
        it are plain input again."""
        if self._tls_pending:
            self._tls_pending = False
            pending = bytes(self._pending)
            self._pending.clear()
            if pending:
                self.data_received(pending)

    # -- replies -----------------------------------------------------------------------------

    def _run(self, handler: Callable[..., list], *args) -> list:
        """The session's answer; a defect in it is logged and answered, never fatal to the fake."""
        try:
            return handler(*args)
        except Exception:
            return self._defect()

    def _defect(self) -> list:
        """The session failed on what it was given (an exception is being handled): logged,
        and answered 451 so the session goes on."""
        log.exception("SMTP session failed on connection %s", self.record.id)
        self.record.note(f"internal error in the fake (see the log); answered {INTERNAL_ERROR}")
        self.machine.cancel_line()
        if self.machine.wants == "data":
            self.machine.wants = "command"
        return [Reply([INTERNAL_ERROR])]

    def _respond(self, name: str, outputs: list, plan: Plan) -> None:
        """Offer the final reply to the ``response`` rules, then send it with every addition."""
        machine = self.machine
        if machine.username is not None and self.record.user is None:
            self.record.user = machine.username
        if machine.notes:
            for note in machine.notes:
                self.record.note(note)
            machine.notes.clear()
        if "response" in self.server.faults.events:
            outputs, plan = self._offer_response(name, outputs, plan)
        if plan is not NO_PLAN:
            self._deliver(outputs, plan)
        elif len(outputs) == 1 and outputs[0].__class__ is Reply:  # the common case: one reply
            out = outputs[0]
            self.pipe.write(out.data, self._sent, out)
        else:
            self._emit(outputs)

    def _offer_response(self, name: str, outputs: list, plan: Plan) -> tuple[list, Plan]:
        index = final_index(outputs)
        if index is None:
            return outputs, plan
        final = outputs[index]
        after = self._apply(self._fire("response", command=name, status=final.status))
        if after.reply is not None:
            replaced = fault_reply(after.reply)
            replaced.submission = final.submission
            outputs = list(outputs)
            outputs[index] = replaced
            if final.submission is not None:
                self.server.submissions.update(final.submission, reply=replaced.lines[-1])
            if final.status == "354" and replaced.status != "354":
                self.machine.data_refused()
            if replaced.status != "220":
                outputs = [o for o in outputs if not isinstance(o, StartTLS)]
        if after.before or after.after or after.tail or after.reply is not None or after.halted:
            plan = plan.extend(after)
        return outputs, plan

    def _deliver(self, outputs: list, plan: Plan) -> None:
        self._emit(plan.around(outputs) if plan.before or plan.after or plan.tail else outputs)

    def _emit(self, outputs: list) -> None:
        for out in outputs:
            kind = out.__class__
            if kind is Reply:
                self.pipe.write(out.data, self._sent, out)
            elif kind is StartTLS:
                self._tls_waiter = self.loop.create_future()
                self._tls_pending = True  # what comes now is either ignored plaintext or the handshake
                self.pipe.then(self._begin_starttls)
            elif kind is Close:
                self._ending = True
                reason = out.reason
                self.pipe.then(lambda: self.record.note(f"server closes: {reason}"))
                self.pipe.close()

    def _sent(self, out: Reply) -> None:
        """Records ``out`` as the client receives it: when its first byte is written."""
        now = time.monotonic()
        record, tls, kind, injected = self.record, self.tls_active, out.kind, out.injected
        lines = out.lines
        if len(lines) == 1:
            (status, code), = out.codes
            record.add_response(now, tls, kind, None, status, code, lines[0], injected)
        else:
            for line, (status, code) in zip(lines, out.codes):
                record.add_response(now, tls, kind, None, status, code, line, injected)
        if record.listener is not None:
            for line in lines:
                record.announce(f"S: {line}")
        if out.submission is not None:
            self.server.submissions.mark_sent(out.submission)

    # -- faults ------------------------------------------------------------------------------

    def _fire(self, event: str, **extra) -> list:
        faults = self.server.faults
        if not faults.wants(event):
            return []
        ctx = {
            "protocol": "smtp",
            "session": self.record.session,
            "run": self.record.run,
            "state": self.machine.state,
            "tls": self.tls_active,
            "user": self.machine.username,
            # this server's open connections: those it has not finished (as the wire log
            # counts them, without walking every connection it ever recorded)
            "open_connections": len(self.server.connections),
            **extra,
        }
        chosen = faults.decide(event, ctx)
        for rule, action in chosen:
            self.record.note(f"fault on {event}: {action}" + (f" ({rule.description})" if rule.description else ""))
        return chosen

    def _apply(self, actions: list) -> Plan:
        """Carry out transport and state actions now; collect what adds to the output."""
        if not actions:
            return NO_PLAN
        plan = fault_actions.apply(actions, self.pipe, configs=self.server.provider_configs, store=self.server.store,
                                   username=self.machine.username)
        if plan.halted:
            self._ending = True
        return plan


# The attributes SMTP.__init__ sets that do not depend on the connection, with the values it
# gives them for SMTP(handler, hostname=..., enable_SMTPUTF8=True, data_size_limit=None).
_SMTP_STATE = {
    "__ident__": AIOSMTPD_IDENT, "event_handler": None, "data_size_limit": None, "enable_SMTPUTF8": True,
    "_decode_data": False, "tls_context": None, "require_starttls": None, "_timeout_duration": IDLE_TIMEOUT,
    "_timeout_handle": None, "_tls_handshake_okay": True, "_tls_protocol": None, "_original_transport": None,
    "session": None, "envelope": None, "transport": None, "_handler_coroutine": None, "_auth_require_tls": True,
    "_proxy_timeout": None, "_authenticator": None, "_auth_callback": login_always_fail, "_auth_required": False,
    "_ehlo_hook_ver": None, "_enforce_call_limit": False,
}


def _reason(error: Exception | None) -> str:
    if error is None:
        return "closed"
    return str(error) or type(error).__name__
