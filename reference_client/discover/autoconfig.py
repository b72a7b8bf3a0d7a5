"""Mozilla autoconfig: ``config-v1.1.xml`` from the provider's own servers, over https only.

URLs, in order (Thunderbird's "ISP" lookups; the central ISPDB is not asked, and plain http
is never used, since anyone on the path could rewrite the servers in an http answer):

1. ``https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=<address>``
2. ``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml``

No credentials are ever sent. Redirects to https URLs are followed (at most
:data:`MAX_REDIRECTS` in all). From the document the first IMAP ``incomingServer`` with
``socketType`` ``SSL`` (implicit TLS) or ``STARTTLS`` is used, and likewise the first SMTP
``outgoingServer``; ``plain`` entries are never used (a document that lists only those is
refused, naming them).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote, urljoin, urlsplit

from .settings import Found, Server, StepFailed, xml_ok
from .web import Web, WebError

PATH = "/mail/config-v1.1.xml"
WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"
SOCKETS = {"SSL": "tls", "STARTTLS": "starttls"}
MAX_REDIRECTS = 10


def urls(address: str, domain: str) -> list[str]:
    return [f"https://autoconfig.{domain}{PATH}?emailaddress={quote(address, safe='@')}",
            f"https://{domain}{WELL_KNOWN}"]


def fetch(web: Web, url: str, domain: str, notes: list[str]) -> Found:
    """The servers the document at ``url`` lists; StepFailed when there is no usable one."""
    first = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            reply = web.request("GET", url, headers={"Accept": "application/xml, text/xml"})
        except WebError as exc:
            raise StepFailed(f"autoconfig {first}: {exc}") from None
        if reply.status in (301, 302, 303, 307, 308):
            target = urljoin(url, reply.header("Location"))
            if urlsplit(target).scheme != "https":
                raise StepFailed(f"autoconfig {first}: redirected to a non-https URL ({target}); not followed")
            notes.append(f"autoconfig {url} redirects to {target}")
            url = target
            continue
        if reply.status != 200:
            raise StepFailed(f"autoconfig {first}: HTTP {reply.status}")
        return parse(reply.body, f"autoconfig at {url}", domain)
    raise StepFailed(f"autoconfig {first}: more than {MAX_REDIRECTS} redirects")


def parse(body: bytes, via: str, domain: str) -> Found:
    if not xml_ok(body):
        raise StepFailed(f"{via}: a document with a DTD; not parsed")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise StepFailed(f"{via}: not XML ({exc})") from None
    provider = root.find("emailProvider") if root.tag == "clientConfig" else None
    if provider is None:
        raise StepFailed(f"{via}: not a clientConfig document")
    refused: list[str] = []
    imap = _first(provider.findall("incomingServer"), "imap", domain, refused)
    smtp = _first(provider.findall("outgoingServer"), "smtp", domain, refused)
    if imap is None:
        if refused and any(r.startswith("IMAP") for r in refused):
            return Found(None, smtp, via, tuple(refused))
        raise StepFailed(f"{via}: lists no IMAP server")
    return Found(imap, smtp, via, tuple(refused))


def _first(elements, kind: str, domain: str, refused: list[str]) -> Server | None:
    for element in elements:
        if (element.get("type") or "").lower() != kind:
            continue
        host = (element.findtext("hostname") or "").strip().replace("%EMAILDOMAIN%", domain)
        socket_type = (element.findtext("socketType") or "").strip()
        try:
            port = int((element.findtext("port") or "").strip())
        except ValueError:
            continue
        if not host or "%" in host or not 0 < port < 65536:
            continue
        security = SOCKETS.get(socket_type.upper())
        if security is None:
            refused.append(f"{kind.upper()} {host}:{port} socketType {socket_type or '(none)'}")
            continue
        return Server(host.lower().rstrip("."), port, security)
    return None
