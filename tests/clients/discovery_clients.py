"""Small in-process discovery and OAuth clients, one careful and several careless on purpose.

They are real clients of the discovery fakes: POX Autodiscover over urllib (the documented URL
order: https://<domain>/…, https://autodiscover.<domain>/…, the plain-http GET step, the
``_autodiscover._tcp`` SRV record), Mozilla autoconfig, RFC 6186 SRV over the fake DNS
(``MAILCONFORM_DNS``), then imaplib to the servers found; OAuth with the token endpoint and
XOAUTH2. They run under the python adapter, which resolves the scenario's names to the fakes
(``MAILCONFORM_CONNECT_TO``). Each ``Habits`` field is one shortcut a real client should not
take; the entry points at the end are the clients the tests and scenario runs use.
"""

from __future__ import annotations

import base64
import email
import email.utils
import imaplib
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

TIMEOUT = 2.0
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
NATIONAL = ("autodiscover-s.partner.outlook.cn", "autodiscover-s.office365.us", "autodiscover-s.outlook.de")


class DiscoveryFailed(Exception):
    pass


@dataclass(frozen=True)
class Habits:
    max_hops: int | None = 10  # None: follows redirects forever
    follow_http: bool = False  # follows a redirect to an http:// URL
    basic_over_http: bool = False  # sends its Basic credentials with the plain-http GET step
    trust_redirects: bool = False  # answers a 401 from any host with its password, not only its own domain's
    plaintext_entries: bool = False  # takes the first autoconfig entry, plaintext or not
    guess_host: str | None = None  # connects to this host (with the discovered port) instead
    use_port: int | None = None  # connects to this port instead of the discovered one


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    security: str  # ssl, starttls, none
    login: str | None = None


# -- HTTP ------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _open(ctx, url: str, *, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
    """(status, headers, body); never follows a redirect by itself."""
    tls = ssl.create_default_context(cafile=str(ctx.ca_file))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=tls), _NoRedirect())
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _basic(ctx) -> str:
    return "Basic " + base64.b64encode(f"{ctx.username}:{ctx.password}".encode()).decode()


def _pox_body(email: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{REQUEST_NS}"><Request>'
            f"<EMailAddress>{email}</EMailAddress><AcceptableResponseSchema>{OUTLOOK_NS}"
            "</AcceptableResponseSchema></Request></Autodiscover>").encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _pox_answer(body: bytes):
    """("settings", {type: Server}) | ("redirectUrl", url) | ("redirectAddr", address) | ("error", text)."""
    root = ET.fromstring(body)
    found = {_local(e.tag): (e.text or "").strip() for e in root.iter()}
    if "ErrorCode" in found:
        return "error", found.get("Message", "")
    action = found.get("Action")
    if action == "redirectUrl":
        return action, found.get("RedirectUrl", "")
    if action == "redirectAddr":
        return action, found.get("RedirectAddr", "")
    servers = {}
    for proto in (e for e in root.iter() if _local(e.tag) == "Protocol"):
        fields = {_local(e.tag): (e.text or "").strip() for e in proto}
        security = {"SSL": "ssl", "TLS": "starttls", "None": "none"}.get(fields.get("Encryption", ""), "ssl")
        servers[fields["Type"].lower()] = Server(fields["Server"], int(fields["Port"]), security,
                                                 fields.get("LoginName"))
    return "settings", servers


class Discoverer:
    def __init__(self, ctx, habits: Habits) -> None:
        self.ctx = ctx
        self.habits = habits
        self.hops = 0
        self.tried: list[str] = []

    def hop(self) -> bool:
        self.hops += 1
        return self.habits.max_hops is None or self.hops <= self.habits.max_hops

    def pox(self, url: str, email: str, *, creds: bool = False):
        """Settings from one POX endpoint and the redirects it gives, or None."""
        self.tried.append(url)
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme != "https" and not self.habits.follow_http:
            return None
        headers = {"Content-Type": "text/xml"}
        if creds:
            headers["Authorization"] = _basic(self.ctx)
        try:
            status, reply_headers, body = _open(self.ctx, url, data=_pox_body(email), headers=headers)
        except (OSError, ssl.SSLError):
            return None
        if status == 401 and not creds and "basic" in (reply_headers.get("WWW-Authenticate") or "").lower():
            host = urllib.parse.urlsplit(url).hostname or ""
            domain = email.rpartition("@")[2]
            if self.habits.trust_redirects or host == domain or host.endswith("." + domain):
                return self.pox(url, email, creds=True)
            return None  # a host outside the account's domain: not trusted with the password
        if status in (301, 302, 307, 308) and reply_headers.get("Location") and self.hop():
            return self.pox(reply_headers["Location"], email)
        if status != 200:
            return None
        kind, value = _pox_answer(body)
        if kind == "settings":
            return value
        if kind == "redirectUrl" and self.hop():
            host = urllib.parse.urlsplit(value).hostname or ""
            if host in NATIONAL:
                raise DiscoveryFailed(f"autodiscovery redirected to the national cloud endpoint {host}: "
                                      "national clouds are not supported")
            return self.pox(value, email)
        if kind == "redirectAddr" and self.hop():
            return self.autodiscover(value)
        return None

    def autodiscover(self, email: str):
        domain = email.rpartition("@")[2]
        for url in (f"https://{domain}/autodiscover/autodiscover.xml",
                    f"https://autodiscover.{domain}/autodiscover/autodiscover.xml"):
            found = self.pox(url, email)
            if found:
                return found
        found = self.http_step(email, domain)
        if found:
            return found
        for target, port in srv(self.ctx, f"_autodiscover._tcp.{domain}"):
            found = self.pox(f"https://{target}:{port}/autodiscover/autodiscover.xml", email)
            if found:
                return found
        return None

    def http_step(self, email: str, domain: str):
        url = f"http://autodiscover.{domain}/autodiscover/autodiscover.xml"
        self.tried.append(url)
        headers = {"Authorization": _basic(self.ctx)} if self.habits.basic_over_http else {}
        try:
            status, reply_headers, _ = _open(self.ctx, url, headers=headers, method="GET")
        except OSError:
            return None
        location = reply_headers.get("Location") if status in (301, 302, 307, 308) else None
        if location and self.hop():
            return self.pox(location, email)
        return None

    def autoconfig(self, email: str):
        domain = email.rpartition("@")[2]
        query = urllib.parse.urlencode({"emailaddress": email})
        for url in (f"https://autoconfig.{domain}/mail/config-v1.1.xml?{query}",
                    f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml"):
            self.tried.append(url)
            try:
                status, _, body = _open(self.ctx, url)
            except OSError:
                continue
            if status != 200:
                continue
            root = ET.fromstring(body)
            servers = {}
            for element, kind in (("incomingServer", "imap"), ("outgoingServer", "smtp")):
                for entry in root.iter(element):
                    if entry.get("type") != kind:
                        continue
                    socket_type = entry.findtext("socketType")
                    if socket_type == "plain" and not self.habits.plaintext_entries:
                        continue
                    security = {"SSL": "ssl", "STARTTLS": "starttls"}.get(socket_type, "none")
                    servers.setdefault(kind, Server(entry.findtext("hostname"), int(entry.findtext("port")), security,
                                                    email))
            if servers:
                return servers
        return None

    def rfc6186(self, email: str):
        domain = email.rpartition("@")[2]
        servers = {}
        for service, kind, security in (("_imaps._tcp", "imap", "ssl"), ("_imap._tcp", "imap", "starttls"),
                                        ("_submissions._tcp", "smtp", "ssl"), ("_submission._tcp", "smtp", "starttls")):
            if kind in servers:
                continue
            for target, port in srv(self.ctx, f"{service}.{domain}"):
                servers[kind] = Server(target, port, security, email)
                break
        return servers or None

    def run(self) -> dict[str, Server]:
        email = self.ctx.autodiscover_email or self.ctx.email
        for step in (self.autodiscover, self.autoconfig, self.rfc6186):
            found = step(email)
            if found:
                return found
        raise DiscoveryFailed(f"autodiscovery failed for {email}: tried {len(self.tried)} endpoints "
                              "and the SRV records; none answered with settings")


def srv(ctx, name: str) -> list[tuple[str, int]]:
    """(target, port) of the SRV records of ``name`` on MAILCONFORM_DNS, by priority; the "."
    target (not available, RFC 6186 §3.4) ends the list empty."""
    if not ctx.dns:
        return []
    from twisted.names import dns

    host, _, port = ctx.dns.rpartition(":")
    query = dns.Message(id=7, recDes=1)
    query.addQuery(name.encode(), dns.SRV)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(query.toStr(), (host, int(port)))
        raw = sock.recv(65535)
    answer = dns.Message()
    answer.fromStr(raw)
    found = sorted((r.payload.priority, r.payload.target.name.decode(), r.payload.port)
                   for r in answer.answers if r.type == dns.SRV)
    if any(target in ("", ".") for _, target, _ in found):
        return []
    return [(target, port) for _, target, port in found]


# -- IMAP ------------------------------------------------------------------------------------------


def _imap(ctx, server: Server) -> imaplib.IMAP4:
    tls = ssl.create_default_context(cafile=str(ctx.ca_file))
    if server.security == "ssl":
        return imaplib.IMAP4_SSL(server.host, server.port, ssl_context=tls, timeout=TIMEOUT * 2)
    client = imaplib.IMAP4(server.host, server.port, timeout=TIMEOUT * 2)
    if server.security == "starttls":
        client.starttls(tls)
    return client


def sync_inbox(ctx, client: imaplib.IMAP4) -> None:
    client.select("INBOX", readonly=True)
    _, data = client.uid("SEARCH", "ALL")
    folder = Path(ctx.maildir) / "INBOX"
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for uid in data[0].split():
        path = folder / "cur" / f"{uid.decode()}.discovery-client:2,"
        if not path.exists():
            _, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            path.write_bytes(parts[0][1])
    client.logout()


def discover_and_sync(ctx, habits: Habits = Habits()) -> None:
    servers = Discoverer(ctx, habits).run()
    imap = servers.get("imap")
    if imap is None:
        raise DiscoveryFailed("discovery named no IMAP server")
    if habits.guess_host or habits.use_port:
        imap = replace(imap, host=habits.guess_host or imap.host, port=habits.use_port or imap.port)
    client = _imap(ctx, imap)
    try:
        client.login(imap.login or ctx.username, ctx.password)
    except imaplib.IMAP4.error as exc:
        raise DiscoveryFailed(f"authentication failed at the discovered server {imap.host}:{imap.port}: "
                              f"{exc}") from None
    sync_inbox(ctx, client)
    smtp = servers.get("smtp")
    if smtp is not None and not (habits.guess_host or habits.use_port):
        send_outbox(ctx, smtp)


def send_outbox(ctx, server: Server) -> None:
    """Submits every outbox file to the discovered SMTP server, removing each once accepted."""
    files = sorted(Path(ctx.outbox).glob("*.eml")) if ctx.outbox else []
    if not files:
        return
    tls = ssl.create_default_context(cafile=str(ctx.ca_file))
    if server.security == "ssl":
        client = smtplib.SMTP_SSL(server.host, server.port, context=tls, timeout=TIMEOUT * 2)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT * 2)
        if server.security == "starttls":
            client.starttls(context=tls)
    with client:
        client.login(server.login or ctx.username, ctx.password)
        for path in files:
            message = email.message_from_bytes(path.read_bytes())
            recipients = [address for _, address in
                          email.utils.getaddresses(message.get_all("To", []) + message.get_all("Cc", []))]
            client.sendmail(email.utils.parseaddr(message["From"])[1], recipients, path.read_bytes())
            path.unlink()


# -- OAuth -----------------------------------------------------------------------------------------


def token(ctx, form: dict) -> dict:
    status, _, body = _open(ctx, ctx.oauth_token_url, data=urllib.parse.urlencode(form).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    answer = json.loads(body)
    if status != 200:
        raise RuntimeError(f"token endpoint: {answer.get('error')}: {answer.get('error_description')}")
    return answer


def id_email(answer: dict) -> str:
    body = answer["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["email"]


def xoauth2(ctx, user: str, access: str) -> imaplib.IMAP4:
    client = _imap(ctx, Server(ctx.imap_host, ctx.imap_port, "ssl" if ctx.imap_security == "tls" else "starttls"))
    sent = []

    def respond(challenge: bytes) -> bytes:
        sent.append(challenge)
        return f"user={user}\x01auth=Bearer {access}\x01\x01".encode() if len(sent) == 1 else b""

    try:
        client.authenticate("XOAUTH2", respond)
    except imaplib.IMAP4.error:
        client.shutdown()
        raise
    return client


def oauth_sync(ctx, *, refresh: bool = True, check_identity: bool = True, trust_id_token: bool = False) -> None:
    """Get a token (kept in the state dir across runs), log in with XOAUTH2, sync INBOX; on a
    refused token, refresh it (``refresh``) and log in again."""
    state = Path(ctx.state_dir) / "oauth.json"
    saved = json.loads(state.read_text()) if state.exists() else None
    if saved is None:
        saved = token(ctx, {"grant_type": "password", "username": ctx.username, "password": ctx.password})
        state.write_text(json.dumps(saved))
    owner = id_email(saved)
    if check_identity and owner.lower() != ctx.email.lower():
        raise RuntimeError(f"OAuth identity mismatch: the token is for {owner}, not {ctx.email}; account refused")
    user = owner if trust_id_token else ctx.username
    try:
        client = xoauth2(ctx, user, saved["access_token"])
    except imaplib.IMAP4.error:
        if not refresh or "refresh_token" not in saved:
            raise
        saved = {**saved, **token(ctx, {"grant_type": "refresh_token", "refresh_token": saved["refresh_token"]})}
        state.write_text(json.dumps(saved))
        client = xoauth2(ctx, user, saved["access_token"])
    sync_inbox(ctx, client)


# -- the clients ----------------------------------------------------------------------------------


def careful(ctx) -> None:
    """Discovers in the documented order, follows https redirects (at most 10), skips
    plaintext-only entries, respects ".", uses what it found; OAuth clients refresh and check
    the identity."""
    if ctx.oauth_token_url and ctx.imap_host:
        oauth_sync(ctx)
    else:
        discover_and_sync(ctx)


def follows_forever(ctx) -> None:
    discover_and_sync(ctx, Habits(max_hops=None))


def follows_http(ctx) -> None:
    discover_and_sync(ctx, Habits(follow_http=True))


def basic_over_http(ctx) -> None:
    discover_and_sync(ctx, Habits(basic_over_http=True))


def trusts_redirects(ctx) -> None:
    discover_and_sync(ctx, Habits(trust_redirects=True))


def plaintext_entries(ctx) -> None:
    discover_and_sync(ctx, Habits(plaintext_entries=True))


def oauth_without_refresh(ctx) -> None:
    oauth_sync(ctx, refresh=False)


def oauth_trusts_identity(ctx) -> None:
    oauth_sync(ctx, check_identity=False, trust_id_token=True)
