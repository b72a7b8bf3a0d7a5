"""Helpers for tests that talk to the SMTP fake over real sockets: smtplib clients, a raw client, error capture.

Everything waits on socket reads with timeouts or on the wire record's events, never on sleeps.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import socket
import ssl

import pytest

from .conftest import PASSWORD, USER
from .netutil import RawClient

TIMEOUT = 5.0
MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: Hello\r\n"
           b"Message-ID: <smtp-1@example.test>\r\n\r\nHello Bob.\r\n")


def context(provider) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(provider.ca_file))


def nodelay(client: smtplib.SMTP) -> smtplib.SMTP:
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def plaintext(provider, *, timeout: float = TIMEOUT) -> smtplib.SMTP:
    """smtplib on the plaintext port, EHLO sent."""
    client = nodelay(smtplib.SMTP("127.0.0.1", provider.smtp_port, local_hostname="client.test", timeout=timeout))
    client.ehlo()
    return client


def starttls(provider, *, login: bool = False, timeout: float = TIMEOUT) -> smtplib.SMTP:
    """smtplib after STARTTLS (verifying the run's CA) and the second EHLO; logged in if asked."""
    client = plaintext(provider, timeout=timeout)
    client.starttls(context=context(provider))
    client.ehlo()
    if login:
        client.login(USER, PASSWORD)
    return client


def implicit(provider, *, login: bool = False, timeout: float = TIMEOUT) -> smtplib.SMTP:
    """smtplib on the implicit-TLS port, EHLO sent; logged in if asked."""
    client = nodelay(smtplib.SMTP_SSL("127.0.0.1", provider.smtps_port, local_hostname="client.test",
                                      context=context(provider), timeout=timeout))
    client.ehlo()
    if login:
        client.login(USER, PASSWORD)
    return client


def plain_b64(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class SmtpRaw(RawClient):
    """A byte-level SMTP client: replies are lists of lines (CRLF included)."""

    def reply(self) -> list[bytes]:
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def cmd(self, text: str | bytes) -> list[bytes]:
        self.send((text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.reply()

    def code(self, text: str | bytes) -> int:
        return int(self.cmd(text)[-1][:3])

    def starttls(self, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> list[bytes]:  # type: ignore[override]
        lines = self.cmd("STARTTLS")
        assert lines[-1].startswith(b"220"), lines
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return lines


def raw(provider, *, implicit: bool = False, timeout: float = TIMEOUT, greeting: bool = True) -> SmtpRaw:
    """A raw client on the plaintext (or implicit-TLS) port, greeting read."""
    if implicit:
        client = SmtpRaw(provider.smtps_port, tls=context(provider), timeout=timeout)
    else:
        client = SmtpRaw(provider.smtp_port, timeout=timeout)
    if greeting:
        client.greeting = client.reply()
    return client


def logged_in_raw(provider, *, timeout: float = TIMEOUT) -> SmtpRaw:
    """A raw client on the implicit-TLS port after EHLO and AUTH PLAIN."""
    client = raw(provider, implicit=True, timeout=timeout)
    client.cmd("EHLO client.test")
    assert client.code(f"AUTH PLAIN {plain_b64(USER, PASSWORD)}") == 235
    return client


def smtp_connections(provider, count: int = 1, **where) -> list:
    """The first ``count`` SMTP connections, each waited for until the fake saw it end."""
    conns = provider.wire.wait_for_connections(count, TIMEOUT, protocol="smtp", **where)
    assert len(conns) >= count, provider.wire.transcripts()
    for conn in conns[:count]:
        assert conn.wait_closed(TIMEOUT), conn.transcript()
    return conns[:count]


class LoggedErrors(logging.Handler):
    """Errors the SMTP fake or asyncio logged (an exception escaping a callback lands here)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        return [self.format(r) for r in self.records]


@pytest.fixture
def server_errors():
    """Collects errors logged by the SMTP fake and asyncio; the test fails if any were logged
    (a test that provokes one on purpose empties ``server_errors.records``)."""
    handler = LoggedErrors()
    loggers = [logging.getLogger("mailconform.smtp"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
    assert not handler.records, "the SMTP fake logged errors:\n" + "\n".join(handler.texts())
