"""Helpers for the discovery tests: a started provider + discovery fakes, and real clients for them.

Clients are real peers: curl over https with ``--cacert`` and ``--connect-to``, Python's
urllib inside ``resolve_to_fakes``, DNS over UDP/TCP sockets. Nothing sleeps: every wait is
a socket read with a timeout.
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from fake_servers import FakeProvider
from fake_servers.discovery import Discovery, discovery_config, resolve_to_fakes
from fake_servers.imap.config import ImapConfig

from .conftest import PASSWORD, USER

TIMEOUT = 5.0
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def pox_body(email: str = USER, schema: str = OUTLOOK_NS) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\r\n<Autodiscover xmlns="{REQUEST_NS}">\r\n<Request>\r\n'
            f"<EMailAddress>{email}</EMailAddress>\r\n<AcceptableResponseSchema>{schema}</AcceptableResponseSchema>\r\n"
            "</Request>\r\n</Autodiscover>\r\n").encode()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Env:
    """A running provider and its discovery fakes, with clients pointed at them."""

    def __init__(self, provider: FakeProvider, discovery: Discovery) -> None:
        self.provider = provider
        self.discovery = discovery
        self.ca_file = str(provider.ca_file)

    @property
    def wire(self):
        return self.provider.wire

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def request(self, url: str, *, data: bytes | None = None, method: str | None = None,
                headers: dict[str, str] | None = None, redirects: bool = False) -> Reply:
        """urllib inside resolve_to_fakes; redirects are not followed unless asked."""
        handlers: list[Any] = [urllib.request.HTTPSHandler(context=self.context())]
        if not redirects:
            handlers.append(_NoRedirect())
        opener = urllib.request.build_opener(*handlers)
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        with resolve_to_fakes(self.discovery.connect_to):
            try:
                with opener.open(req, timeout=TIMEOUT) as response:
                    return Reply(response.status, dict(response.headers), response.read())
            except urllib.error.HTTPError as exc:
                return Reply(exc.code, dict(exc.headers), exc.read())

    def pox(self, host: str, email: str = USER, *, headers: dict[str, str] | None = None, **options) -> Reply:
        return self.request(f"https://{host}/autodiscover/autodiscover.xml", data=pox_body(email),
                            headers={"Content-Type": "text/xml", **(headers or {})}, **options)

    def curl(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        command = ["curl", "-sS", "--max-time", str(timeout), "--cacert", self.ca_file]
        for entry in self.discovery.connect_to_entries:
            command += ["--connect-to", entry]
        return subprocess.run(command + list(args), capture_output=True, text=True, timeout=timeout + 5)

    def http_records(self, server: str | None = None):
        """(connection, command) pairs of HTTP requests, in order."""
        return [(c, cmd) for c, cmd in self.wire.commands(protocol="http")
                if server is None or c.server == server]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def make_env():
    """Factory: ``make_env({"autodiscover": {...}})`` starts a provider (one account) and its
    discovery fakes; everything is stopped at teardown."""
    started: list[Env] = []

    def make(table: dict | None = None, *, account: bool = True, imap: ImapConfig | None = None,
             **account_options) -> Env:
        provider = FakeProvider(imap=imap).start() if imap else FakeProvider().start()
        if account:
            provider.add_account(USER, PASSWORD, **account_options)
        config = discovery_config({"domain": "example.test", **(table or {})})
        discovery = Discovery(config, tls=provider.tls, wire=provider.wire, store=provider.store,
                              endpoints={"imap": provider.imap_port, "imaps": provider.imaps_port})
        env = Env(provider, discovery)
        started.append(env)
        discovery.start()
        return env

    yield make
    for env in started:
        env.discovery.stop()
        env.provider.stop()


# -- DNS over real sockets ------------------------------------------------------------------


def dns_query(port: int, name: str, qtype: str, *, tcp: bool = False, msg_id: int = 4711):
    """One query over UDP or TCP; returns the parsed twisted.names Message."""
    from twisted.names import dns

    message = dns.Message(id=msg_id, recDes=1)
    message.addQuery(name.encode(), getattr(dns, qtype))
    data = message.toStr()
    if tcp:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(struct.pack("!H", len(data)) + data)
            size = struct.unpack("!H", _recv_exactly(sock, 2))[0]
            raw = _recv_exactly(sock, size)
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendto(data, ("127.0.0.1", port))
            raw = sock.recv(65535)
    reply = dns.Message()
    reply.fromStr(raw)
    return reply


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


__all__ = ["Env", "OUTLOOK_NS", "PASSWORD", "REQUEST_NS", "Reply", "TIMEOUT", "USER", "dns_query", "make_env",
           "pox_body"]
