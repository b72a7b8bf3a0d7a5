"""The ``[discovery]`` table: which names a scenario has and what each discovery endpoint answers.

Loading is strict, like the provider description: an unknown key, answer kind or endpoint is
an error naming where it is and the closest valid word, because a misspelt answer that
silently falls back to a 404 would make a scenario test something else than it says.

Ports may be numbers or the name of one of the fakes' listeners (``"imaps"``, ``"smtp"``,
``"https"``…): the real, OS-assigned port is filled in when the services start.

>>> config = discovery_config({"domain": "example.test",
...                            "autodiscover": {"autodiscover": {"answer": "success"}}}, "discovery")
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

ANSWERS = ("success", "redirect_addr", "redirect_url", "error", "loop", "not_found", "unauthorized", "stall",
           "reset", "http_redirect", "national_cloud")
AUTOCONFIG_ANSWERS = ("success", "not_found", "stall", "reset", "error", "http_redirect", "unauthorized")
# Where each fixed endpoint is; any other key of [discovery.autodiscover] is a host name.
AUTODISCOVER_ENDPOINTS = {
    "root": "https://<domain>/autodiscover/autodiscover.xml (POST)",
    "autodiscover": "https://autodiscover.<domain>/autodiscover/autodiscover.xml (POST)",
    "http": "http://autodiscover.<domain>/autodiscover/autodiscover.xml (the unauthenticated GET step)",
}
AUTOCONFIG_ENDPOINTS = {
    "autoconfig": "https://autoconfig.<domain>/mail/config-v1.1.xml",
    "autoconfig_http": "http://autoconfig.<domain>/mail/config-v1.1.xml",
    "well_known": "https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml",
}
# Microsoft's sovereign clouds; Autodiscover redirects there for accounts provisioned in them.
NATIONAL_CLOUDS = {
    "china": "autodiscover-s.partner.outlook.cn",  # operated by 21Vianet
    "usgov": "autodiscover-s.office365.us",  # GCC High / DoD
    "germany": "autodiscover-s.outlook.de",
}
LISTENERS = ("imap", "imaps", "smtp", "smtps", "https", "http")
SECURITY = ("ssl", "starttls", "none")
SOCKET_TYPES = ("SSL", "STARTTLS", "plain")
SIGNING = ("none", "HS256")
CERT_KINDS = ("valid", "expired", "wrong-host", "untrusted", "self-signed")
DEFAULT_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access"

Port = int | str  # a number, or the name of one of the fakes' listeners


class DiscoveryConfigError(ValueError):
    """A ``[discovery]`` table that cannot be loaded; ``key`` lets file loaders find its line."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ServerSetting:
    """One mail server an answer points at (a POX ``Protocol`` entry)."""

    host: str
    port: Port
    security: str = "ssl"  # implicit TLS; "starttls"; "none"
    login_name: str | None = None  # None: the address that was asked for


@dataclass(frozen=True)
class AutodiscoverAnswer:
    """What one Autodiscover endpoint answers (see ``ANSWERS``)."""

    answer: str = "not_found"
    imap: ServerSetting | None = None  # success
    smtp: ServerSetting | None = None  # success
    address: str | None = None  # redirect_addr
    url: str | None = None  # redirect_url; national_cloud (overrides ``cloud``)
    location: str | None = None  # http_redirect
    code: int = 500  # error: the POX ErrorCode
    message: str = "The email address can't be found."  # error
    cloud: str = "china"  # national_cloud
    hosts: tuple[str, ...] = ()  # loop: the hosts the redirects cycle through (default: this one)
    then: str = "success"  # unauthorized: the answer once valid Basic credentials came
    delay: float = 0.0  # seconds before answering
    realm: str | None = None  # unauthorized: the Basic realm (default: the host)


@dataclass(frozen=True)
class AutoconfigServer:
    """One ``incomingServer`` / ``outgoingServer`` of config-v1.1.xml."""

    type: str  # imap, pop3, smtp
    hostname: str
    port: Port
    socket: str = "SSL"  # SSL, STARTTLS, plain
    username: str = "%EMAILADDRESS%"
    authentication: str = "password-cleartext"


@dataclass(frozen=True)
class AutoconfigAnswer:
    answer: str = "success"
    delay: float = 0.0
    location: str | None = None  # http_redirect


@dataclass(frozen=True)
class AutoconfigConfig:
    enabled: bool = False  # no [discovery.autoconfig] table: every autoconfig URL is a 404
    display_name: str = ""
    incoming: tuple[AutoconfigServer, ...] = ()
    outgoing: tuple[AutoconfigServer, ...] = ()
    endpoints: Mapping[str, AutoconfigAnswer] = field(default_factory=dict)


@dataclass(frozen=True)
class SrvRecord:
    name: str  # full owner name, e.g. _imaps._tcp.example.test
    target: str  # "." : the service is not available here (RFC 6186 §3.4)
    port: Port = 0
    priority: int = 0
    weight: int = 0


@dataclass(frozen=True)
class MxRecord:
    host: str
    preference: int = 10


@dataclass(frozen=True)
class OAuthConfig:
    host: str
    path: str = "/oauth2/token"
    lifetime: int = 3600  # seconds: expires_in, and when the token stops working
    uses: int = 0  # > 0: the access token works for this many authentications, then is expired
    until_run: int = 0  # > 0: tokens work through run K (one issued in a later run: in that run only)
    refresh: bool = True  # refresh_token grants are honoured
    identity: str | None = None  # the id_token names this address, and tokens log in as it
    signing: str = "none"  # id_token: "none" (unsigned) or "HS256" with HS256_TEST_KEY
    scope: str = DEFAULT_SCOPE
    client_id: str | None = None  # when set, requests must carry it
    client_secret: str | None = None  # when set, requests must carry it (form or Basic)
    account: str | None = None  # whom client_credentials tokens are for (default: the only account)


@dataclass(frozen=True)
class DiscoveryConfig:
    """Everything the discovery fakes serve for one scenario."""

    domain: str = "example.test"
    names: tuple[str, ...] = ()  # extra names the zone, the certificate and the web servers know
    autodiscover: Mapping[str, AutodiscoverAnswer] = field(default_factory=dict)  # endpoint or host -> answer
    autoconfig: AutoconfigConfig = field(default_factory=AutoconfigConfig)
    srv: tuple[SrvRecord, ...] = ()
    mx: tuple[MxRecord, ...] | None = None  # None: one MX, mail.<domain>
    aaaa: bool = False  # answer AAAA queries with ::1 (the fakes listen on 127.0.0.1 only)
    ttl: int = 60
    certs: Mapping[str, str] = field(default_factory=dict)  # host -> certificate kind served to it (SNI)
    oauth: OAuthConfig | None = None

    # -- derived names ------------------------------------------------------------------

    def host(self, label: str) -> str:
        return f"{label}.{self.domain}"

    @property
    def autodiscover_host(self) -> str:
        return self.host("autodiscover")

    @property
    def autoconfig_host(self) -> str:
        return self.host("autoconfig")

    @property
    def oauth_host(self) -> str:
        return self.oauth.host if self.oauth else self.host("login")

    def mx_records(self) -> tuple[MxRecord, ...]:
        return self.mx if self.mx is not None else (MxRecord(self.host("mail")),)

    def all_names(self) -> tuple[str, ...]:
        """Every name the scenario uses, in a stable order: the zone's A records, the HTTPS
        certificate's names and the virtual hosts are all this list."""
        found: list[str] = [self.domain] + [self.host(label) for label in
                                             ("autodiscover", "autoconfig", "imap", "smtp", "mail")]
        found.append(self.oauth_host)
        found += list(self.names)
        for key, answer in self.autodiscover.items():
            if key not in AUTODISCOVER_ENDPOINTS:
                found.append(key)
            for url in (answer.url, answer.location):
                if url:
                    found.append(_url_host(url))
            if answer.answer == "national_cloud" and not answer.url:
                found.append(NATIONAL_CLOUDS[answer.cloud])
            found += list(answer.hosts)
            for setting in (answer.imap, answer.smtp):
                if setting is not None:
                    found.append(setting.host)
            if answer.address:  # a client restarts discovery for the new address's domain
                other = answer.address.rpartition("@")[2]
                found += [other, f"autodiscover.{other}"]
        for server in self.autoconfig.incoming + self.autoconfig.outgoing:
            found.append(server.hostname)
        for endpoint in self.autoconfig.endpoints.values():
            if endpoint.location:
                found.append(_url_host(endpoint.location))
        for record in self.srv:
            if record.target != ".":
                found.append(record.target)
        found += [record.host for record in self.mx_records()]
        found += list(self.certs)
        if self.oauth and self.oauth.identity:
            found.append(self.oauth.identity.rpartition("@")[2])
        seen: dict[str, None] = {}
        for name in found:
            name = normalise(name)
            if name and "%" not in name:  # %EMAILDOMAIN% placeholders are the client's to fill
                seen.setdefault(name, None)
        return tuple(seen)


def normalise(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _url_host(url: str) -> str:
    return urlsplit(url).hostname or ""


# -- loading ----------------------------------------------------------------------------------

TOP_KEYS = {"domain": str, "names": list, "autodiscover": dict, "autoconfig": dict, "srv": list, "mx": list,
            "aaaa": bool, "ttl": int, "certs": dict, "oauth": dict}
ANSWER_KEYS = {"answer": str, "imap": dict, "smtp": dict, "address": str, "url": str, "location": str, "code": int,
               "message": str, "cloud": str, "hosts": list, "then": str, "delay": (int, float), "realm": str}
# Which keys mean something for which answer (a key the answer ignores would be silently inert).
ANSWER_USES = {
    "success": {"imap", "smtp"},
    "redirect_addr": {"address"},
    "redirect_url": {"url"},
    "error": {"code", "message"},
    "loop": {"hosts"},
    "not_found": set(),
    "unauthorized": {"then", "realm", "imap", "smtp", "address", "url", "location", "code", "message", "hosts",
                     "cloud"},
    "stall": set(),
    "reset": set(),
    "http_redirect": {"location"},
    "national_cloud": {"cloud", "url"},
}
SETTING_KEYS = {"host": str, "port": (int, str), "security": str, "login_name": str}
AUTOCONFIG_KEYS = {"display_name": str, "incoming": list, "outgoing": list,
                   **{k: (str, dict) for k in AUTOCONFIG_ENDPOINTS}}
AUTOCONFIG_ANSWER_KEYS = {"answer": str, "delay": (int, float), "location": str}
SERVER_KEYS = {"type": str, "hostname": str, "port": (int, str), "socket": str, "username": str,
               "authentication": str}
SRV_KEYS = {"service": str, "domain": str, "target": str, "port": (int, str), "priority": int, "weight": int}
MX_KEYS = {"host": str, "preference": int}
OAUTH_KEYS = {"host": str, "path": str, "lifetime": int, "uses": int, "until_run": int, "refresh": bool,
              "identity": str, "signing": str, "scope": str, "client_id": str, "client_secret": str, "account": str}
_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*$")


def _close(word: str, valid) -> str | None:
    by_lower = {v.lower(): v for v in valid}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.5)
    return by_lower[match[0]] if match else None


def _suggest(word: str, valid) -> str:
    match = _close(word, valid)
    return f"; did you mean {match!r}?" if match else f"; valid: {', '.join(sorted(valid))}"


def _keys(table: Any, valid: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    if not isinstance(table, Mapping):
        raise DiscoveryConfigError(f"{where}: expected a table, got {type(table).__name__}")
    for key, value in table.items():
        if key not in valid:
            raise DiscoveryConfigError(f"{where}: unknown key {key!r}{_suggest(key, valid)}", key)
        _typed(value, valid[key], f"{where}.{key}", key)
    return table


def _typed(value: Any, want: type | tuple, where: str, key: str | None = None) -> Any:
    wants = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool) and bool not in wants or not isinstance(value, wants):
        names = " or ".join("table" if t is dict else "array" if t is list else t.__name__ for t in wants)
        raise DiscoveryConfigError(f"{where}: expected {names}, got {type(value).__name__} {value!r}", key)
    return value


def _choice(value: str, choices, where: str, key: str) -> str:
    if value not in choices:
        match = _close(value, choices)
        hint = f"; did you mean {match!r}?" if match else ""
        raise DiscoveryConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}{hint}", key)
    return value


def _name(value: str, where: str, key: str) -> str:
    name = normalise(value)
    if not _NAME.match(name):
        raise DiscoveryConfigError(f"{where}: {value!r} is not a host name", key)
    return name


def _port(value: Any, where: str, key: str = "port") -> Port:
    if isinstance(value, str):
        return _choice(value, LISTENERS, where, key)
    if not 0 <= value <= 65535:
        raise DiscoveryConfigError(f"{where}: a port is 0..65535, not {value}", key)
    return value


def _nonnegative(value: int | float, where: str, key: str) -> Any:
    if value < 0:
        raise DiscoveryConfigError(f"{where}: must be at least 0, not {value}", key)
    return value


def _https_url(value: str, where: str, key: str, *, https_only: bool = False) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or (https_only and parts.scheme != "https"):
        want = "an https URL" if https_only else "an http(s) URL"
        raise DiscoveryConfigError(f"{where}: expected {want}, got {value!r}", key)
    _name(parts.hostname, where, key)
    return value


def discovery_config(table: Mapping[str, Any], where: str = "discovery") -> DiscoveryConfig:
    """Validate a ``[discovery]`` table fully and return its config."""
    _keys(table, TOP_KEYS, where)
    domain = _name(table.get("domain", "example.test"), f"{where}.domain", "domain")
    names = tuple(_name(_typed(n, str, f"{where}.names[]", "names"), f"{where}.names[]", "names")
                  for n in table.get("names", []))
    defaults = _Defaults(domain)
    autodiscover = {}
    for key, answer in table.get("autodiscover", {}).items():
        awhere = f"{where}.autodiscover.{key}"
        if key not in AUTODISCOVER_ENDPOINTS and "." not in key:
            raise DiscoveryConfigError(f"{where}.autodiscover: unknown endpoint {key!r} (an endpoint "
                                       f"{', '.join(AUTODISCOVER_ENDPOINTS)}, or a host name)"
                                       f"{_suggest(key, AUTODISCOVER_ENDPOINTS)}", key)
        if key not in AUTODISCOVER_ENDPOINTS:
            key = _name(key, awhere, key)
        autodiscover[key] = _answer(answer, awhere, defaults)
    autoconfig = _autoconfig(table["autoconfig"], f"{where}.autoconfig", defaults) if "autoconfig" in table \
        else AutoconfigConfig()
    srv = tuple(_srv(r, f"{where}.srv[{i}]", domain) for i, r in enumerate(table.get("srv", [])))
    mx = None
    if "mx" in table:
        mx = tuple(_mx(r, f"{where}.mx[{i}]") for i, r in enumerate(table["mx"]))
    certs = {}
    for host, kind in table.get("certs", {}).items():
        certs[_name(host, f"{where}.certs", host)] = _choice(_typed(kind, str, f"{where}.certs.{host}", host),
                                                             CERT_KINDS, f"{where}.certs.{host}", host)
    oauth = _oauth(table["oauth"], f"{where}.oauth", domain) if "oauth" in table else None
    ttl = _nonnegative(table.get("ttl", 60), f"{where}.ttl", "ttl")
    return DiscoveryConfig(domain=domain, names=names, autodiscover=autodiscover, autoconfig=autoconfig, srv=srv,
                           mx=mx, aaaa=table.get("aaaa", False), ttl=ttl, certs=certs, oauth=oauth)


@dataclass(frozen=True)
class _Defaults:
    domain: str

    def imap(self) -> ServerSetting:
        return ServerSetting(f"imap.{self.domain}", "imaps", "ssl")

    def smtp(self) -> ServerSetting:
        return ServerSetting(f"smtp.{self.domain}", "smtps", "ssl")


def _answer(table: Any, where: str, defaults: _Defaults) -> AutodiscoverAnswer:
    if isinstance(table, str):  # shorthand: endpoint = "not_found"
        table = {"answer": table}
    _keys(table, ANSWER_KEYS, where)
    kind = _choice(table.get("answer", "success"), ANSWERS, f"{where}.answer", "answer")
    for key in table:
        if key not in ("answer", "delay") and key not in ANSWER_USES[kind]:
            raise DiscoveryConfigError(f"{where}: {key!r} means nothing for answer {kind!r} (it takes: "
                                       f"{', '.join(sorted(ANSWER_USES[kind] | {'delay'}))})", key)
    then = _choice(table.get("then", "success"), [a for a in ANSWERS if a != "unauthorized"], f"{where}.then", "then")
    needs = {"redirect_addr": "address", "redirect_url": "url"}
    if kind in needs and needs[kind] not in table:
        raise DiscoveryConfigError(f"{where}: answer {kind!r} needs {needs[kind]!r}", "answer")
    address = table.get("address")
    if address is not None and "@" not in address:
        raise DiscoveryConfigError(f"{where}.address: expected an email address, got {address!r}", "address")
    url = table.get("url")
    if url is not None:
        url = _https_url(url, f"{where}.url", "url")
    location = table.get("location")
    if location is not None:
        location = _https_url(location, f"{where}.location", "location")
    cloud = _choice(table.get("cloud", "china"), tuple(NATIONAL_CLOUDS), f"{where}.cloud", "cloud")
    hosts = tuple(_name(_typed(h, str, f"{where}.hosts[]", "hosts"), f"{where}.hosts[]", "hosts")
                  for h in table.get("hosts", []))
    code = table.get("code", 500)
    return AutodiscoverAnswer(
        answer=kind,
        imap=_setting(table.get("imap", {}), f"{where}.imap", defaults.imap(), "imap"),
        smtp=_setting(table.get("smtp", {}), f"{where}.smtp", defaults.smtp(), "smtp"),
        address=address, url=url, location=location, code=code,
        message=table.get("message", AutodiscoverAnswer.message), cloud=cloud, hosts=hosts, then=then,
        delay=float(_nonnegative(table.get("delay", 0), f"{where}.delay", "delay")),
        realm=table.get("realm"),
    )


def _setting(table: Any, where: str, default: ServerSetting, service: str) -> ServerSetting:
    _keys(table, SETTING_KEYS, where)
    security = _choice(table.get("security", default.security), SECURITY, f"{where}.security", "security")
    if "port" in table:
        port = _port(table["port"], f"{where}.port")
    else:  # the listener that matches the security asked for
        port = service + ("s" if security == "ssl" else "")
    return ServerSetting(host=_name(table.get("host", default.host), f"{where}.host", "host"), port=port,
                         security=security, login_name=table.get("login_name"))


def _autoconfig(table: Any, where: str, defaults: _Defaults) -> AutoconfigConfig:
    _keys(table, AUTOCONFIG_KEYS, where)
    incoming = tuple(_server(s, f"{where}.incoming[{i}]", "imap") for i, s in enumerate(table.get("incoming", [])))
    outgoing = tuple(_server(s, f"{where}.outgoing[{i}]", "smtp") for i, s in enumerate(table.get("outgoing", [])))
    if "incoming" not in table:
        incoming = (AutoconfigServer("imap", defaults.imap().host, "imaps", "SSL"),)
    if "outgoing" not in table:
        outgoing = (AutoconfigServer("smtp", defaults.smtp().host, "smtps", "SSL"),)
    endpoints = {}
    for key in AUTOCONFIG_ENDPOINTS:
        value = table.get(key, "success")
        ewhere = f"{where}.{key}"
        if isinstance(value, str):
            value = {"answer": value}
        _keys(value, AUTOCONFIG_ANSWER_KEYS, ewhere)
        kind = _choice(value.get("answer", "success"), AUTOCONFIG_ANSWERS, f"{ewhere}.answer", "answer")
        location = value.get("location")
        if location is not None:
            location = _https_url(location, f"{ewhere}.location", "location")
        if kind == "http_redirect" and location is None:
            raise DiscoveryConfigError(f"{ewhere}: answer 'http_redirect' needs 'location'", "answer")
        endpoints[key] = AutoconfigAnswer(kind, float(_nonnegative(value.get("delay", 0), f"{ewhere}.delay", "delay")),
                                          location)
    return AutoconfigConfig(True, table.get("display_name", ""), incoming, outgoing, endpoints)


def _server(table: Any, where: str, default_type: str) -> AutoconfigServer:
    _keys(table, SERVER_KEYS, where)
    for key in ("hostname", "port"):
        if key not in table:
            raise DiscoveryConfigError(f"{where}: missing {key!r}", key)
    kind = table.get("type", default_type)
    valid_types = ("imap", "pop3") if default_type == "imap" else ("smtp",)
    _choice(kind, valid_types, f"{where}.type", "type")
    return AutoconfigServer(kind, _name(table["hostname"], f"{where}.hostname", "hostname")
                            if "%" not in table["hostname"] else table["hostname"],
                            _port(table["port"], f"{where}.port"),
                            _choice(table.get("socket", "SSL"), SOCKET_TYPES, f"{where}.socket", "socket"),
                            table.get("username", "%EMAILADDRESS%"),
                            table.get("authentication", "password-cleartext"))


def _srv(table: Any, where: str, domain: str) -> SrvRecord:
    _keys(table, SRV_KEYS, where)
    for key in ("service", "target"):
        if key not in table:
            raise DiscoveryConfigError(f"{where}: missing {key!r}", key)
    service = table["service"]
    if not re.match(r"^_[a-z0-9-]+\._(tcp|udp)$", service):
        raise DiscoveryConfigError(f"{where}.service: expected '_service._tcp' (e.g. '_imaps._tcp'), got {service!r}",
                                   "service")
    owner = f"{service}.{_name(table.get('domain', domain), f'{where}.domain', 'domain')}"
    target = table["target"]
    target = "." if target.strip() in (".", "") else _name(target, f"{where}.target", "target")
    default_port = 0 if target == "." else None
    if "port" not in table and default_port is None:
        raise DiscoveryConfigError(f"{where}: missing 'port' (a number or one of {', '.join(LISTENERS)})", "port")
    port = _port(table.get("port", 0), f"{where}.port")
    for key in ("priority", "weight"):
        if not 0 <= table.get(key, 0) <= 65535:
            raise DiscoveryConfigError(f"{where}.{key}: 0..65535, not {table[key]}", key)
    return SrvRecord(owner, target, port, table.get("priority", 0), table.get("weight", 0))


def _mx(table: Any, where: str) -> MxRecord:
    if isinstance(table, str):
        table = {"host": table}
    _keys(table, MX_KEYS, where)
    if "host" not in table:
        raise DiscoveryConfigError(f"{where}: missing 'host'", "host")
    return MxRecord(_name(table["host"], f"{where}.host", "host"), table.get("preference", 10))


def _oauth(table: Any, where: str, domain: str) -> OAuthConfig:
    _keys(table, OAUTH_KEYS, where)
    for key in ("lifetime", "uses", "until_run"):
        _nonnegative(table.get(key, 0), f"{where}.{key}", key)
    path = table.get("path", "/oauth2/token")
    if not path.startswith("/"):
        raise DiscoveryConfigError(f"{where}.path: a path starts with '/', not {path!r}", "path")
    identity = table.get("identity")
    if identity is not None and "@" not in identity:
        raise DiscoveryConfigError(f"{where}.identity: expected an email address, got {identity!r}", "identity")
    return OAuthConfig(
        host=_name(table.get("host", f"login.{domain}"), f"{where}.host", "host"), path=path,
        lifetime=table.get("lifetime", 3600), uses=table.get("uses", 0), until_run=table.get("until_run", 0),
        refresh=table.get("refresh", True), identity=identity,
        signing=_choice(table.get("signing", "none"), SIGNING, f"{where}.signing", "signing"),
        scope=table.get("scope", DEFAULT_SCOPE), client_id=table.get("client_id"),
        client_secret=table.get("client_secret"), account=table.get("account"),
    )


def load_discovery_file(path) -> DiscoveryConfig:
    """A TOML file's ``[discovery]`` table; errors carry ``file:line`` like the provider loader's."""
    from pathlib import Path

    from ..provider_config import ConfigError, key_line, read_toml  # lazily: provider_config may import us

    path = Path(path)
    text, data = read_toml(path)
    try:
        return discovery_config(data.get("discovery", {}), "discovery")
    except DiscoveryConfigError as exc:
        line = discovery_key_line(text, exc.key, key_line) if exc.key else None
        raise ConfigError(f"{path}:{line}: {exc}" if line else f"{path}: {exc}", exc.key) from None


def discovery_key_line(text: str, key: str, key_line=None) -> int | None:
    """The line of ``key`` within the ``[discovery…]`` part of a TOML text, inline tables too."""
    if key_line is None:
        from ..provider_config import key_line
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^\s*\[\[?\s*discovery\b", line)), 0)
    part = "\n".join(lines[start:])
    found = key_line(part, key)
    if found is not None:
        return start + found
    inline = re.compile(rf"[{{,]\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for number, line in enumerate(lines[start:], start=start + 1):
        if inline.search(line):
            return number
    return None
