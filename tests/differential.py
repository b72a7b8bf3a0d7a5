"""Running one IMAP script against two servers and normalising what they may legitimately
answer differently, so that the rest compares byte for byte.

Used by ``tests/test_differential_dovecot.py`` (the fake against a real Dovecot). Two halves:

* :class:`Conversation` drives one connection: it sends a script of commands (literals with
  the ``+`` handshake, IDLE with a trigger in between, SASL exchanges, raw bytes) and keeps
  every response line, literals folded in, grouped by the command that caused it.
* :class:`Normaliser` turns such a transcript into canonical lines. Each rule it applies is
  named ``N-...`` below and in ``docs/differences.md``; anything no rule covers must be equal.
  It keeps the capability lists it removed (compared as sets by their own test) and the
  HIGHESTMODSEQ baseline of the selected mailbox (mod-sequences are compared relative to it).

A :class:`Side` is one server: where it listens, the UIDVALIDITY of each mailbox (values are
shown as mailbox names) and how to deliver mail to it from outside IMAP.
"""

from __future__ import annotations

import base64
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Union

TIMEOUT = 10.0

# -- response tokens ------------------------------------------------------------------------------


class Quoted(bytes):
    """A quoted string from a response (its value, unescaped)."""


class Literal(bytes):
    """A literal from a response (its value)."""


class Literal8(bytes):
    """A binary literal ``~{n}`` from a response (its value)."""


Token = Union[str, Quoted, Literal, Literal8, list]


class ResponseSyntaxError(ValueError):
    pass


_ATOM_END = b' ()"{\r\n'


def tokenize(data: bytes, pos: int = 0) -> list[Token]:
    """The tokens of ``data`` from ``pos`` up to its end or final CRLF: atoms (``str``; a
    fetch label such as ``BODY[HEADER.FIELDS (FROM)]<0>`` is one atom), quoted strings,
    literals and parenthesised lists. Raises ResponseSyntaxError on anything else."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    tokens, pos = _tokens(data, pos, closing=None)
    if data[pos:] != b"\r\n":
        raise ResponseSyntaxError(f"trailing bytes at {pos}: {data[pos:]!r}")
    return tokens


def _tokens(data: bytes, pos: int, closing: bytes | None) -> tuple[list[Token], int]:
    out: list[Token] = []
    n = len(data)
    while pos < n:
        c = data[pos:pos + 1]
        if c == b" ":
            pos += 1
            continue
        if closing is not None and c == closing:
            return out, pos + 1
        if c == b"\r":
            if closing is not None:
                raise ResponseSyntaxError(f"unclosed list before {pos}")
            return out, pos
        if c == b"(":
            inner, pos = _tokens(data, pos + 1, b")")
            out.append(inner)
        elif c == b'"':
            value = bytearray()
            pos += 1
            while data[pos:pos + 1] != b'"':
                if pos >= n:
                    raise ResponseSyntaxError("unterminated quoted string")
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                value += data[pos:pos + 1]
                pos += 1
            out.append(Quoted(bytes(value)))
            pos += 1
        elif c == b"{" or data[pos:pos + 2] == b"~{":
            binary = c == b"~"
            end = data.index(b"}\r\n", pos)
            size = int(data[pos + (2 if binary else 1):end].rstrip(b"+"))
            start = end + 3
            value = data[start:start + size]
            out.append(Literal8(value) if binary else Literal(value))
            pos = start + size
        else:
            start = pos
            depth = 0
            while pos < n:
                ch = data[pos:pos + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in _ATOM_END and ch != b"":
                    break
                elif depth > 0 and ch in b"\r\n":
                    break
                pos += 1
            if pos == start:
                raise ResponseSyntaxError(f"unexpected {c!r} at {pos}")
            out.append(data[start:pos].decode("utf-8", "surrogateescape"))
    if closing is not None:
        raise ResponseSyntaxError("unclosed list")
    return out, pos


def render(tokens: Iterable[Token]) -> bytes:
    """Tokens back to response bytes; quoted strings and literals keep their kind."""
    parts = []
    for t in tokens:
        if isinstance(t, list):
            parts.append(b"(" + render(t) + b")")
        elif isinstance(t, Quoted):
            parts.append(b'"' + t.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
        elif isinstance(t, Literal8):
            parts.append(b"~{%d}\r\n" % len(t) + t)
        elif isinstance(t, Literal):
            parts.append(b"{%d}\r\n" % len(t) + t)
        else:
            parts.append(t.encode("utf-8", "surrogateescape"))
    return b" ".join(parts)


# -- driving a connection ---------------------------------------------------------------------------


@dataclass
class Exchange:
    """One step of a script: what was sent and every line that came back for it."""

    sent: bytes
    lines: list[bytes] = field(default_factory=list)
    # How the command is shown in normalised transcripts when what was sent depends on the
    # server (a step that used a value the server announced); None shows ``sent``.
    label: bytes | None = None


@dataclass
class Idle:
    """``IDLE``, then ``trigger(conversation)`` once the server has sent ``+``, then wait
    until an untagged line matching ``until`` arrives (every line up to it is kept), then
    ``DONE``. Nothing sleeps: the reads block until the server pushes."""

    trigger: Callable[["Conversation"], None]
    until: bytes = rb"^\* \d+ EXISTS\r\n"


@dataclass
class Authenticate:
    """``AUTHENTICATE mechanism`` without SASL-IR: each client response is sent after a ``+``."""

    mechanism: str
    responses: tuple[bytes, ...]  # raw, base64-encoded here; ``b"*"`` cancels


@dataclass
class Raw:
    """Bytes sent as they are; the reply is read up to the tagged response of ``tag``, or one
    line when ``tag`` is None (e.g. an untagged ``* BAD`` for an unparsable line), or until
    the server closes when ``until_close``."""

    data: bytes
    tag: str | None = None
    until_close: bool = False


# A step is a command without its tag, or a function of the conversation so far that returns
# one (to use values the server announced, e.g. ``lambda c: f"UID FETCH {c.seen['UIDNEXT']} UID"``),
# or a (command, label) pair whose label is what normalised transcripts show instead.
Step = Union[str, bytes, Callable[["Conversation"], Union[str, bytes, tuple]], Idle, Authenticate, Raw]
_CODE = re.compile(rb"^\S+ (?:OK|NO|BAD) \[([A-Z0-9-]+) ?([^\]]*)\]", re.I)

_SYNC_LITERAL = re.compile(rb"\{(\d+)\}\r\n")


class Conversation:
    """One connection to one server, with a transcript of :class:`Exchange` records."""

    def __init__(self, side: "Side", *, timeout: float = TIMEOUT, variables: dict | None = None) -> None:
        self.side = side
        self.vars = dict(variables or {})  # for steps that are functions (mailbox names ...)
        sock = socket.create_connection((side.host, side.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buffer = b""
        self.exchanges: list[Exchange] = []
        # The latest arguments of each response code seen (UIDNEXT, HIGHESTMODSEQ, APPENDUID ...).
        self.seen: dict[str, bytes] = {}
        self.greeting = Exchange(b"", [self.line()])
        self._tags = 0

    # -- low level --

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"{self.side.name} closed the connection; unread: {self.buffer!r}")
        self.buffer += data

    def line(self) -> bytes:
        """One response line with any literals it announces folded in, CRLF kept."""
        out = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            part, _, self.buffer = self.buffer.partition(b"\r\n")
            out += part + b"\r\n"
            m = re.search(rb"~?\{(\d+)\}\r\n\Z", out)
            if m is None:
                code = _CODE.match(out)
                if code is not None:
                    self.seen[code.group(1).upper().decode()] = code.group(2)
                return out
            size = int(m.group(1))
            while len(self.buffer) < size:
                self._fill()
            out += self.buffer[:size]
            self.buffer = self.buffer[size:]

    def until_tagged(self, tag: str, into: list[bytes]) -> list[bytes]:
        prefix = tag.encode() + b" "
        while True:
            line = self.line()
            into.append(line)
            if line.startswith(prefix):
                return into

    def next_tag(self) -> str:
        self._tags += 1
        return f"T{self._tags}"

    # -- steps --

    def run(self, steps: Iterable[Step]) -> list[Exchange]:
        for step in steps:
            self.exchanges.append(self.step(step))
        return self.exchanges

    def step(self, step: Step) -> Exchange:
        label = None
        if callable(step) and not isinstance(step, (Idle, Authenticate, Raw)):
            step = step(self)
            if isinstance(step, tuple):
                step, label = step
                label = label.encode("utf-8") if isinstance(label, str) else label
        if isinstance(step, str):
            step = step.encode("utf-8")
        if isinstance(step, bytes):
            ex = self.command(step)
            if label is not None:
                ex.label = ex.sent.split(b" ", 1)[0] + b" " + label
            return ex
        if isinstance(step, Idle):
            return self.idle(step)
        if isinstance(step, Authenticate):
            return self.authenticate(step)
        if isinstance(step, Raw):
            return self.raw(step)
        raise TypeError(f"unknown step {step!r}")

    def command(self, text: bytes) -> Exchange:
        """``TAG text``; a synchronising literal ``{n}`` waits for the server's ``+`` (or for
        its tagged refusal, which ends the command)."""
        tag = self.next_tag()
        data = tag.encode() + b" " + text + b"\r\n"
        ex = Exchange(data)
        pos = 0
        for m in _SYNC_LITERAL.finditer(data):
            self.send(data[pos:m.end()])
            pos = m.end()
            reply = self.line()
            ex.lines.append(reply)
            if not reply.startswith(b"+"):
                # A refusal (tagged) or untagged data before the continuation.
                if reply.startswith(tag.encode() + b" "):
                    return ex
                self.until_tagged(tag, ex.lines)
                return ex
        self.send(data[pos:])
        self.until_tagged(tag, ex.lines)
        return ex

    def idle(self, step: Idle) -> Exchange:
        tag = self.next_tag()
        ex = Exchange(tag.encode() + b" IDLE\r\n")
        self.send(ex.sent)
        while True:
            line = self.line()
            ex.lines.append(line)
            if line.startswith(b"+"):
                break
            if line.startswith(tag.encode() + b" "):
                return ex
        step.trigger(self)
        pattern = re.compile(step.until)
        while True:
            line = self.line()
            ex.lines.append(line)
            if pattern.search(line):
                break
        self.send(b"DONE\r\n")
        ex.sent += b"DONE\r\n"
        self.until_tagged(tag, ex.lines)
        return ex

    def authenticate(self, step: Authenticate) -> Exchange:
        tag = self.next_tag()
        ex = Exchange(f"{tag} AUTHENTICATE {step.mechanism}\r\n".encode())
        self.send(ex.sent)
        responses = list(step.responses)
        while True:
            line = self.line()
            ex.lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return ex
            if line.startswith(b"+"):
                reply = responses.pop(0) if responses else b"*"
                wire = reply if reply == b"*" else base64.b64encode(reply)
                self.send(wire + b"\r\n")
                ex.sent += wire + b"\r\n"

    def raw(self, step: Raw) -> Exchange:
        ex = Exchange(step.data)
        self.send(step.data)
        if step.until_close:
            while True:
                try:
                    ex.lines.append(self.line())
                except (EOFError, ConnectionError):
                    return ex
        if step.tag is None:
            ex.lines.append(self.line())
        else:
            self.until_tagged(step.tag, ex.lines)
        return ex

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Conversation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- what the normaliser knows about one server -------------------------------------------------------


@dataclass
class Side:
    """One server under comparison: where it listens and what is known about its mailboxes."""

    name: str
    host: str
    port: int
    # (user, UIDVALIDITY value) -> mailbox name, filled before the cases run. Keyed by user
    # as well: UIDVALIDITY identifies a mailbox only within one account.
    uidvalidity_names: dict[tuple[str, int], str] = field(default_factory=dict)
    # deliver(user, mailbox, raw): new mail arriving from outside IMAP (for IDLE cases).
    deliver: Callable[[str, str, bytes], None] | None = None


# -- normalising ----------------------------------------------------------------------------------------

_STATUS_LINE = re.compile(rb"^(\S+) (OK|NO|BAD|BYE|PREAUTH)(?: (.*))?\r\n\Z", re.S | re.I)

# Codes the fake does not send and whose absence changes nothing a client may do next
# (N-INFO-CODES): Dovecot 2.3's CLIENTBUG (STATUS on the selected mailbox and other odd but
# legal requests) and CLOSED (RFC 7162 §3.2.11: in ``* OK [CLOSED]`` when SELECT replaces a
# selected mailbox; required with QRESYNC enabled, which the fake does not offer).
INFO_CODES_DROPPED = frozenset({"CLIENTBUG", "CLOSED"})

_CHILD_ATTRS = frozenset({"\\haschildren", "\\hasnochildren"})
_SPECIAL_USE_ATTRS = frozenset({"\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash"})
# Hints a server may add or leave out at will (RFC 3501 §7.2.2); Dovecot adds them to some
# extended LIST responses, not always the same ones.
_MARK_ATTRS = frozenset({"\\marked", "\\unmarked"})
_DATE_TIME = "%d-%b-%Y %H:%M:%S %z"


@dataclass
class Options:
    """Per-case switches for rules that are not always right."""

    drop_recent: bool = True  # N-RECENT
    drop_codes: frozenset = INFO_CODES_DROPPED  # N-INFO-CODES (a case may add e.g. ALERT)
    # N-UNSOLICITED-UID: the fake puts UID in every FETCH it sends on its own (flag changes
    # seen at NOOP, IDLE ...); RFC 7162 §3.1 requires that once CONDSTORE is enabled and
    # RFC 3501 allows it always; Dovecot adds it only with CONDSTORE.
    drop_unsolicited_uid: bool = True
    now_window: timedelta = timedelta(hours=2)


class Normaliser:
    """Normalises the transcripts of one side; keeps what it saw for later checks
    (``capabilities``: every capability list, with where it came from)."""

    def __init__(self, side: Side, options: Options | None = None, *, user: str = "") -> None:
        self.side = side
        self.user = user
        self.options = options or Options()
        self.capabilities: list[tuple[str, list[str]]] = []
        self.highestmodseq: int | None = None
        self._list_drops: frozenset = frozenset()
        self._verb = b""
        self._new_uidvalidities: dict[int, str] = {}

    def lines(self, exchanges: Iterable[Exchange]) -> list[bytes]:
        """Canonical lines of a transcript: each command sent, then its normalised responses."""
        out: list[bytes] = []
        for ex in exchanges:
            out.append(b"C: " + (ex.label or ex.sent.split(b"\r\n", 1)[0]))
            words = ex.sent.split(b"\r\n", 1)[0].split(b" ", 3)
            verb = words[1].upper() if len(words) > 1 else b""
            if verb == b"UID" and len(words) > 2:
                verb = words[2].upper()
            self._verb = verb
            if verb in (b"SELECT", b"EXAMINE"):
                self.highestmodseq = None  # a new baseline for N-MODSEQ
            self._list_drops = _list_drops(ex.sent) if verb in (b"LIST", b"LSUB") else frozenset()
            lines = [self.line(line) for line in ex.lines]
            out.extend(_sort_list_groups([line for line in lines if line is not None]))
        return out

    # -- one line --

    def line(self, line: bytes) -> bytes | None:
        """One response line in canonical form, or None when a rule drops it."""
        if line.startswith(b"+"):
            return b"+"  # N-TEXT: continuation texts are free
        m = _STATUS_LINE.match(line)
        if m is not None:
            return self._status(m)
        if not line.startswith(b"* "):
            raise ResponseSyntaxError(f"{self.side.name}: not a response line: {line!r}")
        tokens = tokenize(line, 2)
        if not tokens:
            return line
        head = tokens[0].upper() if isinstance(tokens[0], str) else ""
        if head == "CAPABILITY":
            self.capabilities.append(("untagged", [str(t) for t in tokens[1:]]))
            return b"* CAPABILITY ..."  # N-CAPABILITY: compared as sets by their own test
        if head == "ID":
            return b"* ID ..."  # N-ID: server identification is free
        if head == "ENABLED" and len(tokens) == 1:
            return None  # N-ENABLED-EMPTY: an ENABLED listing nothing says nothing
        if head in ("LIST", "LSUB"):
            return b"* " + render(self._list_line(tokens, lsub=head == "LSUB"))
        if head == "STATUS":
            return b"* " + render(self._status_data(tokens))
        if head == "SEARCH":
            return b"* " + render(self._search_data(tokens))
        if len(tokens) >= 2 and isinstance(tokens[1], str):
            kind = tokens[1].upper()
            if kind == "RECENT" and self.options.drop_recent:
                # N-RECENT: present in SELECT/EXAMINE (RFC 3501 requires it), not compared
                # elsewhere; Dovecot announces changes of the count, the fake's stays 0.
                return b"* RECENT" if self._verb in (b"SELECT", b"EXAMINE") else None
            if kind == "FETCH" and len(tokens) > 2 and isinstance(tokens[2], list):
                return b"* " + render([tokens[0], "FETCH", self._fetch_data(tokens[2])])
        if head == "FLAGS" and len(tokens) == 2 and isinstance(tokens[1], list):
            return b"* " + render(["FLAGS", self._flags(tokens[1])])
        return b"* " + render(tokens)

    def _status(self, m: re.Match) -> bytes | None:
        """``tag STATUS [code args]`` with the human-readable text dropped (N-TEXT)."""
        tag, status, rest = m.group(1), m.group(2).upper(), m.group(3) or b""
        out = tag + b" " + status
        if rest.startswith(b"["):
            end = _code_end(rest)
            name, _, args = rest[1:end].partition(b" ")
            code = self._code(name.upper().decode(), args)
            if code is None:
                if tag == b"*" and status == b"OK":
                    return None  # an untagged OK that carried nothing but a dropped code
            else:
                out += b" [" + code + b"]"
        return out

    def _code(self, name: str, args: bytes) -> bytes | None:
        """A response code in canonical form, or None to drop it."""
        if name == "CAPABILITY":
            self.capabilities.append(("code", args.decode().split()))
            return b"CAPABILITY ..."  # N-CAPABILITY
        if name in self.options.drop_codes:
            return None  # N-INFO-CODES
        if name == "BADCHARSET":
            return b"BADCHARSET"  # N-BADCHARSET: the list of supported charsets is optional
        if name == "UIDVALIDITY":
            return b"UIDVALIDITY " + self.uidvalidity(int(args))
        if name == "HIGHESTMODSEQ":
            value = int(args)
            if self.highestmodseq is None:
                self.highestmodseq = value
            return b"HIGHESTMODSEQ " + self.modseq(value, message=False)
        if name in ("APPENDUID", "COPYUID"):
            parts = args.split(b" ")
            parts[0] = self.uidvalidity(int(parts[0]))
            return name.encode() + b" " + b" ".join(parts)
        if name == "PERMANENTFLAGS":
            return b"PERMANENTFLAGS " + render([self._flags(tokenize(args)[0])])
        return name.encode() + (b" " + args if args else b"")

    # -- values --

    def uidvalidity(self, value: int) -> bytes:
        """N-UIDVALIDITY: a UIDVALIDITY is shown as the mailbox it belongs to; values first
        seen during the case (a mailbox the case created) are numbered in order of appearance."""
        name = self.side.uidvalidity_names.get((self.user, value))
        if name is None:
            name = self._new_uidvalidities.setdefault(value, f"new#{len(self._new_uidvalidities) + 1}")
        return f"<{name}>".encode()

    def modseq(self, value: int, *, message: bool) -> bytes:
        """N-MODSEQ: mod-sequences are compared only against the HIGHESTMODSEQ the selected
        mailbox announced first (servers number them freely, RFC 7162 §3.1.1). A message's
        is ``<=H>`` (unchanged since) or ``>H`` (changed in this session); a HIGHESTMODSEQ is
        ``<H>`` (the baseline), ``>H`` or ``<H`` (which would be a bug)."""
        base = self.highestmodseq
        if base is None:
            return b"<modseq>"
        if value > base:
            return b"<>H>"
        if message:
            return b"<<=H>"
        return b"<H>" if value == base else b"<<H>"

    def _flags(self, flags: list) -> list:
        """N-FLAG-ORDER: a flag list is a set; N-RECENT: without \\Recent."""
        if self.options.drop_recent:
            flags = [f for f in flags if not (isinstance(f, str) and f.lower() == "\\recent")]
        return sorted(flags, key=lambda f: (not str(f).startswith("\\"), str(f).lower()))

    def _list_line(self, tokens: list, lsub: bool) -> list:
        """N-LIST-ATTRS: mailbox attributes in any order, without \\Marked/\\UnMarked hints;
        N-LIST-EXTENDED: attributes an extended LIST or an LSUB did not ask for are left out."""
        attrs = tokens[1] if len(tokens) > 1 and isinstance(tokens[1], list) else []
        attrs = [a for a in attrs if str(a).lower() not in self._list_drops]
        attrs = sorted(attrs, key=lambda a: str(a).lower())
        return [tokens[0], attrs, *tokens[2:]]

    def _status_data(self, tokens: list) -> list:
        """N-STATUS-ORDER: STATUS items sorted by name (RFC 3501 §7.2.4 fixes no order)."""
        items = tokens[2] if len(tokens) > 2 and isinstance(tokens[2], list) else []
        pairs = []
        for i in range(0, len(items) - 1, 2):
            name, value = str(items[i]).upper(), items[i + 1]
            if name == "UIDVALIDITY":
                value = self.uidvalidity(int(value)).decode()
            elif name == "RECENT" and self.options.drop_recent:
                continue  # N-RECENT
            elif name == "HIGHESTMODSEQ":
                value = "<modseq>"  # N-MODSEQ: no baseline outside the selected mailbox
            pairs.append((name, value))
        pairs.sort(key=lambda p: p[0])
        return [tokens[0], tokens[1], [x for p in pairs for x in p]]

    def _search_data(self, tokens: list) -> list:
        out = []
        for t in tokens:
            if isinstance(t, list) and len(t) == 2 and str(t[0]).upper() == "MODSEQ":
                t = ["MODSEQ", self.modseq(int(t[1]), message=False).decode()]
            out.append(t)
        return out

    def _fetch_data(self, items: list) -> list:
        """N-FETCH-ORDER: FETCH data items sorted by name (RFC 3501 §7.4.2 fixes no order;
        repeated body sections keep their relative order). N-NOW: an INTERNALDATE within
        ``now_window`` of now (a message appended without a date) is shown as ``<now>``."""
        pairs = []
        unsolicited = self._verb not in (b"FETCH", b"STORE")
        for i in range(0, len(items) - 1, 2):
            name, value = items[i], items[i + 1]
            key = str(name).upper()
            if key == "UID" and unsolicited and self.options.drop_unsolicited_uid:
                continue  # N-UNSOLICITED-UID
            if key == "FLAGS" and isinstance(value, list):
                value = self._flags(value)
            elif key == "MODSEQ" and isinstance(value, list) and value:
                value = [self.modseq(int(value[0]), message=True).decode()]
            elif key == "INTERNALDATE" and isinstance(value, bytes):
                try:
                    when = datetime.strptime(value.decode(), _DATE_TIME)
                except ValueError:
                    pass
                else:
                    if abs(when - datetime.now(timezone.utc)) < self.options.now_window:
                        value = "<now>"
                    else:
                        # N-INTERNALDATE-ZONE: the same instant in any zone; Dovecot keeps
                        # the time of an APPEND's date-time, not its zone (Maildir mtime).
                        value = Quoted(when.astimezone(timezone.utc).strftime(_DATE_TIME).encode())
            pairs.append((key, i, name, value))
        pairs.sort(key=lambda p: (p[0], p[1]))
        return [x for _, _, name, value in pairs for x in (name, value)]


def _list_drops(sent: bytes) -> frozenset:
    """Mailbox attributes not compared in the answer to this LIST or LSUB command.

    Always the \\Marked/\\UnMarked hints. For LSUB, child information (RFC 3348 permits it,
    Dovecot sends none). For an extended LIST (selection or return options, RFC 5258), child
    information unless RETURN (CHILDREN) asked for it (§4 lets the server leave it out, and
    Dovecot does), and special-use attributes unless SPECIAL-USE was a selection or return
    option (RFC 6154 §2 requires them only then; Dovecot sends them only then).
    """
    line = sent.split(b"\r\n", 1)[0]
    words = line.split(b" ", 2)
    drops = set(_MARK_ATTRS)
    if words[1:2] and words[1].upper() == b"LSUB":
        return frozenset(drops | _CHILD_ATTRS)
    try:
        args = tokenize(words[2]) if len(words) > 2 else []
    except ResponseSyntaxError:
        return frozenset(drops)
    selection = [str(a).upper() for a in args.pop(0)] if args and isinstance(args[0], list) else []
    returns: list[str] = []
    if len(args) >= 3 and str(args[2]).upper() == "RETURN" and isinstance(args[3:4] and args[3], list):
        returns = [str(a).upper() for a in args[3] if isinstance(a, str)]
    patterns_list = len(args) > 1 and isinstance(args[1], list)
    if not (selection or returns or len(args) > 2 or patterns_list):
        return frozenset(drops)  # basic LIST: every other attribute is compared
    if "CHILDREN" not in returns:
        drops |= _CHILD_ATTRS
    if "SPECIAL-USE" not in returns and "SPECIAL-USE" not in selection:
        drops |= _SPECIAL_USE_ATTRS
    return frozenset(drops)


def _code_end(rest: bytes) -> int:
    depth = 0
    for i, ch in enumerate(rest):
        if ch == ord("["):
            depth += 1
        elif ch == ord("]"):
            depth -= 1
            if depth == 0:
                return i
    return len(rest)


def _list_key(line: bytes) -> bytes:
    """The mailbox a LIST/LSUB/STATUS line is about, for N-LIST-ORDER."""
    tokens = tokenize(line, 2)
    if tokens and str(tokens[0]).upper() == "STATUS":
        name = tokens[1]
    else:
        name = tokens[-1]
    return bytes(name) if isinstance(name, bytes) else str(name).encode()


def _sort_list_groups(lines: list[bytes]) -> list[bytes]:
    """N-LIST-ORDER: a run of LIST/LSUB lines (each with the STATUS lines that follow it,
    RFC 5819) is sorted by mailbox name; RFC 3501 gives LIST no order."""
    out: list[bytes] = []
    group: list[list[bytes]] = []

    def flush():
        for g in sorted(group, key=lambda g: _list_key(g[0])):
            out.extend(g)
        group.clear()

    for line in lines:
        if line.startswith((b"* LIST ", b"* LSUB ")):
            group.append([line])
        elif line.startswith(b"* STATUS ") and group:
            group[-1].append(line)
        else:
            flush()
            out.append(line)
    flush()
    return out
