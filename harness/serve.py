"""``mailconform serve``: a fake provider for a person testing a client by hand."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TextIO

from fake_servers.provider_config import ConfigError, ProviderSpec, load_file, load_persona

DEMO_ACCOUNT = {"username": "user@example.test", "password": "password",
                "folders": [{"name": "INBOX", "generate": 20}, {"name": "Sent", "special_use": ["\\Sent"]},
                            {"name": "Drafts", "special_use": ["\\Drafts"]},
                            {"name": "Trash", "special_use": ["\\Trash"]}]}


def spec_for(source: str | None, persona: str | None) -> ProviderSpec:
    if persona:
        spec = load_persona(persona)
    elif source:
        spec = load_file(source)
    else:
        raise ConfigError("name a provider file or a --persona")
    if not spec.data.get("accounts"):
        spec.data = {**spec.data, "accounts": [DEMO_ACCOUNT]}
    return spec


def serve(spec: ProviderSpec, *, out: TextIO = sys.stdout, quiet: bool = False,
          stop: threading.Event | None = None) -> int:
    """Run until ``stop`` is set (Ctrl-C/SIGTERM set it from the command line)."""
    provider = spec.build()
    lock = threading.Lock()
    if not quiet:
        def live(record, line: str) -> None:
            with lock:
                print(f"[{record.server}#{record.session}] {line}", file=out, flush=True)

        provider.wire.listener = live
    stop = stop or threading.Event()
    with provider:
        accounts = provider.call(lambda: [(a.username, a.password, a.app_passwords)
                                          for a in provider.store.accounts.values()])
        print(f"mailconform fake provider ({spec.where})", file=out)
        print(f"  IMAP     {provider.host}:{provider.imap_port}  (plaintext, STARTTLS "
              f"{'offered' if provider.imap_config.starttls else 'not offered'})", file=out)
        print(f"  IMAPS    {provider.host}:{provider.imaps_port}  (implicit TLS)", file=out)
        print(f"  SMTP     {provider.host}:{provider.smtp_port}  (submission, STARTTLS "
              f"{'offered' if provider.smtp_config.starttls else 'not offered'})", file=out)
        print(f"  SMTPS    {provider.host}:{provider.smtps_port}  (submission, implicit TLS)", file=out)
        if provider.discovery is not None:
            found = provider.discovery
            print(f"  DNS      {found.dns_address}  (UDP and TCP: {', '.join(found.names[:4])}, ...)", file=out)
            print(f"  HTTPS    127.0.0.1:{found.https_port}  HTTP 127.0.0.1:{found.http_port}  (Autodiscover, "
                  "autoconfig; curl --connect-to entries below)", file=out)
            if found.token_url:
                print(f"  OAuth    {found.token_url}", file=out)
            for entry in found.connect_to_entries:
                if entry.split(":")[1] in ("443", "80"):
                    print(f"  connect-to {entry}", file=out)
        print(f"  CA file  {provider.ca_file}  (trust only this)", file=out)
        for username, password, app in accounts:
            extra = f"  app passwords: {', '.join(app)}" if app else ""
            print(f"  account  {username} / {password}{extra}", file=out)
        print("Ctrl-C stops.", file=out, flush=True)
        while not stop.wait(0.5):
            pass
    print("stopped.", file=out, flush=True)
    return 0


def install_stop_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
