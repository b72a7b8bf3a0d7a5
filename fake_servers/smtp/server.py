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
from typing import Callable, Coroutine

from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import __ident__ as AIOSMTPD_IDENT
from aiosmtpd.smtp import login_always_fail

from ..faults import FaultEngine, OutboundPipe
from ..mailstore import MailStore
from ..wire import CommandRecord, ResponseRecord, WireLog
from . import faults as fault_actions
from .config import SmtpConfig
from .faults import Plan, fault_reply, final_index
from .policy import SubmissionPolicy
from .reading import Input, TooLong, split_handshake
from .records import Submission, SubmissionLog
from .session import Close, Reply, SmtpSession, StartTLS, describe_command, describe_line, split_code, split_command
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


class _MoreInput:
    """What the command loop awaits when it needs the client's next bytes; the protocol
    resumes it from ``data_received`` / ``eof_received`` (see :meth:`SmtpServerProtocol._step`)."""

    __slots__ = ()

    def __await__(self):
        yield self


_MORE = _MoreInput()


class _LoopHandle:
    """Stands for the command loop where aiosmtpd keeps its handler task: ``SMTP.connection_lost``
    cancels it."""

    __slots__ = ("proto",)

    def __init__(self, proto: "SmtpServerProtocol") -> None:
        self.proto: SmtpServerProtocol | None = proto  # None once the connection was released

    def cancel(self) -> None:
        if self.proto is not None:
            self.proto._cancel_loop()

    def done(self) -> bool:
        return self.proto is None or self.proto._loop_coro is None


class SmtpServerProtocol(SMTP):
    """One SMTP connection.

    What aiosmtpd's ``SMTP`` gives here: the protocol's base (an asyncio
    ``StreamReaderProtocol``), the end of its life (``connection_lost`` logs it, stops the
    idle timer and the command loop, and settles the stream protocol's state) and the idle
    timeout (``_timeout_cb`` closes the connection after ``_timeout_duration`` seconds of
    silence; armed here by :meth:`_reset_timeout`). Its command loop, handler hooks, AUTH,
    STARTTLS and stream reader are not used: every line must be recorded as it arrived and
    offered to the fault rules first, so :meth:`_handle_client` is this class's own loop.

    The loop is a coroutine driven here rather than by an asyncio task: it waits for input
    by awaiting ``_MORE``, and ``data_received`` resumes it at once, so a command is
    answered in the turn of the event loop that read it (a task and a stream reader would
    add a wake-up, a scheduled callback and a copy per command). It awaits futures too (the
    TLS handshake), resumed by their done callbacks as a task would be.
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
        self.input = Input(_MORE)
        self._ending = False  # the server decided to end it (close, reset, stall, bye, QUIT)
        self._finished = False
        self._tls_waiter: asyncio.Future | None = None
        self._tls_pending = False  # input is held back for the TLS layer about to start
        self._pending = bytearray()
        self.peer_eof = False  # the client shut its write side
        self._linger: asyncio.TimerHandle | None = None
        self._idle_since = 0.0  # loop time of the last line (see _reset_timeout)
        self._idle_limit = IDLE_TIMEOUT
        # the command loop and what it waits for (see _step)
        self._loop_coro: Coroutine | None = None
        self._awaiting: object = None  # _MORE, a future, or None while it runs
        self._stepping = False
        self._paused = False  # reading paused: the loop is not taking input (a handshake under way)

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
        self.machine = SmtpSession(s.store, s.config, s.policy, tls=False, on_submission=self._submitted)
        # what SMTP.connection_made does, but for the handler task: the loop starts here
        self._set_rset_state()
        self.session = self._create_session()
        self.session.peer = peer
        self._reset_timeout()
        asyncio.StreamReaderProtocol.connection_made(self, transport)
        self.transport = transport
        self._handler_coroutine = _LoopHandle(self)  # type: ignore[assignment]
        self._loop_coro = self._handle_client()
        self._step()

    def data_received(self, data: bytes) -> None:
        if self._tls_pending:
            if len(self._pending) < MAX_PENDING:
                self._pending += data
            return
        self.record.received(data)
        self.input.feed(data)
        if self._awaiting is _MORE:
            self._step()
        elif len(self.input.buffer) > MAX_UNREAD and not self._paused and self.transport is not None:
            self._paused = True  # the loop is busy elsewhere: hold the client back until it reads
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        # aiosmtpd cancels the session at EOF; here the commands that arrived before it are
        # still answered (the loop sees the end of the stream and closes).
        self.peer_eof = True
        self.input.end()
        if self._awaiting is _MORE:
            self._step()
        return not self.tls_active  # keep a plaintext socket half-open until then

    # -- driving the command loop --------------------------------------------------------------

    def _step(self, _future: asyncio.Future | None = None, *, cancel: bool = False) -> None:
        """Run the command loop until it waits again: for input (``_MORE``; resumed by
        ``data_received`` or ``eof_received``) or for a future (resumed by its done callback)."""
        coro = self._loop_coro
        if coro is None or self._stepping:
            return
        self._stepping = True
        self._awaiting = None
        try:
            while True:
                try:
                    awaited = coro.throw(asyncio.CancelledError()) if cancel else coro.send(None)
                except StopIteration:
                    self._loop_coro = None
                    return
                cancel = False
                if awaited is _MORE:  # (Input checked that nothing new has come)
                    self._awaiting = _MORE
                    if self._paused:
                        self._paused = False
                        if self.transport is not None:
                            self.transport.resume_reading()
                    return
                if asyncio.isfuture(awaited):
                    awaited._asyncio_future_blocking = False  # type: ignore[attr-defined]
                    self._awaiting = awaited
                    awaited.add_done_callback(self._step)
                    return
                # a bare yield (asyncio.sleep(0)): go on at the next turn, as a task would
                self._awaiting = awaited
                self.loop.call_soon(self._step)
                return
        except BaseException:
            self._loop_coro = None
            raise
        finally:
            self._stepping = False

    def _cancel_loop(self) -> None:
        """The connection is gone: end the command loop where it waits (CancelledError)."""
        if self._loop_coro is None:
            return
        if self._stepping:  # cannot happen (asyncio reports a lost connection in a callback of its own)
            self.loop.call_soon(self._cancel_loop)
            return
        awaited = self._awaiting
        if asyncio.isfuture(awaited):
            awaited.remove_done_callback(self._step)
        self._step(cancel=True)

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
        if self._loop_coro is None:  # the command loop has ended too
            self._release()

    def _release(self) -> None:
        """The connection is gone and its command loop has ended: drop the references that
        make this protocol, its pipe, input and session a cycle, so they are freed at once
        rather than by the cyclic garbage collector (which walks every object the records
        keep to find them: a tenth of the fake's time on a run of short sessions)."""
        self.pipe.sink.proto = None  # the pipe was shut down: it writes nothing more
        self.input.buffer.clear()
        self.machine.on_submission = None
        self._handler_coroutine.proto = None

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd's idle timer, re-armed lazily: each line only notes the time, and the one
        timer of the connection, when it fires early, waits for the rest (a timer per line,
        armed and cancelled each time, cost more than the line's own work)."""
        self._idle_since = self.loop.time()
        if duration is not None:
            self._idle_limit = duration
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

    # -- the command loop --------------------------------------------------------------------

    async def _handle_client(self) -> None:
        try:
            await self._serve()
        except asyncio.CancelledError:
            pass  # the connection is gone
        except Exception:  # a defect in this loop: never fatal to the fake
            log.exception("SMTP fake failed on connection %s", self.record.id)
            self.record.note("internal error in the fake's SMTP loop (see the log); connection closed")
            self._ending = True
            self.pipe.close()
        if self._finished:
            self._release()

    async def _serve(self) -> None:
        connect = self._apply(self._fire("connect"))
        if connect.halted and connect.reply is None and not connect.tail:
            return await self._drain_input()  # reset or stall: nothing is said
        if self.server.implicit_tls:
            if connect.halted and connect.reply is None:  # a close at connect: before any handshake
                self._deliver([], connect)
                return await self._drain_input()
            tls = await self._upgrade()  # a refusal at connect is said once TLS is up
            if tls is None:
                return
            if tls.halted:
                return await self._drain_input()
        await self._greet(connect)
        while not self._ending:
            if self.machine.wants == "data":
                going = await self._message()
            else:
                going = await self._line()
            if not going:
                self._ending = True
                break
            if self._tls_waiter is not None and not self._ending:
                ok = await self._tls_waiter
                self._tls_waiter = None
                if not ok:
                    break
        await self._drain_input()

    async def _greet(self, held: Plan) -> None:
        if held.halted:  # bye or close at connect
            outputs = [fault_reply(held.reply, "greeting")] if held.reply else []
            self._deliver(outputs, held)
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

    async def _drain_input(self) -> None:
        """Keep reading (and so recording) what the client sends until it goes away."""
        self._cancel_tls_pending()
        self.input.buffer.clear()
        while not self._finished and await self.input.fill():
            self.input.buffer.clear()
        self._end_after_input()

    async def _line(self) -> bool:
        line = await self.input.line()
        if line is None:
            if self.input.buffer:
                self.record.note("the client closed the connection in the middle of a line "
                                 f"({len(self.input.buffer)} bytes)")
            return False
        self._reset_timeout()
        if isinstance(line, TooLong):
            self._record("(too long)", line.head, f"<line too long: {line.size} bytes>")
            outputs = self._run(lambda: self.machine._error("500 5.5.2 Error: line too long"))
            if line.endless:
                outputs.append(Close("endless line"))
            self.machine.cancel_line()
            self._respond("(too long)", outputs, Plan())
        elif self.machine.wants == "line":
            self._continuation(line)
        else:
            self._command(line)
        return True

    def _command(self, line: bytes) -> None:
        split = split_command(line)
        name = split[0]
        redacted, credentials = describe_command(name, line)
        self._record(name, line, redacted, credentials=credentials)
        plan = self._apply(self._fire("command", command=name))
        if plan.reply is not None:
            outputs: list = [fault_reply(plan.reply)]
        elif plan.halted:
            outputs = []
        else:
            outputs = self._run(lambda: self.machine.command(line, split))
        self._respond(name, outputs, plan)

    def _continuation(self, line: bytes) -> None:
        redacted, credentials = describe_line(line)
        self._record("CONTINUATION", line, redacted, credentials=credentials)
        plan = self._apply(self._fire("command", command="CONTINUATION"))
        if plan.reply is not None or plan.halted:
            self.machine.cancel_line()
            outputs: list = [fault_reply(plan.reply)] if plan.reply is not None else []
        else:
            outputs = self._run(lambda: self.machine.line(line))
        self._respond("AUTH", outputs, plan)

    async def _message(self) -> bool:
        """Read the message after DATA up to the final dot, and answer it."""
        cap = self.server.config.size_limit
        cap = cap + cap // 50 + 64 * 1024 if cap else HARD_MESSAGE_CAP
        message = await self.input.message(cap)
        if message is None:
            self._vanished_mid_data()
            return False
        self._reset_timeout()
        at = time.monotonic()
        data = message.data
        size = (message.received - 3) if message.overflow else len(data)
        shown = f"<message, {message.received} bytes>"
        if message.overflow:
            self.record.note(f"message over the size limit: {message.received} bytes received, "
                             f"the first {len(message.kept)} kept")
        self._record("END-OF-DATA", message.kept, shown, mail_data=True)
        plan = self._apply(self._fire("command", command="END-OF-DATA"))
        if plan.reply is not None:
            override: str | None = fault_reply(plan.reply).lines[-1]
        elif plan.halted:
            override = ""
        else:
            override = None
        outputs = self._run(lambda: self.machine.message(data, size=size, oversize=message.overflow, at=at,
                                                         override=override))
        self._respond("END-OF-DATA", outputs, plan)
        return True

    def _vanished_mid_data(self) -> None:
        if self.machine.wants == "data":
            self.machine.wants = "command"  # noted once; the transaction is dropped with the connection
            self.record.note(f"the client vanished in the middle of DATA ({self.input.message_bytes} bytes of "
                             "the message received, no final dot)")

    # -- recording ---------------------------------------------------------------------------

    def _record(self, name: str, raw: bytes, redacted: str, *, credentials: bool = False,
                mail_data: bool = False) -> None:
        self.record.commands.append(CommandRecord(self.input.take_began(), self.tls_active, self.machine.state,
                                                  None, name, raw, redacted, credentials, mail_data))
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
            self.record.commands.append(CommandRecord(at, False, self.machine.state, None, name, line, redacted,
                                                      credentials, executed=False))
        self.record.note(f"{len(dropped)} plaintext bytes after STARTTLS thrown away unexecuted")

    def _submitted(self, **fields) -> int:
        r = self.record
        return self.server.submissions.add(Submission(run=r.run, session=r.session, connection=r.id,
                                                      server=self.server.name, reply_sent=False, **fields))

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

    async def _upgrade(self) -> "Plan | None":
        """Implicit TLS: the handshake before anything else; None when it failed."""
        switched = self._switch_to_tls()
        return None if switched is None else await self._handshake(*switched)

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

    def _run(self, handler: Callable[[], list]) -> list:
        """The session's answer; a defect in it is logged and answered, never fatal to the fake."""
        try:
            return handler()
        except Exception:
            log.exception("SMTP session failed on connection %s", self.record.id)
            self.record.note(f"internal error in the fake (see the log); answered {INTERNAL_ERROR}")
            self.machine.cancel_line()
            if self.machine.wants == "data":
                self.machine.wants = "command"
            return [Reply([INTERNAL_ERROR])]

    def _respond(self, name: str, outputs: list, plan: Plan) -> None:
        """Offer the final reply to the ``response`` rules, then send it with every addition."""
        if self.record.user is None and self.machine.username is not None:
            self.record.user = self.machine.username
        for note in self.machine.notes:
            self.record.note(note)
        self.machine.notes.clear()
        index = final_index(outputs)
        if index is not None:
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
        self._deliver(outputs, plan)

    def _deliver(self, outputs: list, plan: Plan) -> None:
        self._emit(plan.around(outputs) if plan.before or plan.after or plan.tail else outputs)

    def _emit(self, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, Reply):
                self.pipe.write(out.data, self._on_sent(out))
            elif isinstance(out, StartTLS):
                self._tls_waiter = self.loop.create_future()
                self._tls_pending = True  # what comes now is either ignored plaintext or the handshake
                self.pipe.then(self._begin_starttls)
            elif isinstance(out, Close):
                self._ending = True
                reason = out.reason
                self.pipe.then(lambda: self.record.note(f"server closes: {reason}"))
                self.pipe.close()

    def _on_sent(self, out: Reply) -> Callable[[], None]:
        """Records ``out`` as the client receives it: when its first byte is written."""
        def sent() -> None:
            now = time.monotonic()
            for line in out.lines:
                status, code = _codes(line)
                self.record.responses.append(ResponseRecord(now, self.tls_active, out.kind, None, status, code, line,
                                                            out.injected))
                if self.record.listener is not None:
                    self.record.announce(f"S: {line}")
            if out.submission is not None:
                self.server.submissions.update(out.submission, reply_sent=True)

        return sent

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
            return Plan()
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


_CODES: dict[str, tuple[str | None, str | None]] = {}


def _codes(line: str) -> tuple[str | None, str | None]:
    """``split_code(line)``, remembered: a server says the same few lines over and over."""
    found = _CODES.get(line)
    if found is None:
        found = split_code(line)
        if len(_CODES) >= 4096:  # lines with queue ids or addresses in them: keep it bounded
            _CODES.clear()
        _CODES[line] = found
    return found


def _reason(error: Exception | None) -> str:
    if error is None:
        return "closed"
    return str(error) or type(error).__name__
