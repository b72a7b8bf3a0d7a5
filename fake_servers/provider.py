"""A fake mail provider: accounts, IMAP and SMTP servers, TLS material, faults and the wire log, together.

>>> from fake_servers import FakeProvider
>>> with FakeProvider() as provider:
...     account = provider.add_account("alice@example.test", "secret")
...     provider.imap_port, provider.imaps_port, provider.smtp_port, provider.smtps_port, provider.ca_file
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from .faults import FaultEngine, Rule
from .imap.config import ImapConfig
from .mailstore import Account, MailStore
from .runtime import runtime
from .smtp.config import SmtpConfig
from .smtp.policy import Counters
from .smtp.records import Submission, SubmissionLog
from .tls import CertKind, TLSMaterial, TLSVersions
from .wire import DEFAULT_KEEP_SERVER_BYTES, WireLog

if TYPE_CHECKING:
    from .discovery import Discovery, DiscoveryConfig

T = TypeVar("T")


class FakeProvider:
    """Everything one scenario run talks to. Servers bind 127.0.0.1 on OS-assigned ports.

    ``imap_port`` is plaintext with STARTTLS (as the config says), ``imaps_port`` implicit TLS;
    ``smtp_port`` and ``smtps_port`` the same for SMTP submission.
    The store and the wire log live on the runtime's loop thread: read and change them with
    :meth:`call` from other threads (the helpers here do).
    """

    def __init__(
        self,
        *,
        store: MailStore | None = None,
        imap: ImapConfig | None = None,
        smtp: SmtpConfig | None = None,
        faults: Iterable[Rule | dict] = (),
        seed: int = 0,
        cert: CertKind | str = CertKind.VALID,
        tls_versions: TLSVersions | str = TLSVersions.MODERN,
        tls: TLSMaterial | None = None,
        host: str = "127.0.0.1",
        keep_server_bytes: int = DEFAULT_KEEP_SERVER_BYTES,
        discovery: "DiscoveryConfig | None" = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"fake servers bind loopback only, not {host!r}")
        self.host = host
        self.store = store or MailStore()
        self.imap_config = imap or ImapConfig()
        # Each server works on its own copy: fault rules change these ("capabilities"), never
        # the config the caller passed in.
        self._plain_config = dataclasses.replace(self.imap_config)
        self._implicit_config = dataclasses.replace(self.imap_config, starttls=False, login_disabled=False)
        self.smtp_config = smtp or SmtpConfig()
        self._smtp_plain_config = dataclasses.replace(self.smtp_config)
        self._smtp_implicit_config = dataclasses.replace(self.smtp_config, starttls=False)
        self._submissions = SubmissionLog()
        self._smtp_counters = Counters()  # daily quotas and greylisting, shared by both ports
        rules = [r if isinstance(r, Rule) else Rule.from_dict(r, f"faults[{i}]") for i, r in enumerate(faults)]
        self.faults = FaultEngine(rules, seed=seed)
        self.seed = seed
        self._own_tls = tls is None
        self.tls = tls or TLSMaterial()
        # With discovery, clients reach the mail servers by the scenario's names (imap.example.test):
        # the certificate names them too.
        self.cert = self.tls.server_cert(cert) if discovery is None else \
            self.tls.server_cert_for_names(discovery.all_names(), cert)
        self.tls_versions = TLSVersions(tls_versions)
        self.wire = WireLog(keep_server_bytes)
        self.runtime = runtime()
        self._ports: dict[str, Any] = {}
        self._factories: list = []
        self._smtp_servers: dict[str, Any] = {}
        # DNS, Autodiscover, autoconfig and OAuth for the scenario's names: started after the
        # mail servers (their answers carry the real ports), on the same TLS, wire and store.
        self.discovery_config = discovery
        self.discovery: "Discovery | None" = None  # set by start() when there is a config

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeProvider":
        self.runtime.call(self._start_in_loop)
        try:
            self.runtime.run(self._start_smtp())
            if self.discovery_config is not None:
                self._start_discovery()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_in_loop(self) -> None:
        from .imap.server import ImapServerFactory

        reactor = self.runtime.reactor
        context = self.cert.twisted_context_factory(self.tls_versions)
        common = dict(store=self.store, wire=self.wire, faults=self.faults, tls_context=context,
                      reactor=reactor, provider_configs=self._server_configs)
        plain = ImapServerFactory(name="imap", config=self._plain_config, implicit_tls=False, **common)
        implicit = ImapServerFactory(name="imaps", config=self._implicit_config, implicit_tls=True, **common)
        interface = "127.0.0.1" if self.host == "localhost" else self.host
        self._ports["imap"] = reactor.listenTCP(0, plain, interface=interface)
        self._ports["imaps"] = reactor.listenSSL(0, implicit, context, interface=interface)
        self._factories = [plain, implicit]

    async def _start_smtp(self) -> None:
        from .smtp.policy import SubmissionPolicy
        from .smtp.server import SmtpServer

        context = self.cert.ssl_context(self.tls_versions)
        interface = "127.0.0.1" if self.host == "localhost" else self.host
        configs = [self._smtp_plain_config, self._smtp_implicit_config]
        for name, config, implicit in (("smtp", configs[0], False), ("smtps", configs[1], True)):
            server = SmtpServer(name=name, store=self.store, config=config,
                                policy=SubmissionPolicy(config, self._smtp_counters), wire=self.wire,
                                faults=self.faults, submissions=self._submissions, ssl_context=context,
                                implicit_tls=implicit, loop=self.runtime.loop, provider_configs=configs)
            await server.start(interface)
            self._smtp_servers[name] = server

    def _start_discovery(self) -> None:
        from .discovery import Discovery

        endpoints = {name: self.port(name) for name in ("imap", "imaps", "smtp", "smtps")
                     if name in self._ports or name in self._smtp_servers}
        self.discovery = Discovery(self.discovery_config, tls=self.tls, wire=self.wire, store=self.store,
                                   endpoints=endpoints).start()

    async def _stop_smtp(self) -> None:
        servers, self._smtp_servers = list(self._smtp_servers.values()), {}
        for server in servers:
            await server.stop()

    def stop(self) -> None:
        """Stop listening and drop every connection; safe to call twice."""
        if self.discovery is not None:
            self.discovery.stop()
        if self._ports:
            self.runtime.call(self._stop_in_loop)
        if self._smtp_servers:
            self.runtime.run(self._stop_smtp())
        if self._own_tls:
            self.tls.close()

    def _stop_in_loop(self):
        from twisted.internet.defer import DeferredList

        waits = [port.stopListening() for port in self._ports.values()]
        self._ports.clear()
        waits += [factory.abort_all() for factory in self._factories]  # fire once every connection is gone
        return DeferredList([w for w in waits if w is not None])

    @property
    def _server_configs(self) -> list[ImapConfig]:
        return [self._plain_config, self._implicit_config]

    @property
    def _smtp_configs(self) -> list[SmtpConfig]:
        return [self._smtp_plain_config, self._smtp_implicit_config]

    def __enter__(self) -> "FakeProvider":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- where clients connect -------------------------------------------------------------

    def port(self, name: str) -> int:
        if name in self._smtp_servers:
            return self._smtp_servers[name].port
        return self._ports[name].getHost().port

    @property
    def imap_port(self) -> int:
        return self.port("imap")

    @property
    def imaps_port(self) -> int:
        return self.port("imaps")

    @property
    def smtp_port(self) -> int:
        return self.port("smtp")

    @property
    def smtps_port(self) -> int:
        return self.port("smtps")

    @property
    def ca_file(self):
        return self.tls.ca_file

    # -- state, from any thread ------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop thread (where the store lives) and return its result."""
        return self.runtime.call_here_or_there(fn, *args)

    def add_account(self, username: str, password: str, **options) -> Account:
        return self.call(lambda: self.store.add_account(username, password, **options))

    def add_rule(self, rule: Rule | dict) -> None:
        rule = rule if isinstance(rule, Rule) else Rule.from_dict(rule)
        self.call(self.faults.add, rule)

    def next_run(self) -> int:
        """Mark a run boundary: later connections count as the next run; ``run`` rules fire."""
        def advance() -> int:
            from .imap import state_actions
            from .smtp.faults import apply_at_run

            self.wire.run += 1
            for _, action in self.faults.decide("run", {"run": self.wire.run}):
                state_actions.apply(action, self.store, None, self._server_configs)
                apply_at_run(action, self._smtp_configs)  # capabilities: the EHLO lines too
            return self.wire.run

        return self.call(advance)

    def change(self, actions: Iterable[dict]) -> None:
        """Apply state actions now (``uidvalidity``, ``expunge``, ``new_mail``, ``capabilities``
        for IMAP and SMTP alike), as a scenario does between two runs; each is a rule action in
        its data form."""
        parsed = [Rule.from_dict({"on": "run", **a}, f"change[{i}]").actions for i, a in enumerate(actions)]

        def apply() -> None:
            from .imap import state_actions
            from .smtp.faults import apply_at_run

            for group in parsed:
                for action in group:
                    state_actions.apply(action, self.store, None, self._server_configs)
                    apply_at_run(action, self._smtp_configs)

        self.call(apply)

    def submissions(self) -> list[Submission]:
        """Every end of DATA the SMTP fake received, accepted or not, in order (a copy; any thread)."""
        return self._submissions.snapshot()

    def mailboxes(self, username: str) -> dict[str, list[bytes]]:
        """A copy of an account's folders: name -> message bytes in UID order."""
        def copy() -> dict[str, list[bytes]]:
            account = self.store.account(username)
            if account is None:
                return {}
            return {name: [m.raw for m in folder.messages] for name, folder in account.folders.items()}

        return self.call(copy)

    def first_account(self) -> tuple[str, str] | None:
        def first():
            for account in self.store.accounts.values():
                return account.username, account.password
            return None

        return self.call(first)

    def closed_port(self) -> int:
        """A loopback port where nothing listens (for "connection refused" scenarios)."""
        import socket

        with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as sock:
            sock.bind((self.host if self.host != "localhost" else "127.0.0.1", 0))
            return sock.getsockname()[1]
