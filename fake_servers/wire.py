"""Wire recording: every byte each fake received and sent, per connection, with what it meant.

The harness decides most MUST checks from this record ("was a credential sent before TLS?",
"how many connections were open at once?"), so it holds for clients that expose nothing.
Raw bytes are kept in both directions; server-to-client bytes beyond ``keep_server_bytes``
per connection are counted but not kept, so serving a 100,000-message mailbox does not keep
gigabytes. Commands and response lines are always kept, with credentials redacted in
:meth:`ConnectionRecord.transcript`.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

CLIENT = "client"
SERVER = "server"

DEFAULT_KEEP_SERVER_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class Chunk:
    """Bytes as they crossed the socket (decrypted when TLS was on)."""

    at: float
    sender: str  # CLIENT or SERVER
    data: bytes
    tls: bool


@dataclass(slots=True)
class CommandRecord:
    """One client command (or continuation line) as the server parsed it."""

    at: float  # when its first byte arrived
    tls: bool
    state: str  # protocol state when it arrived, e.g. "not-authenticated"
    tag: str | None
    name: str  # e.g. "LOGIN", "UID FETCH", "AUTHENTICATE-CONTINUATION", "DATA"
    raw: bytes
    redacted: str  # what a transcript shows: secrets replaced by "***"
    credentials: bool = False  # carries a password, token or SASL response
    mail_data: bool = False  # carries message content (APPEND, DATA)
    executed: bool = True  # False: received but thrown away (plaintext pipelined behind STARTTLS)


@dataclass(slots=True)
class ResponseRecord:
    """One response line the server sent (literal payloads summarised)."""

    at: float
    tls: bool
    kind: str  # "greeting", "untagged", "tagged", "continuation"
    tag: str | None
    status: str | None  # OK / NO / BAD / BYE / PREAUTH, or an SMTP code
    code: str | None  # response code, e.g. "AUTHENTICATIONFAILED"
    line: str
    injected: bool = False  # written by a fault rule rather than the protocol


@dataclass(slots=True)
class Note:
    at: float
    text: str


class _Rows:
    """One series of a connection's records: plain tuples while a fake writes them, record
    objects once somebody reads them (made then, once each, and kept).

    A tuple of plain values (numbers, strings, bytes) drops out of the cyclic garbage
    collector's lists the first time a collection sees it; a record object stays in them and
    is walked by every collection for as long as it lives. A fake writes several records per
    command and keeps them all, so as objects they cost it an eighth of its time on a long
    run; as rows, next to nothing until the harness reads them.
    """

    __slots__ = ("make", "rows", "made", "lock")

    def __init__(self, make: Callable[..., object]) -> None:
        self.make = make
        self.rows: list[tuple] = []
        self.made: list = []
        self.lock = threading.Lock()

    def read(self) -> list:
        """Every record so far, as objects (the same list each time, grown as rows come)."""
        made = self.made
        if len(made) < len(self.rows):
            with self.lock:  # a reader off the loop thread and one on it: made once each
                make = self.make
                made.extend([make(*row) for row in self.rows[len(made):]])
        return made


@dataclass
class ConnectionRecord:
    id: int
    protocol: str  # "imap", "smtp", "http", "dns"
    server: str  # the fake's name within its provider, e.g. "imap", "imaps"
    session: int  # 1-based count of connections to this server
    run: int
    peer: str
    opened_at: float
    closed_at: float | None = None
    tls_at: float | None = None
    tls_version: str | None = None
    implicit_tls: bool = False
    user: str | None = None
    close_reason: str | None = None
    keep_server_bytes: int = DEFAULT_KEEP_SERVER_BYTES
    _chunks: _Rows = field(default_factory=lambda: _Rows(Chunk), init=False, repr=False, compare=False)
    _commands: _Rows = field(default_factory=lambda: _Rows(CommandRecord), init=False, repr=False, compare=False)
    _responses: _Rows = field(default_factory=lambda: _Rows(ResponseRecord), init=False, repr=False, compare=False)
    _notes: _Rows = field(default_factory=lambda: _Rows(Note), init=False, repr=False, compare=False)
    bytes_received: int = 0
    bytes_sent: int = 0
    _kept_server_bytes: int = 0
    listener: Callable[["ConnectionRecord", str], None] | None = None  # live transcripts (serve)
    _done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    # -- written by the fakes ------------------------------------------------------------

    @property
    def tls(self) -> bool:
        return self.tls_at is not None

    def add_command(self, at: float, tls: bool, state: str, tag: str | None, name: str, raw: bytes, redacted: str,
                    credentials: bool = False, mail_data: bool = False, executed: bool = True) -> None:
        """Record a command (the fields of :class:`CommandRecord`)."""
        self._commands.rows.append((at, tls, state, tag, name, raw, redacted, credentials, mail_data, executed))

    def add_response(self, at: float, tls: bool, kind: str, tag: str | None, status: str | None, code: str | None,
                     line: str, injected: bool = False) -> None:
        """Record a response line (the fields of :class:`ResponseRecord`)."""
        self._responses.rows.append((at, tls, kind, tag, status, code, line, injected))

    def received(self, data: bytes, at: float | None = None) -> None:
        """Bytes from the client, which arrived at ``at`` (time.monotonic(); now by default)."""
        self.bytes_received += len(data)
        self._chunks.rows.append((time.monotonic() if at is None else at, CLIENT, data, self.tls_at is not None))

    def sent(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        room = self.keep_server_bytes - self._kept_server_bytes
        if room <= 0:
            return
        if len(data) > room:
            data = data[:room]
        self._kept_server_bytes += len(data)
        self._chunks.rows.append((time.monotonic(), SERVER, data, self.tls_at is not None))

    def note(self, text: str) -> None:
        self._notes.rows.append((time.monotonic(), text))
        self.announce(f"-- {text}")

    def announce(self, line: str) -> None:
        """Pass a transcript line to the live listener, if anyone is watching."""
        if self.listener is not None:
            self.listener(self, line)

    def tls_started(self, version: str | None) -> None:
        self.tls_at = time.monotonic()
        self.tls_version = version
        self.note(f"TLS established ({version or 'unknown version'})")

    def closed(self, reason: str) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
            self.close_reason = reason
            self._done.set()

    # -- read by the harness -------------------------------------------------------------

    @property
    def chunks(self) -> list[Chunk]:
        """Bytes both ways, in order (read-only: the fakes add with received() and sent())."""
        return self._chunks.read()

    @property
    def commands(self) -> list[CommandRecord]:
        """Client commands, in order (read-only: the fakes add with add_command())."""
        return self._commands.read()

    @property
    def responses(self) -> list[ResponseRecord]:
        """Server response lines, in order (read-only: the fakes add with add_response())."""
        return self._responses.read()

    @property
    def notes(self) -> list[Note]:
        """What the fake noted, in order (read-only: the fakes add with note())."""
        return self._notes.read()

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block (off the loop thread) until the fake saw this connection end; False on timeout."""
        return self._done.wait(timeout)

    def client_bytes(self, *, tls: bool | None = None) -> bytes:
        return b"".join(c.data for c in self.chunks if c.sender == CLIENT and (tls is None or c.tls == tls))

    def server_bytes(self, *, tls: bool | None = None) -> bytes:
        return b"".join(c.data for c in self.chunks if c.sender == SERVER and (tls is None or c.tls == tls))

    def transcript(self, *, redact: bool = True, limit: int | None = None) -> str:
        """Client and server lines in order, ``C:``/``S:``, with secrets shown as ``***``."""
        rows: list[tuple[float, int, str]] = []
        for c in self.commands:
            text = c.redacted if redact else c.raw.decode("utf-8", "replace").rstrip("\r\n")
            rows.append((c.at, 0, f"C: {text}" + ("" if c.executed else "   [not executed]")))
        for r in self.responses:
            rows.append((r.at, 1, f"S: {r.line}" + ("   [injected]" if r.injected else "")))
        for n in self.notes:
            rows.append((n.at, 2, f"-- {n.text}"))
        rows.sort(key=lambda row: (row[0], row[1]))
        lines = [f"connection #{self.id} {self.protocol}/{self.server} session {self.session} from {self.peer}"]
        lines += [text for _, _, text in rows]
        if limit is not None and len(lines) > limit:
            lines = lines[:limit] + [f"... {len(lines) - limit} more lines"]
        return "\n".join(lines)


class WireLog:
    """All connections of one provider (or one run), in the order they were accepted."""

    def __init__(self, keep_server_bytes: int = DEFAULT_KEEP_SERVER_BYTES) -> None:
        self.keep_server_bytes = keep_server_bytes
        self.connections: list[ConnectionRecord] = []
        self._ids = itertools.count(1)
        self._sessions: dict[str, int] = {}
        self._lock = threading.Lock()
        self._opened = threading.Condition(self._lock)
        self.run = 1
        self.listener: Callable[[ConnectionRecord, str], None] | None = None

    def open(self, protocol: str, server: str, peer: str, *, implicit_tls: bool = False) -> ConnectionRecord:
        with self._lock:
            session = self._sessions.get(server, 0) + 1
            self._sessions[server] = session
            record = ConnectionRecord(
                id=next(self._ids),
                protocol=protocol,
                server=server,
                session=session,
                run=self.run,
                peer=peer,
                opened_at=time.monotonic(),
                implicit_tls=implicit_tls,
                keep_server_bytes=self.keep_server_bytes,
                listener=self.listener,
            )
            self.connections.append(record)
            self._opened.notify_all()
        return record

    def wait_for_connections(self, count: int, timeout: float | None = None, **where) -> list[ConnectionRecord]:
        """Block (off the loop thread) until at least ``count`` connections matching ``where``
        were accepted; returns them (fewer on timeout)."""
        def matching() -> list[ConnectionRecord]:
            return [c for c in self.connections
                    if all(getattr(c, key) == value for key, value in where.items())]

        with self._opened:
            self._opened.wait_for(lambda: len(matching()) >= count, timeout)
            return matching()

    def open_count(self, server: str | None = None) -> int:
        return sum(1 for c in self.connections if c.open and (server is None or c.server == server))

    # -- queries ---------------------------------------------------------------------------

    def select(self, *, protocol: str | None = None, run: int | None = None) -> list[ConnectionRecord]:
        with self._lock:
            conns = list(self.connections)
        return [c for c in conns if (protocol is None or c.protocol == protocol) and (run is None or c.run == run)]

    def commands(self, name: str | None = None, **where) -> Iterator[tuple[ConnectionRecord, CommandRecord]]:
        for conn in self.select(**where):
            for cmd in conn.commands:
                if name is None or cmd.name == name.upper():
                    yield conn, cmd

    def credentials_before_tls(self, secrets: tuple[bytes, ...] = (), **where) -> list[tuple[ConnectionRecord, str]]:
        """Places where a credential crossed the wire in plaintext.

        Both what the protocol parser flagged (LOGIN, AUTHENTICATE responses, AUTH) and any
        plaintext occurrence of the given secret bytes (a client that leaks a password in an
        unexpected command is caught too).
        """
        found = []
        for conn in self.select(**where):
            for cmd in conn.commands:
                if cmd.credentials and not cmd.tls:
                    found.append((conn, cmd.redacted))
            plain = conn.client_bytes(tls=False)
            for secret in secrets:
                if secret and secret in plain:
                    found.append((conn, f"the secret bytes appear in plaintext ({len(secret)} bytes)"))
        return found

    def peak_concurrency(self, **where) -> int:
        """The largest number of connections open at the same moment."""
        edges = []
        for conn in self.select(**where):
            edges.append((conn.opened_at, 1))
            edges.append((conn.closed_at if conn.closed_at is not None else float("inf"), -1))
        edges.sort(key=lambda e: (e[0], e[1]))
        peak = current = 0
        for _, delta in edges:
            current += delta
            peak = max(peak, current)
        return peak

    def transcripts(self, **where) -> str:
        return "\n\n".join(c.transcript() for c in self.select(**where))
