"""What the discovery fakes served and what the client did with it, as the discovery checks read it.

The runner copies the provider's discovery facts (the ``[discovery]`` config, the real port of
each listener, the OAuth tokens issued) into the observation; the rest is read back from the
wire log: every HTTP request and its answer (:func:`exchanges`, with the redirect each answer
offered: a 3xx ``Location``, a POX ``redirectUrl`` or ``redirectAddr``), every name the client
looked up, and which mail servers discovery named (:meth:`DiscoveryFacts.named_servers`).
Nothing here opens a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit
from xml.sax.saxutils import unescape

if TYPE_CHECKING:
    from fake_servers.discovery import DiscoveryConfig, Grant, RecordedRequest
    from fake_servers.wire import CommandRecord, ConnectionRecord

MAIL_LISTENERS = {"imap": "imap", "imaps": "imap", "smtp": "smtp", "smtps": "smtp"}  # listener -> protocol
PLAINTEXT_LISTENERS = ("imap", "smtp")  # the ports without implicit TLS
# RFC 6186 §3 services (and RFC 8314 §5.1 submissions): which of the fakes' listeners each one is.
SRV_SERVICES = {"_imap._tcp": ("imap", "imap", "starttls"), "_imaps._tcp": ("imap", "imaps", "ssl"),
                "_submission._tcp": ("smtp", "smtp", "starttls"), "_submissions._tcp": ("smtp", "smtps", "ssl")}
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"
_SOCKET = {"SSL": "ssl", "STARTTLS": "starttls", "plain": "none"}


@dataclass(frozen=True)
class MailServer:
    """One IMAP or SMTP server a discovery answer names."""

    protocol: str  # "imap" or "smtp"
    host: str
    port: int
    listener: str | None  # the fake listening on that port (imap, imaps, smtp, smtps), None: nothing
    security: str  # "ssl", "starttls" or "none" (plaintext only)
    source: str  # which answer names it, for evidence

    def show(self) -> str:
        at = f"{self.host}:{self.port}"
        return f"{self.protocol.upper()} {at} ({self.security}{'' if self.listener else ', nothing listens'})"


@dataclass(frozen=True)
class NotAvailable:
    """An RFC 6186 SRV record whose target is "." (the service is not available)."""

    owner: str  # _imap._tcp.example.test
    protocol: str
    listener: str  # the fake that would serve it


@dataclass
class DiscoveryFacts:
    """The discovery side of one scenario, copied while the provider was up."""

    config: "DiscoveryConfig"
    ports: dict[str, int]  # listener -> real port: imap, imaps, smtp, smtps, https, http, dns
    grants: list["Grant"] = field(default_factory=list)  # every token the OAuth endpoint issued

    # -- listeners ---------------------------------------------------------------------------

    def port_of(self, port: int | str) -> int:
        return port if isinstance(port, int) else self.ports.get(port, 0)

    def listener_of(self, port: int | None) -> str | None:
        """The mail listener at ``port``, or None."""
        for name, number in self.ports.items():
            if number == port and name in MAIL_LISTENERS:
                return name
        return None

    # -- what discovery named ---------------------------------------------------------------------

    def named_servers(self) -> list[MailServer]:
        """Every IMAP/SMTP server any answer of the scenario names: Autodiscover settings,
        autoconfig entries, RFC 6186 SRV records (not the "." ones)."""
        cfg = self.config
        found: list[MailServer] = []
        for key, answer in cfg.autodiscover.items():
            kind = answer.then if answer.answer == "unauthorized" else answer.answer
            if kind != "success":
                continue
            for protocol, setting in (("imap", answer.imap), ("smtp", answer.smtp)):
                if setting is not None:
                    found.append(self._server(protocol, setting.host, setting.port, setting.security,
                                              f"Autodiscover answer of {key}"))
        if cfg.autoconfig.enabled:
            for what, servers in (("incoming", cfg.autoconfig.incoming), ("outgoing", cfg.autoconfig.outgoing)):
                for i, server in enumerate(servers):
                    if server.type not in ("imap", "smtp"):
                        continue
                    host = server.hostname.replace("%EMAILDOMAIN%", cfg.domain).lower()
                    found.append(self._server(server.type, host, server.port, _SOCKET[server.socket],
                                              f"autoconfig {what}[{i}]"))
        for record in cfg.srv:
            service = record.name.split(".", 2)
            kind = SRV_SERVICES.get(".".join(service[:2]))
            if kind is None or record.target == ".":
                continue
            protocol, _, security = kind
            found.append(self._server(protocol, record.target, record.port, security, f"SRV {record.name}"))
        return found

    def _server(self, protocol: str, host: str, port: int | str, security: str, source: str) -> MailServer:
        number = self.port_of(port)
        return MailServer(protocol, host.rstrip(".").lower(), number, self.listener_of(number), security, source)

    def not_available(self) -> list[NotAvailable]:
        out = []
        for record in self.config.srv:
            kind = SRV_SERVICES.get(".".join(record.name.split(".", 2)[:2]))
            if kind is not None and record.target == ".":
                out.append(NotAvailable(record.name, kind[0], kind[1]))
        return out

    def web_hosts(self) -> set[str]:
        """Names the client reaches for discovery itself (Autodiscover, autoconfig, OAuth,
        redirect targets): looking them up says nothing about which mail server it uses."""
        cfg = self.config
        hosts = {cfg.domain, cfg.autodiscover_host, cfg.autoconfig_host, cfg.oauth_host}
        for key, answer in cfg.autodiscover.items():
            if "." in key:
                hosts.add(key)
            for url in (answer.url, answer.location):
                if url:
                    hosts.add((urlsplit(url).hostname or "").lower())
            hosts.update(answer.hosts)
            if answer.address:
                other = answer.address.rpartition("@")[2].lower()
                hosts.update({other, f"autodiscover.{other}", f"autoconfig.{other}"})
        for endpoint in cfg.autoconfig.endpoints.values():
            if endpoint.location:
                hosts.add((urlsplit(endpoint.location).hostname or "").lower())
        for record in cfg.srv:
            if record.name.startswith("_autodiscover.") and record.target != ".":
                hosts.add(record.target)
        from fake_servers.discovery import NATIONAL_CLOUDS

        hosts.update(NATIONAL_CLOUDS.values())
        return {h for h in hosts if h}

    def guessed_hosts(self) -> set[str]:
        """Mail-server names the zone answers for that no answer names: a client that uses one
        guessed (imap.<domain>, smtp.<domain>) instead of using what discovery said."""
        named = {s.host for s in self.named_servers()}
        mx = {r.host for r in self.config.mx_records()}
        domains = {self.config.domain} | {h.removeprefix("autodiscover.") for h in self.web_hosts()
                                          if h.startswith("autodiscover.")}
        guesses = {f"{label}.{d}" for d in domains for label in ("imap", "smtp", "mail")}
        return guesses & set(self.config.all_names()) - named - self.web_hosts() - mx


def facts_of(provider) -> DiscoveryFacts | None:
    """The discovery facts of a started provider (None when it has no ``[discovery]``)."""
    discovery = getattr(provider, "discovery", None)
    if discovery is None:
        return None
    ports = {name: discovery.port_of(name) for name in ("imap", "imaps", "smtp", "smtps")}
    ports.update(https=discovery.https_port, http=discovery.http_port, dns=discovery.dns_port)
    return DiscoveryFacts(discovery.config, ports, discovery.oauth_grants())


# -- the HTTP record -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redirect:
    kind: str  # "302" (any 3xx with Location), "redirectUrl" or "redirectAddr"
    target: str  # a URL, or an address for redirectAddr

    @property
    def scheme(self) -> str | None:
        return None if self.kind == "redirectAddr" else urlsplit(self.target).scheme.lower()

    def show(self) -> str:
        return f"{self.kind} {self.target}" if self.kind != "302" else f"HTTP redirect to {self.target}"


@dataclass
class Exchange:
    """One HTTP request the web fakes received, and what it was answered."""

    conn: "ConnectionRecord"
    cmd: "CommandRecord"
    request: "RecordedRequest"
    scheme: str  # "https" or "http": which fake it reached
    status: int | None  # None: never answered (a stall, a reset)
    answered_at: float | None
    body: bytes  # of the answer
    redirect: Redirect | None

    @property
    def at(self) -> float:
        return self.cmd.at

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.request.host}{self.request.target}"

    @property
    def credentials(self) -> bool:
        return bool(self.cmd.credentials)

    def email(self) -> str | None:
        """The address a POX request (or the http GET step's query) asks about."""
        found = re.search(rb"<EMailAddress>\s*([^<]*?)\s*</EMailAddress>", self.request.body, re.I)
        if found:
            return unescape(found.group(1).decode("utf-8", "replace")).lower()
        query = dict(part.split("=", 1) for part in urlsplit(self.request.target).query.split("&") if "=" in part)
        for key in ("emailaddress", "Email", "email"):
            if key in query:
                from urllib.parse import unquote

                return unquote(query[key]).lower()
        return None

    def reaches(self, redirect: Redirect) -> bool:
        """Whether this request is where ``redirect`` sent the client."""
        if redirect.kind == "redirectAddr":
            return self.request.path.lower() == AUTODISCOVER_PATH and self.email() == redirect.target.lower()
        target = urlsplit(redirect.target)
        return (self.scheme == target.scheme.lower() and self.request.host == (target.hostname or "").lower()
                and self.request.path.lower() == (target.path or "/").lower())


def exchanges(wire) -> list[Exchange]:
    """Every HTTP request on the wire with its answer, in the order the requests arrived."""
    from fake_servers.discovery import recorded_request

    out: list[Exchange] = []
    for conn in wire.select(protocol="http"):
        commands = list(conn.commands)
        answers = _answers(conn.server_bytes(), [c.name.upper() == "HEAD" for c in commands])
        for n, cmd in enumerate(commands):
            response = conn.responses[n] if n < len(conn.responses) else None
            status, headers, body = answers[n] if n < len(answers) else (None, {}, b"")
            if status is None and response is not None and str(response.status).isdigit():
                status = int(response.status)
            out.append(Exchange(conn, cmd, recorded_request(cmd.raw), conn.server, status,
                                response.at if response is not None else None, body,
                                _redirect(status, headers, body)))
    out.sort(key=lambda e: e.at)
    return out


def _answers(data: bytes, heads: list[bool]) -> list[tuple[int | None, dict[str, str], bytes]]:
    """The HTTP responses in a connection's server bytes, in order (interim 1xx skipped)."""
    out: list[tuple[int | None, dict[str, str], bytes]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        lines = data[pos:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        headers = {}
        for line in lines[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        pos = end + 4
        if status is not None and 100 <= status < 200:
            continue
        length = int(headers.get("content-length", "0") or 0) if headers.get("content-length", "").isdigit() else 0
        if len(out) < len(heads) and heads[len(out)]:
            length = 0
        out.append((status, headers, data[pos:pos + length]))
        pos += length
    return out


_ACTION = re.compile(rb"<Action>\s*(redirectUrl|redirectAddr)\s*</Action>", re.I)
_TARGET = re.compile(rb"<Redirect(Url|Addr)>\s*([^<]*?)\s*</Redirect(?:Url|Addr)>", re.I)


def _redirect(status: int | None, headers: dict[str, str], body: bytes) -> Redirect | None:
    if status is not None and 300 <= status < 400 and headers.get("location"):
        return Redirect("302", headers["location"])
    action = _ACTION.search(body)
    target = _TARGET.search(body)
    if action and target:
        kind = "redirectUrl" if action.group(1).lower() == b"redirecturl" else "redirectAddr"
        return Redirect(kind, unescape(target.group(2).decode("utf-8", "replace")))
    return None


def followed(found: Iterable[Exchange]) -> list[tuple[Exchange, Exchange]]:
    """(the answer that redirected, the request that followed it) for every redirect the client
    followed, in order. Each request follows at most one redirect: the earliest one still
    unfollowed that pointed where it went, so a loop counts one hop per request."""
    pending: list[Exchange] = []
    pairs: list[tuple[Exchange, Exchange]] = []
    events: list[tuple[float, int, Exchange]] = []
    for e in found:
        events.append((e.at, 1, e))
        if e.redirect is not None and e.answered_at is not None:
            events.append((e.answered_at, 0, e))
    events.sort(key=lambda item: (item[0], item[1]))
    for _, kind, e in events:
        if kind == 0:
            pending.append(e)
            continue
        match = next((p for p in pending if e.reaches(p.redirect)), None)
        if match is not None:
            pending.remove(match)
            pairs.append((match, e))
    return pairs


# -- names the client looked up ----------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    name: str
    port: int | None  # in-process lookups carry the port; DNS queries do not
    how: str  # "DNS A query on connection #3", "resolved in-process (run 1)"
    run: int
    conn: Any = None  # the DNS connection record, for an excerpt


def lookups(obs) -> list[Lookup]:
    """Address lookups: A/AAAA queries on the fake DNS, and what an in-process client resolved."""
    out: list[Lookup] = []
    for conn in obs.wire.select(protocol="dns"):
        for cmd in conn.commands:
            if cmd.name.upper() in ("A", "AAAA", "ANY"):
                name = cmd.redacted.split(" ", 1)[-1].rstrip(".").lower()
                out.append(Lookup(name, None, f"DNS {cmd.name} query (connection #{conn.id})", conn.run, conn))
    for outcome in obs.outcomes:
        for name, port in getattr(outcome, "lookups", ()) or ():
            out.append(Lookup(str(name).rstrip(".").lower(), port, f"resolved in-process, run {outcome.run}",
                              outcome.run))
    return out
