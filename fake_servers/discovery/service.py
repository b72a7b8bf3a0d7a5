"""The discovery fakes of one scenario, started and stopped together on the shared loop.

One DNS server (UDP+TCP), one HTTPS and one plain-HTTP server, all on 127.0.0.1 with
OS-assigned ports, all writing to the provider's wire log, the token endpoint writing tokens
into the provider's mail store.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Mapping, TypeVar

from ..mailstore import Account, MailStore
from ..runtime import runtime
from ..tls import CertKind, TLSMaterial, sni_context_factory
from ..wire import WireLog
from .autodiscover import Autodiscover
from .autodiscover import url_for as autodiscover_url
from .config import DiscoveryConfig, Port
from .dns_server import RecordingDNSFactory, listen
from .http_server import DEFAULT_BODY_CAP, WebServer
from .names import connect_to_entries
from .oauth import Grant, TokenEndpoint
from .router import Router
from .zone import Zone

T = TypeVar("T")
MAIL_LISTENERS = ("imap", "imaps", "smtp", "smtps")


class Discovery:
    """DNS, Autodiscover, autoconfig and OAuth fakes for one scenario.

    ``endpoints`` are the mail fakes' real ports by listener name (``{"imaps": 40001, …}``):
    answers and SRV records that name a listener carry its port. A listener the provider does
    not run is given a loopback port where nothing listens.
    """

    def __init__(self, config: DiscoveryConfig, *, tls: TLSMaterial, wire: WireLog, store: MailStore,
                 endpoints: Mapping[str, int], body_cap: int = DEFAULT_BODY_CAP) -> None:
        self.config = config
        self.tls = tls
        self.wire = wire
        self.store = store
        self.endpoints = dict(endpoints)
        self.body_cap = body_cap
        self.runtime = runtime()
        self.names: tuple[str, ...] = config.all_names()
        self._ports: dict[str, int] = {}
        self._listeners: list[Any] = []
        self._web: list[WebServer] = []
        self._dns: RecordingDNSFactory | None = None
        self.oauth: TokenEndpoint | None = None
        self.autodiscover: Autodiscover | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Discovery":
        if not self._ports:
            for name in MAIL_LISTENERS:
                if name not in self.endpoints:
                    self.endpoints[name] = _closed_port()
            self.runtime.call(self._start_in_loop)
        return self

    def _start_in_loop(self) -> None:
        reactor = self.runtime.reactor
        cfg = self.config
        self.autodiscover = Autodiscover(port_of=self.port_of, check_basic=self._check_basic, body_cap=self.body_cap)
        if cfg.oauth is not None:
            self.oauth = TokenEndpoint(cfg.oauth, self.store, current_run=lambda: self.wire.run, body_cap=self.body_cap)
            self.oauth.prepare()
        router = Router(cfg, port_of=self.port_of, autodiscover=self.autodiscover, oauth=self.oauth)
        https = WebServer(router, scheme="https", wire=self.wire, reactor=reactor, tls_context=self._tls_context(),
                          body_cap=self.body_cap)
        http = WebServer(router, scheme="http", wire=self.wire, reactor=reactor, body_cap=self.body_cap)
        self._ports["https"] = https.listen()
        self._ports["http"] = http.listen()
        self._web = [https, http]
        # The zone needs the web ports (SRV records may point at them), so it comes last.
        self._dns = RecordingDNSFactory(self._zone(), self.wire, cfg.ttl)
        udp, tcp = listen(reactor, self._dns)
        self._listeners = [udp, tcp]
        self._ports["dns"] = udp.getHost().port

    def _tls_context(self):
        cert = self.tls.server_cert_for_names(self.names)
        by_name = {host: self.tls.server_cert_for_names([host], CertKind(kind))
                   for host, kind in self.config.certs.items()}
        return sni_context_factory(cert, by_name)

    def _zone(self) -> Zone:
        cfg = self.config
        srv = [(r.name, r.target, self.port_of(r.port) if r.target != "." else 0, r.priority, r.weight)
               for r in cfg.srv]
        mx = [(cfg.domain, r.preference, r.host) for r in cfg.mx_records()]
        return Zone(self.names, srv=srv, mx=mx, aaaa=cfg.aaaa)

    def stop(self) -> None:
        """Stop listening and drop every connection (waits until they are gone); safe twice."""
        if self._listeners or self._web:
            self.runtime.call(self._stop_in_loop)

    def _stop_in_loop(self):
        from twisted.internet.defer import DeferredList

        waits = [port.stopListening() for port in self._listeners]
        waits += [server.stop() for server in self._web]
        if self._dns is not None:
            waits.append(self._dns.abort_all())
        self._listeners, self._web = [], []
        return DeferredList([w for w in waits if w is not None])

    def __enter__(self) -> "Discovery":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- where clients go ----------------------------------------------------------------------

    def port_of(self, port: Port) -> int:
        """A port number from a config value: a number, or a listener's name."""
        if isinstance(port, int):
            return port
        if port in self._ports:
            return self._ports[port]
        return self.endpoints[port]

    @property
    def https_port(self) -> int:
        return self._ports["https"]

    @property
    def http_port(self) -> int:
        return self._ports["http"]

    @property
    def dns_port(self) -> int:
        return self._ports["dns"]

    @property
    def dns_address(self) -> str:
        """``127.0.0.1:PORT``: MAILCONFORM_DNS (UDP and TCP on the same port)."""
        return f"127.0.0.1:{self.dns_port}"

    @property
    def connect_to(self) -> dict[tuple[str, int], tuple[str, int]]:
        """Where each (name, port) really is: 443 and 80 go to the web fakes, and the fakes' own
        ports stay as they are (a name resolves to 127.0.0.1, as the fake DNS answers)."""
        mapping: dict[tuple[str, int], tuple[str, int]] = {}
        own = sorted({self.https_port, self.http_port, *self.endpoints.values()})
        for name in self.names:
            mapping[(name, 443)] = ("127.0.0.1", self.https_port)
            mapping[(name, 80)] = ("127.0.0.1", self.http_port)
            for port in own:
                mapping[(name, port)] = ("127.0.0.1", port)
        return mapping

    @property
    def connect_to_entries(self) -> list[str]:
        """curl's ``--connect-to`` entries (``name:443:127.0.0.1:PORT``)."""
        return connect_to_entries(self.connect_to)

    @property
    def connect_to_env(self) -> str:
        """MAILCONFORM_CONNECT_TO: the entries, comma-separated."""
        return ",".join(self.connect_to_entries)

    @property
    def token_url(self) -> str | None:
        """MAILCONFORM_OAUTH_TOKEN_URL (with the real port: it works through the fake DNS and
        through the connect-to map alike); None when the scenario has no OAuth."""
        oauth = self.config.oauth
        if oauth is None:
            return None
        return f"https://{oauth.host}:{self.https_port}{oauth.path}"

    def autodiscover_url(self, host: str | None = None) -> str:
        return autodiscover_url(host or self.config.autodiscover_host)

    @property
    def ca_file(self):
        return self.tls.ca_file

    # -- state, from any thread ------------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return self.runtime.call_here_or_there(fn, *args)

    def oauth_grants(self) -> list[Grant]:
        """Every token the endpoint issued, in order."""
        return self.call(lambda: list(self.oauth.grants) if self.oauth else [])

    def _check_basic(self, user: str, password: str) -> bool:
        account: Account | None = self.store.account(user)
        return account is not None and (password == account.password or password in account.app_passwords)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
