"""Incremental IMAP command parser, with no I/O (in the manner of h11).

Feed bytes with `CommandParser.receive_data`, then call `next_event` until it returns None.
Each call returns one event and reads no further, so the caller may switch between command
mode and line mode (AUTHENTICATE responses, IDLE's DONE) between events:

    parser = CommandParser()
    parser.receive_data(b'a1 LOGIN "joe" {6}\\r\\n')
    parser.next_event()   # ContinuationNeeded(size=6): the server sends "+ ..." now
    parser.receive_data(b"secret\\r\\n")
    parser.next_event()   # Command(tag='a1', name='LOGIN', uid=False,
                          #         args=(String(b'joe'), String(b'secret', literal=True)), raw=...)

The parser knows the general grammar (atoms, quoted strings, literals, lists, bracketed parts
of fetch attributes) but not what each command expects: the session checks that. Malformed
input never raises; it becomes a `ParseError`, after which the parser resynchronises at the
next line (skipping the bytes of any non-synchronizing literal the broken line announced).

Decisions callers rely on:
- An empty line is a `ParseError(tag=None, "Empty command line")`: RFC 3501 has no empty
  command, and Dovecot answers one with `* BAD`.
- Lines may end in CRLF or a bare LF. Any other CR in a command line is an error.
- Extra spaces between arguments and trailing spaces are tolerated (Dovecot accepts them);
  a missing space between two arguments (`"a"(b)`) is an error.
- A literal inside the brackets of an atom (`BODY[HEADER.FIELDS ({4}...`) is not supported
  and reads as a missing `]`.
- Quoted strings pass 8-bit bytes through unchecked (RFC 6855); atoms must be ASCII.
- `max_line` applies to each line of a command (the parts between literals), `max_literal`
  to each literal. An over-long line is reported as soon as it passes the limit, before its
  line end arrives, and the rest of it is discarded as it comes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Atom",
    "String",
    "Command",
    "Line",
    "ParseError",
    "ContinuationNeeded",
    "CommandParser",
    "COMMAND",
    "LINE",
    "split_tag",
]

COMMAND = "command"
LINE = "line"


class Atom(str):
    """An atom as the client spelled it: a number, a flag, a sequence set, `NIL`, or a fetch
    attribute together with its section and partial (`BODY.PEEK[HEADER]<0.100>`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str(self)!r})"


class String(bytes):
    """A quoted string or a literal, as bytes. `.literal` tells which, because some checks
    (and the wire record) care how the client sent it."""

    literal: bool

    def __new__(cls, value: bytes = b"", literal: bool = False) -> String:
        self = super().__new__(cls, value)
        self.literal = literal
        return self

    def __reduce__(self):
        return (String, (bytes(self), self.literal))

    def __repr__(self) -> str:
        return f"String({bytes(self)!r}, literal={self.literal})"


@dataclass(frozen=True)
class Command:
    """A complete command. `raw` holds every byte received for it, literals and the final
    line end included, so the wire record and redaction can work from it."""

    tag: str
    name: str
    uid: bool
    args: tuple
    raw: bytes


@dataclass(frozen=True)
class Line:
    """One line read in line mode, without its line end."""

    data: bytes


@dataclass(frozen=True)
class ParseError:
    """Input the parser rejected. `tag` is None when no tag could be read (answer `* BAD`).
    `raw` is what was discarded up to this event; bytes skipped afterwards to reach the next
    command (the rest of an over-long line, a non-synchronizing literal) are not in it."""

    tag: str | None
    text: str
    raw: bytes


@dataclass(frozen=True)
class ContinuationNeeded:
    """The client sent a synchronizing literal `{size}` and waits for a `+` response."""

    size: int


# tag = 1*<any ASTRING-CHAR except "+">
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
# A command name is an atom made of ATOM-CHARs.
_NAME = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# Characters an argument atom may hold outside brackets. Wider than ATOM-CHAR on purpose:
# flags (\Seen), LIST wildcards (% *) and "]" in mailbox names are atoms here too.
_ATOM_RUN = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\[]*')
# Inside brackets everything goes up to the matching "]", except controls and 8-bit bytes;
# quoted strings are skipped whole so a "]" inside one does not close the brackets.
_BRACKET_STOP = re.compile(rb'[\[\]"\x00-\x1f\x7f-\xff]')
_QUOTED = re.compile(rb'"([^"\\\r\n\x00]*(?:\\["\\][^"\\\r\n\x00]*)*)"')
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)
# A line that announces a non-synchronizing literal: its bytes follow without a "+".
_NONSYNC_AT_END = re.compile(rb"\{([0-9]+)\+\}\r?$")
_TAIL = 32  # bytes kept from a skipped line, enough to see a {N+} at its end

_SP, _LPAREN, _RPAREN, _LBRACE, _DQUOTE = 0x20, 0x28, 0x29, 0x7B, 0x22
_BACKSLASH, _LBRACKET, _RBRACKET, _TILDE, _CR = 0x5C, 0x5B, 0x5D, 0x7E, 0x0D

# Parser states.
_READY = "ready"  # between events: a new command (or line) starts here
_ARGS = "args"  # inside a command, after a literal: waiting for the rest of its line
_LITERAL = "literal"  # inside a command: waiting for the literal's bytes
_SKIP_LINE = "skip-line"  # discarding up to the next LF after an error
_SKIP_BYTES = "skip-bytes"  # discarding a non-synchronizing literal after an error


class _Reject(Exception):
    """Internal: the current command is malformed."""


def split_tag(line: bytes) -> str | None:
    """The tag a command line starts with, or None when it has no valid tag."""
    m = _TAG.match(line)
    if m is None or (m.end() < len(line) and line[m.end()] != _SP):
        return None
    return m.group().decode("ascii")


def _literal_size(digits: bytes) -> int:
    # int() refuses very long digit strings; anything past 20 digits is absurd anyway.
    digits = digits.lstrip(b"0") or b"0"
    return int(digits) if len(digits) <= 20 else 10**20


def _quoted_problem(line: bytes, i: int) -> str:
    """Why the quoted string starting at line[i] did not match."""
    n = len(line)
    k = i + 1
    while k < n:
        c = line[k]
        if c == _BACKSLASH:
            if k + 1 < n and line[k + 1] not in (_DQUOTE, _BACKSLASH):
                return "Unknown escape in quoted string"
            k += 2
            continue
        if c == 0:
            return "NUL in quoted string"
        k += 1
    return "Unterminated quoted string"


def _atom_char_problem(c: int) -> str:
    if c >= 0x80:
        return "8-bit data in atom"
    return "Invalid characters in atom"


class CommandParser:
    """Turns the bytes a client sends into events: `Command`, `Line`, `ParseError`,
    `ContinuationNeeded`. See the module docstring for the rules."""

    def __init__(self, *, max_line: int = 65536, max_literal: int = 64 * 1024 * 1024):
        self.max_line = max_line
        self.max_literal = max_literal
        self.mode = COMMAND
        self._buf = bytearray()
        self._pos = 0  # first byte not consumed yet
        self._scan = 0  # where the search for the next LF resumes (never before _pos)
        self._state = _READY
        self._skip = 0  # bytes left to discard in _SKIP_BYTES
        self._skip_literals = False  # whether a skipped line may announce a {N+}
        self._tail = b""  # last bytes of the line being skipped
        self._reset_command()

    # -- public API -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append bytes from the client. Empty data is ignored."""
        if data:
            self._buf += data

    def expect_line(self) -> None:
        """From the next event on, return whole lines as `Line` (a command in progress
        finishes first)."""
        self.mode = LINE

    def expect_command(self) -> None:
        """From the next event on, parse commands (the default)."""
        self.mode = COMMAND

    @property
    def in_command(self) -> bool:
        """True while a command has started but not finished (e.g. inside a literal)."""
        return self._state in (_ARGS, _LITERAL)

    def next_event(self):
        """Return the next event, or None when more data is needed."""
        while True:
            state = self._state
            if state is _READY:
                self._compact()
                found = self._next_line()
                if found is None:
                    return self._check_unterminated()
                end, nxt = found
                if end - self._pos > self.max_line:
                    return self._too_long(end, nxt)
                if self.mode == LINE:
                    data = bytes(self._buf[self._pos : end])
                    self._pos = self._scan = nxt
                    return Line(data)
                self._start = self._pos
                event = self._segment(end, nxt, first=True)
            elif state is _ARGS:
                found = self._next_line()
                if found is None:
                    return self._check_unterminated()
                end, nxt = found
                if end - self._pos > self.max_line:
                    return self._too_long(end, nxt)
                event = self._segment(end, nxt, first=False)
            elif state is _LITERAL:
                end = self._pos + self._literal
                if len(self._buf) < end:
                    return None
                with memoryview(self._buf) as view:
                    value = String(view[self._pos : end], literal=True)
                self._stack[-1].append(value)
                self._pos = self._scan = end
                self._need_sep = True
                self._state = _ARGS
                continue
            elif state is _SKIP_BYTES:
                self._discard_bytes()
                if self._skip:
                    return None
                self._state = _SKIP_LINE
                continue
            else:  # _SKIP_LINE
                if not self._discard_line():
                    return None
                continue
            if event is not None:
                return event

    # -- lines ------------------------------------------------------------------------------

    def _next_line(self):
        """(end, next) of the line starting at _pos: end excludes the CRLF or LF, next is
        just after it. None if no LF has arrived yet."""
        lf = self._buf.find(b"\n", self._scan)
        if lf < 0:
            self._scan = len(self._buf)
            return None
        end = lf
        if end > self._pos and self._buf[end - 1] == _CR:
            end -= 1
        return end, lf + 1

    def _check_unterminated(self):
        """An unterminated line longer than max_line is an error now, not when its LF comes:
        the parser must not buffer without bound."""
        if len(self._buf) - self._pos <= self.max_line + 1:  # + 1: a CR whose LF is late
            return None
        return self._too_long(None, None)

    def _too_long(self, end: int | None, nxt: int | None) -> ParseError:
        """Reject the line at _pos for its length: the complete line ending at `end`, or
        (end None) everything buffered, the rest of the line being skipped as it comes."""
        buf = self._buf
        in_command = self._state is _ARGS or self.mode == COMMAND
        if self._state is _ARGS:
            tag, start = self._tag, self._start
        else:
            tag, start = None, self._pos
            space = buf.find(b" ", start, start + 1024) if in_command else -1
            if space > start:
                tag = split_tag(bytes(buf[start:space]))
        self._reset_command()
        self._skip_literals = in_command
        text = f"Line too long (limit {self.max_line} bytes)"
        if nxt is None:
            error = ParseError(tag, text, bytes(buf[start:]))
            self._tail = bytes(buf[max(start, len(buf) - _TAIL) :])
            buf.clear()
            self._pos = self._scan = 0
            self._state = _SKIP_LINE
            return error
        error = ParseError(tag, text, bytes(buf[start:nxt]))
        line_end = bytes(buf[max(self._pos, end - _TAIL) : end])
        self._pos = self._scan = nxt
        self._after_failed_line(line_end)
        return error

    def _discard_line(self) -> bool:
        """Discard up to and including the next LF; True once it has been seen."""
        buf = self._buf
        lf = buf.find(b"\n", self._pos)
        if lf < 0:
            self._tail = (self._tail + bytes(buf[max(self._pos, len(buf) - _TAIL) :]))[-_TAIL:]
            buf.clear()
            self._pos = self._scan = 0
            return False
        tail = (self._tail + bytes(buf[max(self._pos, lf - _TAIL) : lf]))[-_TAIL:]
        self._tail = b""
        self._pos = self._scan = lf + 1
        self._after_failed_line(tail)
        return True

    def _discard_bytes(self) -> None:
        available = len(self._buf) - self._pos
        if available < self._skip:
            self._skip -= available
            self._buf.clear()
            self._pos = self._scan = 0
        else:
            self._pos = self._scan = self._pos + self._skip
            self._skip = 0

    def _after_failed_line(self, line_end: bytes) -> None:
        """After the last line of a rejected command: skip the bytes of a non-synchronizing
        literal it announced (the client sends them without waiting), else start afresh."""
        m = _NONSYNC_AT_END.search(line_end) if self._skip_literals else None
        if m:
            self._skip = _literal_size(m.group(1))
            self._state = _SKIP_BYTES
        else:
            self._state = _READY

    def _compact(self) -> None:
        """Drop consumed bytes, rarely enough that pipelined input stays linear."""
        pos = self._pos
        if not pos:
            return
        if pos == len(self._buf):
            self._buf.clear()
        elif pos > 4096 and 2 * pos > len(self._buf):
            del self._buf[:pos]
        else:
            return
        self._scan -= pos
        self._pos = 0

    # -- commands ---------------------------------------------------------------------------

    def _reset_command(self) -> None:
        self._start = 0
        self._tag: str | None = None
        self._name = ""
        self._uid = False
        self._stack: list[list] = [[]]
        self._need_sep = False
        self._literal = 0

    def _segment(self, end: int, nxt: int, first: bool):
        """Parse one line of a command: the first, or the rest after a literal. Returns the
        event it produces, or None when a non-synchronizing literal follows."""
        line = bytes(self._buf[self._pos : end])
        try:
            if first:
                i = self._head(line)
            elif b"\r" in line:
                raise _Reject("Bare CR in command line")
            else:
                i = 0
            return self._arguments(line, i, nxt)
        except _Reject as e:
            return self._fail(str(e), line, nxt)

    def _head(self, line: bytes) -> int:
        """Read the tag and command name; return where the arguments start."""
        if not line:
            raise _Reject("Empty command line")
        m = _TAG.match(line)
        if m is None or (m.end() < len(line) and line[m.end()] != _SP):
            raise _Reject("Invalid tag")
        self._tag = m.group().decode("ascii")
        if b"\r" in line:
            raise _Reject("Bare CR in command line")
        name, i = self._read_name(line, m.end(), "Missing command")
        uid = name == "UID"
        if uid:
            name, i = self._read_name(line, i, "Missing command after UID")
        self._name, self._uid = name, uid
        self._need_sep = True
        return i

    @staticmethod
    def _read_name(line: bytes, i: int, missing: str) -> tuple[str, int]:
        if i + 1 >= len(line):  # nothing, or just a space, after what came before
            raise _Reject(missing)
        m = _NAME.match(line, i + 1)
        if m is None or (m.end() < len(line) and line[m.end()] != _SP):
            raise _Reject("Invalid command name")
        return m.group().decode("ascii").upper(), m.end()

    def _arguments(self, line: bytes, i: int, nxt: int):
        stack = self._stack
        need_sep = self._need_sep
        n = len(line)
        while i < n:
            c = line[i]
            if c == _SP:
                i += 1
                need_sep = False
                continue
            if c == _RPAREN:
                if len(stack) == 1:
                    raise _Reject("Unexpected ')'")
                stack.pop()
                i += 1
                need_sep = True
                continue
            if need_sep:
                raise _Reject("Missing space between arguments")
            if c == _LPAREN:
                inner: list = []
                stack[-1].append(inner)
                stack.append(inner)
                i += 1
            elif c == _DQUOTE:
                m = _QUOTED.match(line, i)
                if m is None:
                    raise _Reject(_quoted_problem(line, i))
                body = m.group(1)
                if b"\\" in body:
                    body = _UNESCAPE.sub(rb"\1", body)
                stack[-1].append(String(body))
                i = m.end()
                need_sep = True
            elif c == _LBRACE or (c == _TILDE and line[i + 1 : i + 2] == b"{"):
                return self._literal_marker(line, i, nxt)
            else:
                j = self._atom_end(line, i)
                try:
                    stack[-1].append(Atom(line[i:j].decode("ascii")))
                except UnicodeDecodeError:
                    raise _Reject("8-bit data in atom") from None
                i = j
                need_sep = True
        if len(stack) > 1:
            raise _Reject("Missing ')'")
        return self._complete(nxt)

    @staticmethod
    def _atom_end(line: bytes, i: int) -> int:
        """End of the atom starting at i, bracketed parts included."""
        n = len(line)
        j = i
        while True:
            j = _ATOM_RUN.match(line, j).end()
            if j < n and line[j] == _LBRACKET:
                j = CommandParser._bracket_end(line, j)
                continue
            break
        if j < n and line[j] not in (_SP, _LPAREN, _RPAREN):
            raise _Reject(_atom_char_problem(line[j]))
        if j == i:  # only reachable through an invalid first character
            raise _Reject("Invalid characters in atom")
        return j

    @staticmethod
    def _bracket_end(line: bytes, j: int) -> int:
        """Index just past the "]" matching the "[" at j."""
        depth = 0
        while True:
            m = _BRACKET_STOP.search(line, j)
            if m is None:
                raise _Reject("Missing ']'")
            k = m.start()
            c = line[k]
            if c == _LBRACKET:
                depth += 1
                j = k + 1
            elif c == _RBRACKET:
                depth -= 1
                j = k + 1
                if depth == 0:
                    return j
            elif c == _DQUOTE:
                q = _QUOTED.match(line, k)
                if q is None:
                    raise _Reject(_quoted_problem(line, k))
                j = q.end()
            else:
                raise _Reject(_atom_char_problem(c))

    def _literal_marker(self, line: bytes, i: int, nxt: int):
        """`{N}`, `{N+}` or `~{N}` at line[i], which must end the line."""
        start = i + 2 if line[i] == _TILDE else i + 1
        close = line.find(b"}", start)
        spec = line[start:close] if close >= 0 else b""
        nonsync = spec.endswith(b"+")
        digits = spec[:-1] if nonsync else spec
        if close < 0 or not digits.isdigit():
            raise _Reject("Invalid literal size")
        if close + 1 != len(line):
            raise _Reject("Unexpected data after literal size")
        size = _literal_size(digits)
        if size > self.max_literal:
            shown = str(size) if size < 10**20 else "more than 10^20"
            raise _Reject(f"Literal too large: {shown} bytes (limit {self.max_literal})")
        self._pos = self._scan = nxt
        self._literal = size
        self._state = _LITERAL
        return None if nonsync else ContinuationNeeded(size)

    def _complete(self, nxt: int) -> Command:
        command = Command(
            tag=self._tag,
            name=self._name,
            uid=self._uid,
            args=tuple(self._stack[0]),
            raw=bytes(self._buf[self._start : nxt]),
        )
        self._pos = self._scan = nxt
        self._state = _READY
        self._reset_command()
        return command

    def _fail(self, text: str, line: bytes, nxt: int) -> ParseError:
        error = ParseError(self._tag, text, bytes(self._buf[self._start : nxt]))
        self._pos = self._scan = nxt
        self._reset_command()
        self._skip_literals = True
        self._after_failed_line(line)
        return error
