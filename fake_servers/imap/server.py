"""The IMAP fake's I/O: a Twisted protocol around :class:`ImapSession`.

Bytes in: recorded, parsed, offered to the fault rules, then to the session. Bytes out:
offered to the fault rules, recorded, and written through the :class:`OutboundPipe`,
the one seam where transport faults apply. Nothing here decides protocol behaviour.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from ..faults import FaultEngine, OutboundPipe
from ..mailstore import MailStore
from ..runtime import set_nodelay
from ..twisted_io import TwistedSink, peer_of, tls_version
from ..wire import CommandRecord, ResponseRecord, WireLog
from . import state_actions
from .config import ImapConfig
from .mailbox_commands import idle_updates
from .parser import Command, CommandParser, ContinuationNeeded, Line, ParseError
from .redact import describe_command
from .responses import Close, Send, StartTLS, continuation, status_untagged, tagged
from .session import ImapSession, State


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
    ) -> None:
        self.name = name
        self.store = store
        self.config = config
        self.wire = wire
        self.faults = faults
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.reactor = reactor
        self.connections: set[ImapServerProtocol] = set()

    def buildProtocol(self, addr):  # noqa: N802 - Twisted's name
        proto = ImapServerProtocol()
        proto.factory = self
        return proto

    def abort_all(self) -> None:
        for proto in list(self.connections):
            proto.transport.abortConnection()


@implementer(IHandshakeListener)
class ImapServerProtocol(Protocol):
    factory: ImapServerFactory

    def connectionMade(self) -> None:  # noqa: N802
        f = self.factory
        set_nodelay(self.transport)
        f.connections.add(self)
        self.record = f.wire.open("imap", f.name, peer_of(self.transport), implicit_tls=f.implicit_tls)
        self.pipe = OutboundPipe(TwistedSink(self.transport, f.reactor), on_write=self.record.sent,
                                 seed=f.faults.seed + self.record.id)
        self.session = ImapSession(f.store, f.config, tls=False)
        self.session.on_folder_change = self._folder_changed
        self.parser = CommandParser(max_literal=f.config.max_append_size)
        self._closed = False
        self._tls_pending = False
        actions = self._fire("connect")
        if self._apply_connection_actions(actions, replace_greeting=True):
            return
        if f.implicit_tls:
            return  # greet once the handshake completed (see handshakeCompleted)
        self._greet()

    def _greet(self) -> None:
        outputs = self.session.greeting()
        actions = self._fire("greeting")
        replaced = [a for _, a in actions if a.name == "reply"]
        if replaced:
            a = replaced[-1]
            status = a.get("status", "OK").upper()
            text = _with_code(a.get("code"), a.get("text", ""))
            outputs = [Send(f"* {status} {text}\r\n".encode(), "greeting", None, status, a.get("code"), injected=True)]
            if status == "BYE":
                outputs.append(Close("greeting BYE"))
            if status == "PREAUTH":
                self.session.state = State.AUTHENTICATED
        self._emit_with_actions(outputs, [(r, a) for r, a in actions if a.name != "reply"])

    # -- TLS ---------------------------------------------------------------------------------

    def handshakeCompleted(self) -> None:  # noqa: N802
        self.record.tls_started(tls_version(self.transport))
        self.session.tls_started()
        self._tls_pending = False
        actions = self._fire("tls")
        if self._apply_connection_actions(actions, replace_greeting=False):
            return
        if self.factory.implicit_tls:
            self._greet()

    def _start_tls(self) -> None:
        if self._closed:
            return
        self.parser = CommandParser(max_literal=self.factory.config.max_append_size)  # drop injected plaintext
        self._tls_pending = True
        self.transport.startTLS(self.factory.tls_context)

    # -- input -------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.record.received(data)
        if self._tls_pending:
            return  # plaintext after STARTTLS, before the handshake: never executed
        self.parser.receive_data(data)
        self._process()

    def _process(self) -> None:
        while not self._closed and not self._tls_pending and self.session.state is not State.LOGOUT:
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
                self._record(None, "(unparsable)", event.raw, event.raw.decode("utf-8", "replace").rstrip("\r\n"))
                self._emit(self.session.protocol_error(event.tag, event.text))

    def _record(self, tag, name, raw, redacted, *, credentials=False, mail_data=False) -> None:
        self.record.commands.append(CommandRecord(time.monotonic(), self.session.tls, self.session.state.value,
                                                  tag, name, raw, redacted, credentials, mail_data))
        if self.record.listener is not None:
            self.record.announce(f"C: {redacted}")

    def _command(self, cmd: Command) -> None:
        name = f"UID {cmd.name}" if cmd.uid else cmd.name
        redacted, credentials, mail_data = describe_command(cmd)
        self._record(cmd.tag, name, cmd.raw, redacted, credentials=credentials, mail_data=mail_data)
        actions = self._fire("command", command=name)
        replies = [a for _, a in actions if a.name == "reply"]
        if replies:
            a = replies[-1]
            outputs: list = [tagged(cmd.tag, a.get("status").upper(), _with_code(a.get("code"), a.get("text", "")))]
            outputs[0].injected = True
        elif any(a.name in ("bye", "close", "reset", "stall") for _, a in actions):
            outputs = []
        else:
            outputs = self.session.handle(cmd)
        response_actions = self._fire("response", command=name, status=_tagged_status(outputs))
        self._emit_with_actions(outputs, [(r, a) for r, a in actions if a.name != "reply"] + response_actions)

    def _line(self, line: Line) -> None:
        secret = self.session.sasl is not None and line.data.strip() != b"*"
        shown = "***" if secret else line.data.decode("utf-8", "replace")
        self._record(None, "CONTINUATION", line.data + b"\r\n", shown, credentials=secret)
        self._emit(self.session.handle_line(line.data))

    def _folder_changed(self) -> None:
        if not self._closed and self.session.idle_tag is not None:
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

    def _apply_connection_actions(self, actions, *, replace_greeting: bool) -> bool:
        """Actions at connect/TLS time. Returns True when they ended the conversation."""
        if not actions:
            return False
        outputs: list = []
        ended = False
        for _, a in actions:
            if a.name == "reply" and replace_greeting:
                status = a.get("status", "BYE").upper()
                outputs.append(Send(f"* {status} {_with_code(a.get('code'), a.get('text', ''))}\r\n".encode(),
                                    "greeting", None, status, a.get("code"), injected=True))
                if status == "BYE":
                    outputs.append(Close("refused at connect"))
                ended = True
        self._emit_with_actions(outputs, [(r, a) for r, a in actions if a.name != "reply"])
        return ended or self._closed or any(a.name in ("bye", "close", "reset", "stall") for _, a in actions)

    def _emit_with_actions(self, outputs: list, actions: list) -> None:
        before: list = []
        after: list = []
        tail: list = []
        for _, a in actions:
            name = a.name
            if name == "untagged":
                lines = [Send(b"* " + str(line).encode() + b"\r\n", "untagged", injected=True,
                              status=str(line).split(" ", 1)[0].upper()) for line in a.get("lines", [])]
                (after if a.get("when", "before") == "after" else before).extend(lines)
            elif name == "bye":
                tail.append(status_untagged("BYE", _with_code(a.get("code"), a.get("text", "Server shutting down."))))
                tail[-1].injected = True
                tail.append(Close("fault: bye"))
            elif name == "close":
                tail.append(Close("fault: close"))
            elif name == "reset":
                self.pipe.reset()
            elif name == "stall":
                self.pipe.stall()
            elif name == "delay":
                self.pipe.pause(float(a.get("seconds", 0)))
            elif name == "latency":
                self.pipe.shaping.latency = float(a.get("seconds", 0))
                self.pipe.shaping.jitter = float(a.get("jitter", 0))
            elif name == "bandwidth":
                self.pipe.shaping.bytes_per_second = int(a.get("bytes_per_second"))
            elif name == "slice":
                self.pipe.shaping.slice_size = int(a.get("size", 1))
            elif name == "truncate":
                self.pipe.truncate_after(int(a.get("after_bytes", 0)), a.get("then", "reset"))
            elif name == "capabilities":
                cfg = self.factory.config
                cfg.capabilities_add = tuple(dict.fromkeys((*cfg.capabilities_add, *a.get("add", []))))
                cfg.capabilities_remove = tuple(dict.fromkeys((*cfg.capabilities_remove, *a.get("remove", []))))
            else:
                state_actions.apply(a, self.factory.store, self.session.account)
        if after:
            # "after" lines go right behind the tagged response (before STARTTLS takes over)
            index = next((i + 1 for i, o in enumerate(outputs) if isinstance(o, Send) and o.kind == "tagged"),
                         len(outputs))
            outputs = outputs[:index] + after + outputs[index:]
        self._emit(before + outputs + tail)

    # -- output ------------------------------------------------------------------------------

    def _emit(self, outputs: list) -> None:
        responses = self.record.responses
        tls = self.session.tls
        for out in outputs:
            if self._closed:
                return
            if isinstance(out, Send):
                responses.append(ResponseRecord(time.monotonic(), tls, out.kind, out.tag, out.status, out.code,
                                                out.line, out.injected))
                if self.record.listener is not None:
                    self.record.announce(f"S: {out.line}")
                self.pipe.write(out.data)
            elif isinstance(out, StartTLS):
                self.pipe.then(self._start_tls)
                self._tls_pending = True
            elif isinstance(out, Close):
                reason = out.reason
                self.pipe.then(lambda: self.record.note(f"server closes: {reason}"))
                self.pipe.close()

    def connectionLost(self, reason) -> None:  # noqa: N802
        self._closed = True
        self.pipe.shutdown()
        self.session.close()
        self.factory.connections.discard(self)
        self.record.closed(reason.getErrorMessage() if reason is not None else "closed")


def _with_code(code: str | None, text: str) -> str:
    return f"[{code}] {text}" if code else text


def _tagged_status(outputs: list) -> str | None:
    for out in outputs:
        if isinstance(out, Send) and out.kind == "tagged":
            return out.status
    return None
