"""RFC 822 / MIME lexing of header values: comments, atoms, quoted strings, domains."""

from __future__ import annotations

import re


# -- low-level RFC 822 tokens (RFC 5322 §3.2, MIME tokens of RFC 2045) ------------------------

# atext (RFC 5322 §3.2.3, 8-bit bytes included as real mail needs) and the MIME token.
_ATEXT = frozenset(b"!#$%&'*+-/=?^_`{|}~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") | frozenset(range(128, 256))
_WSP = frozenset(b" \t\r\n")
_ATEXT_RUN = re.compile(rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff]*")
_WORD_RUN = re.compile(rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff.]*")
_TOKEN_RUN = re.compile(rb"[!#$%&'*+\-^_`{|}~0-9A-Za-z\x80-\xff.]*")


class _Reader:
    """A cursor over a header value with RFC 822 lexing: comments, atoms, quoted strings.

    Return conventions follow the classic parser: a positive number when more data follows,
    0 at the end of the data, negative on a syntax error.
    """

    __slots__ = ("data", "pos", "end", "comment")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.comment = b""

    def more(self) -> int:
        return 1 if self.pos < self.end else 0

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < self.end else -1

    def skip_comment(self) -> int:
        """Skip a (nested) comment, remembering its text (unfolded, unescaped) as the
        last comment; an unclosed one keeps what came before its last fold or escape."""
        data, level = self.data, 1
        self.pos += 1
        chunk = self.pos
        out = bytearray()
        self.comment = b""
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x28:
                level += 1
            elif c == 0x29:
                level -= 1
                if level == 0:
                    out += data[chunk:self.pos]
                    self.comment = bytes(out)
                    self.pos += 1
                    return self.more()
            elif c == 0x0A:
                stop = self.pos - 1 if self.pos > chunk and data[self.pos - 1] == 0x0D else self.pos
                out += data[chunk:stop]
                self.comment = bytes(out)
                chunk = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] in (0x0D, 0x0A):
                    self.pos -= 1
                else:
                    out += data[chunk:self.pos - 1]
                    self.comment = bytes(out)
                    chunk = self.pos
            self.pos += 1
        return -1

    def skip_lwsp(self) -> int:
        data = self.data
        while self.pos < self.end:
            c = data[self.pos]
            if c in _WSP:
                self.pos += 1
            elif c == 0x28:
                if self.skip_comment() < 0:
                    return -1
            else:
                return 1
        return 0

    def _run(self, pattern: re.Pattern) -> bytes:
        run = pattern.match(self.data, self.pos).group()
        self.pos += len(run)
        return run

    def atom(self, out: bytearray) -> int:
        if self.peek() not in _ATEXT:
            return -1
        out += self._run(_ATEXT_RUN)
        return self.skip_lwsp()

    def dot_atom(self, out: bytearray) -> int:
        """atext runs joined by dots, with blanks allowed around the dots (domains)."""
        if self.peek() not in _ATEXT:
            return -1
        while True:
            run = self._run(_ATEXT_RUN)
            if not run:
                return -1
            out += run
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            if self.data[self.pos] != 0x2E:
                return 1
            self.pos += 1
            out.append(0x2E)
            if self.skip_lwsp() <= 0:
                return -1

    def local_atoms(self, out: bytearray) -> int:
        """A local part's dot-atom, non-strict: dots may repeat or end it ("a..b", "a."),
        but a blank may not follow a dot."""
        ret = -1
        data = self.data
        while True:
            while data[self.pos] == 0x2E:
                out.append(0x2E)
                self.pos += 1
                if self.pos >= self.end:
                    return 0
                ret = 1
            if data[self.pos] == 0x40:
                return ret
            ret = self.atom(out)
            if ret <= 0 or data[self.pos] != 0x2E:
                return ret

    def token(self, out: bytearray) -> int:
        out += self._run(_TOKEN_RUN)
        return self.skip_lwsp()

    def quoted_string(self, out: bytearray) -> int:
        """The content of a quoted string, unescaped and unfolded.

        Without a closing quote it fails, keeping what preceded the last escape or fold.
        """
        data = self.data
        self.pos += 1
        chunk = self.pos
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x22:
                out += data[chunk:self.pos]
                self.pos += 1
                return self.skip_lwsp()
            if c == 0x0A:
                stop = self.pos - 1 if self.pos > chunk and data[self.pos - 1] == 0x0D else self.pos
                out += data[chunk:stop]
                chunk = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                out += data[chunk:self.pos - 1]
                chunk = self.pos
            self.pos += 1
        return -1

    def phrase(self, out: bytearray) -> int:
        """Words (atoms, quoted strings, dots) joined by single spaces."""
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 0x2E:
            return -1
        while True:
            if self.data[self.pos] == 0x22:
                ret = self.quoted_string(out)
            else:
                out += self._run(_WORD_RUN)
                ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            c = self.data[self.pos]
            if c not in _ATEXT and c != 0x22 and c != 0x2E:
                return self.skip_lwsp()
            out.append(0x20)

    def domain(self, out: bytearray) -> int:
        """After "@": a dot-atom or a [domain literal] (kept with its brackets)."""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1
        if self.data[self.pos] != 0x5B:
            return self.dot_atom(out)
        data, chunk = self.data, self.pos
        self.pos += 1
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x5B:
                return -1
            if c == 0x5D:
                self.pos += 1
                out += data[chunk:self.pos]
                return self.skip_lwsp()
            if c == 0x0A:
                stop = self.pos - 1 if data[self.pos - 1] == 0x0D else self.pos
                out += data[chunk:stop]
                chunk = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
            self.pos += 1
        return -1
