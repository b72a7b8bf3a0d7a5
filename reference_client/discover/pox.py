"""Exchange POX Autodiscover (``autodiscover.xml``), the steps in Microsoft's documented order.

For an address at ``<domain>``:

1. POST ``https://<domain>/autodiscover/autodiscover.xml``
2. POST ``https://autodiscover.<domain>/autodiscover/autodiscover.xml``
3. GET ``http://autodiscover.<domain>/autodiscover/autodiscover.xml``, without credentials or
   body: only a redirect (301/302/307/308) to an **https** URL is used, and that URL is
   then POSTed to; anything else the http step answers (settings included) is ignored.
4. the ``_autodiscover._tcp.<domain>`` SRV record: POST to ``https://<target>:<port>/…``.

Each POST carries the Outlook request schema (``requestschema/2006``, asking for
``responseschema/2006a``). Answers:

* ``settings``: the first IMAP and SMTP ``Protocol`` entries with TLS (``Encryption`` SSL or
  TLS, or ``SSL`` on); an entry without TLS is never used;
* ``redirectUrl`` (https only) and HTTP redirects (https only): followed; ``redirectAddr``:
  discovery starts again for the new address; at most :data:`MAX_REDIRECTS` of these in all;
* a redirect to a Microsoft national cloud (China, US Government, Germany): discovery stops,
  reported as unsupported (those clouds authenticate with their own Azure AD endpoints);
* a POX ``Error``, a 404, any other status, a timeout: this step failed, on to the next.

**Credentials and trust.** Nothing is sent with credentials unless the endpoint answers 401
with a ``Basic`` challenge, and then only over https to a *trusted* endpoint: one of steps 1
and 2, one reached from a trusted endpoint's answer, or any endpoint whose host is within the
account's domain. An endpoint reached only through an unauthenticated step (the http
redirect, the SRV record) on a host outside the domain is untrusted: it gets no credentials,
and its settings are used only when every server they name is within the account's domain
(otherwise whoever answered the http request could send the client, and its password, to a
server of their choosing).
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape

from .dnsquery import DnsError, DnsServer
from .settings import Found, Server, Stop, StepFailed, xml_ok
from .web import Response, Web, WebError

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
PATH = "/autodiscover/autodiscover.xml"
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)

# Microsoft's sovereign clouds, by the host names of their Autodiscover and Azure AD endpoints.
NATIONAL_CLOUDS = {
    "partner.outlook.cn": "China (operated by 21Vianet)",
    "chinacloudapi.cn": "China (operated by 21Vianet)",
    "office365.us": "US Government (GCC High / DoD)",
    "microsoftonline.us": "US Government (GCC High / DoD)",
    "outlook.de": "Germany",
    "microsoftonline.de": "Germany",
}


def national_cloud(host: str) -> str | None:
    host = host.lower().rstrip(".")
    for suffix, name in NATIONAL_CLOUDS.items():
        if host == suffix or host.endswith("." + suffix):
            return name
    return None


def request_body(address: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\r\n'
            f'<Autodiscover xmlns="{REQUEST_NS}">\r\n  <Request>\r\n'
            f"    <EMailAddress>{escape(address)}</EMailAddress>\r\n"
            f"    <AcceptableResponseSchema>{OUTLOOK_NS}</AcceptableResponseSchema>\r\n"
            "  </Request>\r\n</Autodiscover>\r\n").encode("utf-8")


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def within(host: str, domains) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


# -- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    imap: Server | None
    smtp: Server | None
    refused: tuple[str, ...]


@dataclass(frozen=True)
class RedirectUrl:
    url: str


@dataclass(frozen=True)
class RedirectAddr:
    address: str


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element, name: str):
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element, name: str):
    return [child for child in element if _local(child.tag) == name]


def _text(element, name: str) -> str:
    child = _child(element, name) if element is not None else None
    return (child.text or "").strip() if child is not None else ""


def parse_answer(body: bytes, where: str) -> Settings | RedirectUrl | RedirectAddr:
    """A POX response; StepFailed for an error or anything unusable."""
    if not xml_ok(body):
        raise StepFailed(f"{where}: an answer with a DTD; not parsed")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise StepFailed(f"{where}: the answer is not XML ({exc})") from None
    response = _child(root, "Response") if _local(root.tag) == "Autodiscover" else None
    if response is None:
        raise StepFailed(f"{where}: not an Autodiscover response")
    error = _child(response, "Error")
    if error is not None:
        raise StepFailed(f"{where}: Autodiscover error {_text(error, 'ErrorCode') or '?'}: "
                         f"{_text(error, 'Message') or 'no message'}")
    account = _child(response, "Account")
    if account is None:
        raise StepFailed(f"{where}: the answer has no Account")
    action = _text(account, "Action").lower()
    if action == "redirecturl":
        return RedirectUrl(_text(account, "RedirectUrl"))
    if action == "redirectaddr":
        return RedirectAddr(_text(account, "RedirectAddr"))
    if action not in ("settings", ""):
        raise StepFailed(f"{where}: unknown Action {action!r}")
    refused: list[str] = []
    found: dict[str, Server] = {}
    for protocol in _children(account, "Protocol"):
        kind = _text(protocol, "Type").upper()
        if kind not in ("IMAP", "SMTP") or kind in found:
            continue
        server = _protocol(protocol, kind, refused)
        if server is not None:
            found[kind] = server
    if "IMAP" not in found and not any(r.startswith("IMAP") for r in refused):
        raise StepFailed(f"{where}: the settings name no IMAP server")
    return Settings(found.get("IMAP"), found.get("SMTP"), tuple(refused))


def _protocol(protocol, kind: str, refused: list[str]) -> Server | None:
    host = _text(protocol, "Server").lower().rstrip(".")
    try:
        port = int(_text(protocol, "Port"))
    except ValueError:
        port = 0
    if not host or not 0 < port < 65536:
        return None
    encryption = _text(protocol, "Encryption").lower()
    ssl_on = _text(protocol, "SSL").lower() != "off"  # "on" is the default (MS-OXDSCLI)
    if encryption == "ssl":
        security = "tls"
    elif encryption == "tls":
        security = "starttls"
    elif encryption == "auto":
        security = "tls" if port in (993, 465) else "starttls"
    elif encryption in ("", ) and ssl_on:
        security = "tls"
    else:
        security = None
    if security is None:
        refused.append(f"{kind} {host}:{port} without TLS (SSL {'on' if ssl_on else 'off'}, "
                       f"Encryption {encryption or 'not given'})")
        return None
    return Server(host, port, security)


# -- the steps ------------------------------------------------------------------------------------


@dataclass
class _Endpoint:
    url: str
    trusted: bool
    how: str  # for messages: "https://example.test/…", "the http redirect", "SRV …"


class Pox:
    """One POX discovery for one address: the steps, the redirect budget, the trust rules."""

    def __init__(self, web: Web, dns: DnsServer | None, *, username: str, password: str,
                 notify: Callable[[str], None], dns_timeout: float = 2.0) -> None:
        self.web = web
        self.dns = dns
        self.username = username
        self.password = password
        self.notify = notify
        self.dns_timeout = dns_timeout
        self.redirects = 0
        self.failures: list[str] = []
        self.trusted_domains: set[str] = set()

    def discover(self, address: str) -> Found:
        """Settings for ``address``; StepFailed (naming every step's failure) when no step
        gave usable ones; Stop for a national cloud."""
        self.trusted_domains = {domain_of(address)}
        try:
            return self._address(address)
        except _OutOfRedirects as exc:
            self.failures.append(str(exc))
        raise StepFailed("; ".join(self.failures) or "Autodiscover found nothing")

    def _address(self, address: str) -> Found:
        domain = domain_of(address)
        for endpoint in self._endpoints(domain):
            if endpoint is None:
                continue
            try:
                answer = self._chain(endpoint, address)
            except StepFailed as exc:
                self.failures.append(str(exc))
                continue
            if isinstance(answer, RedirectAddr):
                return self._redirect_addr(answer.address, endpoint)
            return answer
        raise StepFailed("; ".join(self.failures))

    def _redirect_addr(self, address: str, endpoint: _Endpoint) -> Found:
        self._count(f"redirectAddr to {address}")
        if "@" not in address:
            raise StepFailed(f"Autodiscover at {endpoint.how}: redirectAddr {address!r} is not an address")
        self.notify(f"Autodiscover: redirectAddr to {address}")
        if endpoint.trusted:
            self.trusted_domains.add(domain_of(address))
        return self._address(address)

    def _endpoints(self, domain: str):
        # the domain's own endpoints are trusted unless an untrusted answer named the domain
        for url in (f"https://{domain}{PATH}", f"https://autodiscover.{domain}{PATH}"):
            yield _Endpoint(url, within(domain, self.trusted_domains), url)
        yield self._http_step(domain)
        yield self._srv_step(domain)

    def _judged(self, url: str, how: str) -> _Endpoint:
        """An endpoint reached through an unauthenticated step: trusted only within the domain."""
        host = urlsplit(url).hostname or ""
        return _Endpoint(url, within(host, self.trusted_domains), how)

    def _http_step(self, domain: str) -> _Endpoint | None:
        url = f"http://autodiscover.{domain}{PATH}"
        try:
            reply = self.web.request("GET", url)  # no credentials, no address: a redirect is all it may give
        except WebError as exc:
            self.failures.append(f"{url}: {exc}")
            return None
        if reply.status not in REDIRECTS:
            self.failures.append(f"{url}: HTTP {reply.status} (only a redirect to https is used from http)")
            return None
        target = urljoin(url, reply.header("Location"))
        if urlsplit(target).scheme != "https":
            self.failures.append(f"{url}: redirects to {target}, not https; not followed")
            return None
        self._national(url, urlsplit(target).hostname or "", "redirects to")
        self._count(f"the http redirect to {target}")
        endpoint = self._judged(target, f"{target} (from the unauthenticated http redirect)")
        self.notify(f"Autodiscover: the http step redirects to {target}"
                    + ("" if endpoint.trusted else f"; outside {domain}: no credentials go there, and its settings "
                       f"are used only if they name servers within {domain}"))
        return endpoint

    def _srv_step(self, domain: str) -> _Endpoint | None:
        name = f"_autodiscover._tcp.{domain}"
        if self.dns is None:
            self.failures.append(f"SRV {name}: no DNS server configured (MAILCONFORM_DNS)")
            return None
        try:
            records = [r for r in self.dns.srv(name, timeout=self._dns_timeout()) if r.available]
        except DnsError as exc:
            self.failures.append(f"SRV {name}: {exc}")
            return None
        if not records:
            self.failures.append(f"SRV {name}: no record")
            return None
        record = records[0]
        url = f"https://{record.target}{PATH}" if record.port == 443 else f"https://{record.target}:{record.port}{PATH}"
        return self._judged(url, f"{url} (from SRV {name})")

    def _dns_timeout(self) -> float:
        deadline = self.web.deadline
        return self.dns_timeout if deadline is None else max(0.05, min(self.dns_timeout, deadline.remaining))

    def _count(self, what: str) -> None:
        self.redirects += 1
        if self.redirects > MAX_REDIRECTS:
            raise _OutOfRedirects(f"Autodiscover: more than {MAX_REDIRECTS} redirects (the last: {what}); stopped")

    def _chain(self, endpoint: _Endpoint, address: str) -> Found | RedirectAddr:
        """POST to the endpoint and follow its redirects; the settings, or a redirectAddr."""
        url = endpoint.url
        while True:
            reply = self._post(url, address, endpoint)
            if reply.status in REDIRECTS:
                target = urljoin(url, reply.header("Location"))
                self._check_redirect(url, target, "an HTTP redirect")
                self._count(f"{url} redirects to {target}")
                url = target
                if not endpoint.trusted:  # still untrusted, unless it lands within the domain
                    endpoint = self._judged(url, endpoint.how)
                continue
            if reply.status != 200:
                raise StepFailed(f"{url}: HTTP {reply.status}")
            answer = parse_answer(reply.body, url)
            if isinstance(answer, RedirectUrl):
                self._check_redirect(url, answer.url, "redirectUrl")
                self._count(f"redirectUrl to {answer.url}")
                self.notify(f"Autodiscover: {url} answers redirectUrl {answer.url}")
                url = answer.url
                if not endpoint.trusted:  # still untrusted, unless it lands within the domain
                    endpoint = self._judged(url, endpoint.how)
                continue
            if isinstance(answer, RedirectAddr):
                return answer
            return self._settings(answer, url, endpoint)

    def _check_redirect(self, url: str, target: str, what: str) -> None:
        parts = urlsplit(target)
        if parts.scheme != "https" or not parts.hostname:
            raise StepFailed(f"{url}: {what} to {target or '(nothing)'}, not an https URL; not followed")
        self._national(url, parts.hostname, "redirects to")

    def _national(self, url: str, host: str, doing: str) -> None:
        """Stop discovery when ``host`` belongs to a Microsoft national cloud."""
        cloud = national_cloud(host)
        if cloud is not None:
            from ..errors import EXIT_ERROR, ClientError

            raise Stop(ClientError(EXIT_ERROR, f"Autodiscover at {url} {doing} {host}, a Microsoft national cloud "
                                               f"({cloud}); national clouds authenticate with their own Azure AD "
                                               "endpoints, which this client does not support"))

    def _post(self, url: str, address: str, endpoint: _Endpoint) -> Response:
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        body = request_body(address)
        try:
            reply = self.web.request("POST", url, body=body, headers=headers)
            if reply.status != 401:
                return reply
            challenge = reply.header("WWW-Authenticate")
            self._bearer_from_national_cloud(url, challenge)
            if not challenge.lower().startswith("basic"):
                raise StepFailed(f"{url}: HTTP 401 asking for {challenge.split(' ', 1)[0] or 'nothing'} "
                                 "authentication, which this client does not do for Autodiscover")
            host = urlsplit(url).hostname or ""
            if not endpoint.trusted:
                raise StepFailed(f"{url}: asks for credentials, but {host} was reached through "
                                 f"{endpoint.how} and is outside {', '.join(sorted(self.trusted_domains))}; "
                                 "not sending them")
            token = base64.b64encode(f"{self.username}:{self.password}".encode("utf-8")).decode("ascii")
            reply = self.web.request("POST", url, body=body, headers={**headers, "Authorization": f"Basic {token}"})
            if reply.status == 401:
                raise StepFailed(f"{url}: the credentials were refused (HTTP 401)")
            return reply
        except WebError as exc:
            raise StepFailed(f"{url}: {exc}") from None

    def _bearer_from_national_cloud(self, url: str, challenge: str) -> None:
        lowered = challenge.lower()
        if not lowered.startswith("bearer") or "authorization_uri=" not in lowered:
            return
        uri = challenge[lowered.index("authorization_uri=") + len("authorization_uri="):].split(",")[0].strip('" ')
        self._national(url, urlsplit(uri).hostname or "", "wants a token from")

    def _settings(self, answer: Settings, url: str, endpoint: _Endpoint) -> Found:
        via = f"Autodiscover at {url}"
        if not endpoint.trusted:
            named = [s.host for s in (answer.imap, answer.smtp) if s is not None]
            outside = [h for h in named if not within(h, self.trusted_domains)]
            if outside:
                raise StepFailed(f"{url} (reached through {endpoint.how}) names {', '.join(outside)}, outside "
                                 f"{', '.join(sorted(self.trusted_domains))}; an untrusted answer, not used")
            via += f" (reached through {endpoint.how})"
        return Found(answer.imap, answer.smtp, via, answer.refused)


class _OutOfRedirects(Exception):
    pass
