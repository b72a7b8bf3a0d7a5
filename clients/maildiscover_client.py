"""A discovery client that is not ours: ``maildiscover`` (PyPI), through the python adapter.

    mailconform run --client-python clients.maildiscover_client:run --features imap,smtp,autodiscover

maildiscover (``pip install 'mailconform[discovery-clients]'``) finds the servers for an
address by RFC 6186 SRV records (dnspython) and Mozilla autoconfig (requests); see
docs/clients.md for what it does and does not do. This adapter only points it at the run:

* dnspython asks ``MAILCONFORM_DNS`` (its default resolver is replaced for the call);
* requests trusts ``MAILCONFORM_CA_FILE`` only (``REQUESTS_CA_BUNDLE`` for the call) and goes
  to no proxy;
* names resolve to the fakes because the python adapter runs every callable inside
  ``fake_servers.discovery.resolve_to_fakes`` with the run's connect-to map (not repeated
  here: a nested map would keep the names looked up from the harness's record);

then calls ``maildiscover.get(address)`` as is and hands what it found to the reference
client's sync (and sending, when the outbox has mail): ``imaps`` is implicit TLS, ``imap``
STARTTLS (RFC 6186 ``_imap._tcp``, autoconfig ``STARTTLS``), ``submission`` STARTTLS and
``smtp`` implicit TLS (autoconfig ``SSL``). The process environment and dnspython's default
resolver are shared by threads, so calls are serialised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path

_lock = threading.Lock()
_ENV = {"REQUESTS_CA_BUNDLE": None, "CURL_CA_BUNDLE": None, "NO_PROXY": "*", "no_proxy": "*"}


class NothingDiscovered(Exception):
    """maildiscover found no IMAP server (it ignores entries without TLS, so this is also how
    a plaintext-only provider ends)."""


@contextlib.contextmanager
def _pointed_at_the_run(ctx):
    import dns.nameserver
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    if ctx.dns:
        host, _, port = str(ctx.dns).rpartition(":")
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host.strip("[]"), int(port))]
    resolver.lifetime = 5.0
    values = dict(_ENV, REQUESTS_CA_BUNDLE=str(ctx.ca_file) if ctx.ca_file else None, CURL_CA_BUNDLE=None)
    with _lock:
        saved_env = {key: os.environ.get(key) for key in values}
        saved_resolver = dns.resolver.default_resolver
        try:
            for key, value in values.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            dns.resolver.default_resolver = resolver
            yield
        finally:
            dns.resolver.default_resolver = saved_resolver
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


class _Collect(logging.Handler):
    """maildiscover logs each failed lookup at ERROR; kept as evidence instead of printed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname.lower()}: {record.getMessage()}")


def discover(ctx, log: list[str] | None = None):
    """What maildiscover finds for the run's address (a ``maildiscover.MailConfig``); what it
    logged meanwhile is appended to ``log``."""
    import maildiscover

    address = ctx.autodiscover_email or ctx.email or ctx.username
    logger = logging.getLogger("maildiscover")
    collect = _Collect()
    propagate = logger.propagate
    logger.addHandler(collect)
    logger.propagate = False
    try:
        with _pointed_at_the_run(ctx):
            return maildiscover.get(address)
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate
        if log is not None:
            log.extend(collect.lines)


def servers(found) -> tuple[tuple[str, int, str] | None, tuple[str, int, str] | None]:
    """(IMAP, SMTP) as (host, port, security), implicit TLS preferred."""
    def pick(*choices):
        for conf, security in choices:
            if conf is not None and conf.host and conf.port:
                return conf.host.rstrip(".").lower(), int(conf.port), security
        return None

    imap = pick((found.imaps, "tls"), (found.imap, "starttls"))
    smtp = pick((found.smtp, "tls"), (found.submission, "starttls"))
    return imap, smtp


def run(ctx) -> None:
    from reference_client.config import Config, SmtpConfig
    from reference_client.run import run as reference_run

    log: list[str] = []
    found = discover(ctx, log)
    imap, smtp = servers(found)
    print(f"maildiscover: {found.to_dict()}", file=sys.stderr)
    if imap is None:
        tried = "; ".join(log)[-2000:]
        raise NothingDiscovered(f"maildiscover found no IMAP server with TLS for {ctx.autodiscover_email}: "
                                f"{found.to_dict()}; it logged: {tried or 'nothing'}")
    ca_file = str(ctx.ca_file) if ctx.ca_file else None
    config = Config(host=imap[0], port=imap[1], security=imap[2], username=ctx.username, password=ctx.password,
                    ca_file=ca_file, maildir=Path(ctx.maildir), state_dir=Path(ctx.state_dir),
                    scenario=ctx.scenario, run=ctx.run)
    outgoing = None
    if smtp is not None and ctx.outbox and any(Path(ctx.outbox).glob("*.eml")):
        outgoing = SmtpConfig(host=smtp[0], port=smtp[1], security=smtp[2], username=ctx.username,
                              password=ctx.password, ca_file=ca_file, outbox=Path(ctx.outbox),
                              state_dir=Path(ctx.state_dir), email=ctx.email or "", scenario=ctx.scenario,
                              run=ctx.run)
    status = reference_run(config, outgoing, stdout=sys.stderr, stderr=sys.stderr)
    if status:
        sys.exit(status)
