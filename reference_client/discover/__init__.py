"""Account discovery: from an address to the IMAP and SMTP servers to use, or a clear refusal.

Used when ``MAILCONFORM_AUTODISCOVER_EMAIL`` is set and ``MAILCONFORM_IMAP_HOST`` is not.
The methods, in this order, the first usable answer winning:

1. **Mozilla autoconfig** (:mod:`.autoconfig`): ``https://autoconfig.<domain>/mail/config-v1.1.xml``,
   then ``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml``. First because it is
   a plain GET that sends nothing about the user beyond the address, and names TLS per server.
2. **Exchange POX Autodiscover** (:mod:`.pox`): ``https://<domain>/…``,
   ``https://autodiscover.<domain>/…``, the http redirect step, the ``_autodiscover._tcp`` SRV
   record; redirects followed over https only, at most 10.
3. **RFC 6186 SRV records**: ``_imaps._tcp`` (implicit TLS) then ``_imap._tcp`` (STARTTLS);
   ``_submissions._tcp`` then ``_submission._tcp``; a target of "." means the service is not
   offered (RFC 6186 §3.4) and that record is skipped. A target outside the address's domain
   is not used (DNS answers are not authenticated, RFC 6186 §6).

Never used: a server without TLS (autoconfig ``socketType`` plain, POX ``SSL`` off or
``Encryption`` None), whatever the method. When the only servers found were such, the run
stops with exit status 3 naming them; when nothing was found, with "autodiscovery failed"
(exit 1) naming each step's failure. A redirect to a Microsoft national cloud stops
discovery at once, reported as unsupported (exit 1). Every request has a timeout, and the
whole discovery a budget (:class:`Limits`): a provider whose endpoints all hang is given up
on in bounded time. SMTP comes from the same answer as IMAP; when that answer has none, the
RFC 6186 submission records are asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..errors import EXIT_ERROR, EXIT_INSECURE, ClientError
from . import autoconfig
from .dnsquery import DnsError, DnsServer
from .names import Names
from .pox import Pox, domain_of, within
from .settings import Found, Server, Stop, StepFailed
from .web import Deadline, Web

__all__ = ["Found", "Limits", "Names", "Server", "discover"]


@dataclass(frozen=True)
class Limits:
    total: float = 20.0  # seconds for the whole discovery
    request: float = 4.0  # seconds per HTTP socket operation
    dns: float = 2.0  # seconds per DNS question


def discover(address: str, *, names: Names, ca_file: str | None, username: str, password: str,
             notify: Callable[[str], None] = lambda line: None, limits: Limits = Limits(),
             clock: Callable[[], float] = time.monotonic) -> Found:
    """The servers for ``address``; ClientError when there are none to use."""
    if "@" not in address or not domain_of(address):
        from ..errors import EXIT_USAGE

        raise ClientError(EXIT_USAGE, f"MAILCONFORM_AUTODISCOVER_EMAIL is not an address: {address!r}")
    deadline = Deadline(limits.total, clock)
    web = Web(names, ca_file, deadline=deadline, timeout=limits.request)
    domain = domain_of(address)
    failures: list[str] = []
    refused: list[str] = []
    found: Found | None = None

    def usable(result: Found) -> Found | None:
        if result.refused:
            refused.extend(f"{r} (from {result.via})" for r in result.refused)
        return result if result.imap is not None else None

    steps: list[tuple[str, Callable[[], Found]]] = []
    notes: list[str] = []
    for url in autoconfig.urls(address, domain):
        steps.append((url, lambda url=url: autoconfig.fetch(web, url, domain, notes)))
    pox = Pox(web, names.dns, username=username, password=password, notify=notify, dns_timeout=limits.dns)
    steps.append(("Autodiscover", lambda: pox.discover(address)))
    steps.append(("RFC 6186 SRV", lambda: rfc6186(names.dns, domain, limits.dns, deadline)))
    try:
        for what, step in steps:
            if deadline.expired:
                failures.append(f"out of time before {what}")
                break
            try:
                found = usable(step())
            except StepFailed as exc:
                failures.append(str(exc))
                continue
            if found is not None:
                break
    except Stop as stop:
        raise stop.error from None
    for line in notes:
        notify(line)
    if found is None:
        if refused:
            raise ClientError(EXIT_INSECURE, f"autodiscovery for {address} found only servers without TLS: "
                                             f"{'; '.join(refused)}; refusing to use a server without TLS")
        raise ClientError(EXIT_ERROR, f"autodiscovery failed for {address} after {deadline.elapsed:.1f} s: "
                                      + "; ".join(failures))
    if found.smtp is None and not deadline.expired and not found.via.startswith("RFC 6186"):
        try:
            smtp = rfc6186(names.dns, domain, limits.dns, deadline, want="smtp").smtp
        except StepFailed:
            smtp = None
        if smtp is not None:
            found = Found(found.imap, smtp, found.via + f"; SMTP from SRV {smtp.host}", found.refused)
    for line in refused:
        notify(f"not used (no TLS): {line}")
    return found


IMAP_SERVICES = (("_imaps._tcp", "tls"), ("_imap._tcp", "starttls"))
SMTP_SERVICES = (("_submissions._tcp", "tls"), ("_submission._tcp", "starttls"))


def rfc6186(dns: DnsServer | None, domain: str, timeout: float, deadline: Deadline,
            want: str = "imap") -> Found:
    """IMAP (and SMTP) from RFC 6186 SRV records; StepFailed when there is no IMAP one."""
    if dns is None:
        raise StepFailed("RFC 6186 SRV: no DNS server configured (MAILCONFORM_DNS)")
    failures: list[str] = []

    def first(services) -> Server | None:
        for service, security in services:
            name = f"{service}.{domain}"
            try:
                records = dns.srv(name, timeout=max(0.05, min(timeout, deadline.remaining)))
            except DnsError as exc:
                failures.append(f"SRV {name}: {exc}")
                continue
            if not records:
                failures.append(f"SRV {name}: no record")
                continue
            offered = [r for r in records if r.available]
            if not offered:
                failures.append(f'SRV {name}: "." (not available)')
                continue
            for record in offered:
                if within(record.target, {domain}):
                    return Server(record.target, record.port, security)
                failures.append(f"SRV {name}: target {record.target} is outside {domain}; not used")
        return None

    imap = first(IMAP_SERVICES) if want == "imap" else None
    smtp = first(SMTP_SERVICES)
    if want == "imap" and imap is None:
        raise StepFailed("; ".join(failures))
    return Found(imap, smtp, f"RFC 6186 SRV records of {domain}")
