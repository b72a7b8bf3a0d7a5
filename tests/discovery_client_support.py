"""Discovery clients against real fakes: a provider whose certificate names the scenario's mail
hosts, its discovery fakes, and the client contract's environment for a discovery run.

Nothing sleeps: every wait is a socket read with a timeout.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fake_servers import FakeProvider
from fake_servers.discovery import Discovery, discovery_config, recorded_request
from fake_servers.imap.config import ImapConfig
from fake_servers.smtp.config import SmtpConfig
from fake_servers.tls import DEFAULT_HOSTS, TLSMaterial

from .conftest import PASSWORD, USER, sample_message

REPO = Path(__file__).resolve().parent.parent
# The mail hosts the scenarios below name: the IMAP/SMTP fakes' certificate must cover them,
# as a real provider's does (the discovery fakes' own certificate covers the web names).
MAIL_HOSTS = ("imap.example.test", "smtp.example.test", "mail.example.test", "imap.other.test",
              "imap.elsewhere.test", "mail.other.test")


@dataclass
class Http:
    scheme: str
    method: str
    host: str
    path: str
    target: str
    credentials: bool
    body: bytes
    run: int


class Env:
    def __init__(self, provider: FakeProvider, discovery: Discovery, home: Path) -> None:
        self.provider = provider
        self.discovery = discovery
        self.home = home

    @property
    def wire(self):
        return self.provider.wire

    def environ(self, **extra: str | None) -> dict[str, str]:
        """The contract's variables for a discovery run (no IMAP/SMTP host or port)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCONFORM_")}
        values = {
            "MAILCONFORM_SCENARIO": "test", "MAILCONFORM_RUN": str(self.provider.wire.run),
            "MAILCONFORM_USERNAME": USER, "MAILCONFORM_PASSWORD": PASSWORD, "MAILCONFORM_EMAIL": USER,
            "MAILCONFORM_CA_FILE": str(self.provider.ca_file),
            "MAILCONFORM_MAILDIR": str(self.home / "Maildir"), "MAILCONFORM_STATE_DIR": str(self.home / "state"),
            "MAILCONFORM_AUTODISCOVER_EMAIL": USER, "MAILCONFORM_DNS": self.discovery.dns_address,
            "MAILCONFORM_CONNECT_TO": self.discovery.connect_to_env,
        }
        if self.discovery.token_url:
            values["MAILCONFORM_OAUTH_TOKEN_URL"] = self.discovery.token_url
        values.update(extra)
        env.update({k: v for k, v in values.items() if v is not None})
        return env

    def run_client(self, **extra: str | None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "reference_client"], env=self.environ(**extra), cwd=REPO,
                              capture_output=True, text=True, timeout=90)

    def http(self) -> list[Http]:
        out = []
        for conn, cmd in self.wire.commands(protocol="http"):
            req = recorded_request(cmd.raw)
            out.append(Http(conn.server, req.method, req.host, req.path, req.target, bool(cmd.credentials),
                            req.body, conn.run))
        return out

    def urls(self) -> list[str]:
        return [f"{h.method} {h.scheme}://{h.host}{h.path}" for h in self.http()]

    def mail_connections(self, protocol: str = "imap") -> list:
        return self.wire.select(protocol=protocol)

    def dns_questions(self) -> list[str]:
        return [cmd.redacted for _, cmd in self.wire.commands(protocol="dns")]

    def stored(self) -> collections.Counter:
        found: collections.Counter = collections.Counter()
        for sub in (self.home / "Maildir").rglob("*"):
            if sub.is_dir() and sub.name in ("cur", "new"):
                found.update(f.read_bytes() for f in sub.iterdir() if f.is_file())
        return found

    def served(self, username: str = USER) -> collections.Counter:
        found: collections.Counter = collections.Counter()
        for messages in self.provider.mailboxes(username).values():
            found.update(messages)
        return found


@pytest.fixture
def make_env(tmp_path):
    """``make_env({...discovery table...})``: a provider with one account (3 messages in
    INBOX), its discovery fakes for example.test; all stopped at teardown."""
    started: list[tuple[Env, TLSMaterial]] = []

    def make(table: dict | None = None, *, imap: ImapConfig | None = None, smtp: SmtpConfig | None = None,
             messages: int = 3) -> Env:
        tls = TLSMaterial(hostnames=DEFAULT_HOSTS + MAIL_HOSTS)
        provider = FakeProvider(tls=tls, imap=imap, smtp=smtp).start()

        def fill():
            account = provider.store.add_account(USER, PASSWORD)
            for n in range(1, messages + 1):
                account.folder("INBOX").append(sample_message(n))

        provider.call(fill)
        config = discovery_config({"domain": "example.test", **(table or {})})
        discovery = Discovery(config, tls=provider.tls, wire=provider.wire, store=provider.store,
                              endpoints={name: provider.port(name) for name in ("imap", "imaps", "smtp", "smtps")})
        home = tmp_path / f"home{len(started)}"
        env = Env(provider, discovery, home)
        started.append((env, tls))
        discovery.start()
        return env

    yield make
    for env, tls in started:
        env.discovery.stop()
        env.provider.stop()
        tls.close()


__all__ = ["Env", "Http", "MAIL_HOSTS", "PASSWORD", "REPO", "USER", "make_env"]
