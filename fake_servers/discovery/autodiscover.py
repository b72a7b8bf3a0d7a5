"""Exchange POX Autodiscover: read a request, write the answer the scenario chose. No I/O.

The request (``requestschema/2006``) names an address and the response schema the client
accepts; only the Outlook schema (``responseschema/2006a``) is served, as Exchange does for
email clients. Answers: settings (IMAP and SMTP ``Protocol`` entries), ``redirectAddr``,
``redirectUrl``, POX errors, endless redirect loops, 401s asking for Basic credentials, 404s,
stalls, 302s, and redirects to a national cloud, whose endpoint then wants an Azure AD token
of that cloud (the seed: national clouds "use different Azure AD endpoint URLs").

A malformed request (wrong method or content type, a body over the cap, XML that does not
parse, a DTD) gets a 4xx; nothing a client sends can make this module raise.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable
from xml.sax.saxutils import escape

from .config import NATIONAL_CLOUDS, AutodiscoverAnswer, Port, ServerSetting
from .http_messages import HttpReply, HttpRequest, redirect_reply, text_reply, xml_reply

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
PATH = "/autodiscover/autodiscover.xml"
XML_TYPES = ("text/xml", "application/xml")
# Where each national cloud's Azure AD authorizes (the 401 its Autodiscover endpoint answers).
NATIONAL_LOGIN = {
    "autodiscover-s.partner.outlook.cn": "https://login.chinacloudapi.cn/common/oauth2/authorize",
    "autodiscover-s.office365.us": "https://login.microsoftonline.us/common/oauth2/authorize",
    "autodiscover-s.outlook.de": "https://login.microsoftonline.de/common/oauth2/authorize",
}


def url_for(host: str) -> str:
    return f"https://{host}{PATH}"


class PoxError(Exception):
    """A request the endpoint cannot serve: answered with ``status``."""

    def __init__(self, status: int, text: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers or []

    def reply(self) -> HttpReply:
        reply = text_reply(self.status, self.text)
        reply.headers += self.headers
        return reply


@dataclass(frozen=True)
class PoxRequest:
    email: str
    schema: str


def parse_request(request: HttpRequest, body_cap: int) -> PoxRequest:
    """The address and schema a POX request asks for; :class:`PoxError` when it is malformed."""
    if request.method != "POST":
        raise PoxError(405, "Autodiscover takes POST.", [("Allow", "POST")])
    if request.body_length > body_cap:
        raise PoxError(413, f"Request body over {body_cap} bytes.")
    if request.content_type not in XML_TYPES:
        raise PoxError(415, f"Expected text/xml, got {request.content_type or 'no content type'}.")
    body = request.body
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise PoxError(400, "DTDs are not accepted.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise PoxError(400, f"Malformed XML: {exc}") from None
    except Exception as exc:  # expat can raise other errors on hostile input
        raise PoxError(400, f"Malformed XML: {type(exc).__name__}") from None
    if root.tag != f"{{{REQUEST_NS}}}Autodiscover":
        raise PoxError(400, "Not an Autodiscover request (root element or namespace).")
    email = root.findtext(f"{{{REQUEST_NS}}}Request/{{{REQUEST_NS}}}EMailAddress")
    schema = root.findtext(f"{{{REQUEST_NS}}}Request/{{{REQUEST_NS}}}AcceptableResponseSchema")
    if not email or "@" not in email:
        raise PoxError(400, "The request has no EMailAddress.")
    return PoxRequest(email.strip(), (schema or "").strip())


# -- answers ------------------------------------------------------------------------------------


def _document(inner: str, *, outlook: bool = True) -> bytes:
    ns = f' xmlns="{OUTLOOK_NS}"' if outlook else ""
    return (f'<?xml version="1.0" encoding="utf-8"?>\r\n<Autodiscover xmlns="{RESPONSE_NS}">\r\n'
            f"  <Response{ns}>\r\n{inner}  </Response>\r\n</Autodiscover>\r\n").encode("utf-8")


def _protocol(kind: str, setting: ServerSetting, port: int, login: str) -> str:
    ssl, encryption = {"ssl": ("on", "SSL"), "starttls": ("on", "TLS"), "none": ("off", "None")}[setting.security]
    return ("      <Protocol>\r\n"
            f"        <Type>{kind}</Type>\r\n"
            f"        <Server>{escape(setting.host)}</Server>\r\n"
            f"        <Port>{port}</Port>\r\n"
            f"        <LoginName>{escape(setting.login_name or login)}</LoginName>\r\n"
            "        <DomainRequired>off</DomainRequired>\r\n"
            "        <SPA>off</SPA>\r\n"
            f"        <SSL>{ssl}</SSL>\r\n"
            f"        <Encryption>{encryption}</Encryption>\r\n"
            "        <AuthRequired>on</AuthRequired>\r\n"
            "      </Protocol>\r\n")


def settings_document(email: str, imap: ServerSetting, smtp: ServerSetting, port_of: Callable[[Port], int]) -> bytes:
    user = f"    <User>\r\n      <DisplayName>{escape(email)}</DisplayName>\r\n" \
           f"      <EMailAddress>{escape(email)}</EMailAddress>\r\n    </User>\r\n"
    account = ("    <Account>\r\n      <AccountType>email</AccountType>\r\n      <Action>settings</Action>\r\n"
               + _protocol("IMAP", imap, port_of(imap.port), email)
               + _protocol("SMTP", smtp, port_of(smtp.port), email)
               + "    </Account>\r\n")
    return _document(user + account)


def redirect_document(action: str, target: str) -> bytes:
    """``redirectAddr`` (another address to discover) or ``redirectUrl`` (another endpoint)."""
    element = {"redirectAddr": "RedirectAddr", "redirectUrl": "RedirectUrl"}[action]
    return _document("    <Account>\r\n      <AccountType>email</AccountType>\r\n"
                     f"      <Action>{action}</Action>\r\n      <{element}>{escape(target)}</{element}>\r\n"
                     "    </Account>\r\n")


def error_document(code: int, message: str) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    return _document(f'    <Error Time="{now}" Id="{uuid.uuid4().int % 10**10}">\r\n'
                     f"      <ErrorCode>{code}</ErrorCode>\r\n      <Message>{escape(message)}</Message>\r\n"
                     "      <DebugData />\r\n    </Error>\r\n", outlook=False)


class Autodiscover:
    """Answers Autodiscover requests for one scenario (state: how far each loop went)."""

    def __init__(self, *, port_of: Callable[[Port], int], check_basic: Callable[[str, str], bool],
                 body_cap: int) -> None:
        self.port_of = port_of
        self.check_basic = check_basic
        self.body_cap = body_cap
        self.hops: dict[str, int] = {}

    def answer(self, answer: AutodiscoverAnswer, request: HttpRequest, endpoint: str) -> HttpReply:
        reply = self._answer(answer, request, endpoint)
        if answer.delay and not (reply.stall or reply.reset):
            reply.delay = answer.delay
        return reply

    def _answer(self, answer: AutodiscoverAnswer, request: HttpRequest, endpoint: str) -> HttpReply:
        kind = answer.answer
        # Answers a server gives before looking at the body.
        if kind == "not_found":
            return text_reply(404, "Not Found")
        if kind == "stall":
            return HttpReply(0, stall=True, note=f"autodiscover {endpoint}: stall")
        if kind == "reset":
            return HttpReply(0, reset=True, note=f"autodiscover {endpoint}: reset")
        if kind == "unauthorized":
            creds = request.basic_credentials()
            if creds is None or not self.check_basic(*creds):
                return _unauthorized(f'Basic realm="{answer.realm or request.host}"')
            return self._answer(dataclasses.replace(answer, answer=answer.then), request, endpoint)
        if kind == "http_redirect":
            return redirect_reply(answer.location or url_for(request.host), note=f"autodiscover {endpoint}: 302")
        if request.scheme == "http" and request.method == "GET":
            email = request.query.get("emailaddress", request.query.get("Email", ""))
        else:
            try:
                pox = parse_request(request, self.body_cap)
            except PoxError as exc:
                return exc.reply()
            if pox.schema != OUTLOOK_NS:
                return xml_reply(error_document(601, "Provider is not available."))
            email = pox.email
        if kind == "success":
            return xml_reply(settings_document(email, answer.imap, answer.smtp, self.port_of))
        if kind == "redirect_addr":
            return xml_reply(redirect_document("redirectAddr", answer.address or ""))
        if kind == "redirect_url":
            return xml_reply(redirect_document("redirectUrl", answer.url or ""))
        if kind == "national_cloud":
            return xml_reply(redirect_document("redirectUrl", answer.url or url_for(NATIONAL_CLOUDS[answer.cloud])))
        if kind == "loop":
            hosts = answer.hosts or (request.host,)
            hop = self.hops.get(endpoint, 0)
            self.hops[endpoint] = hop + 1
            if request.host in hosts:  # on to the next host of the cycle
                nxt = hosts[(hosts.index(request.host) + 1) % len(hosts)]
            else:
                nxt = hosts[hop % len(hosts)]
            return xml_reply(redirect_document("redirectUrl", url_for(nxt)), note=f"autodiscover loop: hop {hop + 1}")
        if kind == "error":
            return xml_reply(error_document(answer.code, answer.message))
        raise ValueError(f"unknown answer {kind!r}")  # the config loader makes this unreachable

    def national_endpoint(self, host: str) -> HttpReply:
        """A national cloud's own endpoint: it wants a token from that cloud's Azure AD."""
        login = NATIONAL_LOGIN.get(host, "https://login.microsoftonline.com/common/oauth2/authorize")
        return _unauthorized(f'Bearer authorization_uri="{login}"', note=f"national cloud endpoint {host}")


def _unauthorized(challenge: str, note: str = "") -> HttpReply:
    reply = text_reply(401, "Unauthorized", note=note)
    reply.headers.append(("WWW-Authenticate", challenge))
    return reply
