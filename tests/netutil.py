"""Helpers for tests that talk to the fakes over real sockets: a raw IMAP client and error capture.

Everything waits on socket reads with timeouts, never on sleeps.
"""

from __future__ import annotations

import socket
import ssl
import struct

import imapclient
import pytest

from .conftest import PASSWORD, USER

TIMEOUT = 5.0


class RawClient:
    """A byte-level IMAP client: what it sends and receives is kept for comparison."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1",
                 timeout: float = TIMEOUT, server_hostname: str = "localhost") -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=server_hostname)
        self.sock = sock
        self.buffer = b""
        self.sent = bytearray()
        self.received = bytearray()

    # -- sending ------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += data

    def command(self, tag: str, text: str | bytes) -> list[bytes]:
        """Send one command and return every line up to and including its tagged response."""
        body = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + body + b"\r\n")
        return self.until_tagged(tag)

    # -- receiving ----------------------------------------------------------------------

    def _fill(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed; unread: {self.buffer!r}")
        self.received += data
        self.buffer += data
        return data

    def line(self) -> bytes:
        """One line, CRLF included."""
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def until_tagged(self, tag: str) -> list[bytes]:
        """Lines up to the tagged response of ``tag``, literals folded into their line."""
        lines = []
        prefix = tag.encode() + b" "
        while True:
            line = self.line()
            while line.endswith(b"}\r\n") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1 : -3].rstrip(b"+"))
                line += self.exactly(size) + self.line()
            lines.append(line)
            if line.startswith(prefix):
                return lines

    def read_to_end(self) -> bytes:
        """Everything until the server closes (EOFError and resets propagate to the caller
        only as the return of what arrived before a clean close)."""
        while True:
            try:
                self._fill()
            except EOFError:
                data, self.buffer = self.buffer, b""
                return data

    def closed_by_server(self) -> bool:
        """True once the server closed cleanly (EOF), with nothing more to read."""
        try:
            self._fill()
        except EOFError:
            return True
        return False

    # -- TLS ----------------------------------------------------------------------------

    def starttls(self, ctx: ssl.SSLContext, tag: str = "S1", server_hostname: str = "localhost") -> list[bytes]:
        lines = self.command(tag, "STARTTLS")
        assert lines[-1].startswith(f"{tag} OK".encode()), lines
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return lines

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self) -> None:
        """Close with a TCP RST, as a crashed client does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tagged_status(lines: list[bytes], tag: str) -> bytes:
    """The status word of ``tag``'s tagged response."""
    last = lines[-1]
    assert last.startswith(tag.encode() + b" "), lines
    return last.split(b" ", 2)[1]


def client_context(provider) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(provider.ca_file))


def imaps(provider, *, timeout: float = TIMEOUT, login: bool = True) -> imapclient.IMAPClient:
    """imapclient over implicit TLS, verifying the run's CA, logged in as the test user."""
    client = imapclient.IMAPClient("127.0.0.1", port=provider.imaps_port, ssl=True,
                                   ssl_context=client_context(provider), timeout=timeout)
    if login:
        client.login(USER, PASSWORD)
    return client


def plain_client(provider, *, timeout: float = TIMEOUT) -> RawClient:
    """A raw client on the plaintext port, greeting read."""
    client = RawClient(provider.imap_port, timeout=timeout)
    client.greeting = client.line()
    return client


def logged_in(provider, *, tls: bool = True, timeout: float = TIMEOUT) -> RawClient:
    """A raw client logged in as the test user (implicit TLS by default)."""
    if tls:
        client = RawClient(provider.imaps_port, tls=client_context(provider), timeout=timeout)
        client.greeting = client.line()
    else:
        client = plain_client(provider, timeout=timeout)
    lines = client.command("L1", f'LOGIN "{USER}" "{PASSWORD}"')
    assert tagged_status(lines, "L1") == b"OK", lines
    return client


class TwistedErrors(list):
    """Failures Twisted logged (an exception escaping a protocol callback lands here)."""

    def __call__(self, event) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            self.append(event)

    def texts(self) -> list[str]:
        from twisted.logger import formatEvent

        out = []
        for event in self:
            failure = event.get("log_failure")
            out.append(formatEvent(event) + ("\n" + failure.getTraceback() if failure is not None else ""))
        return out


@pytest.fixture
def twisted_errors():
    """Collects errors Twisted logs during the test; the test fails if any were logged."""
    from twisted.logger import globalLogPublisher

    errors = TwistedErrors()
    globalLogPublisher.addObserver(errors)
    yield errors
    globalLogPublisher.removeObserver(errors)
    assert not errors, "Twisted logged errors:\n" + "\n".join(errors.texts())
