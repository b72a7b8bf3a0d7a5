"""Checks on account discovery and OAuth: what the client asked the discovery fakes, what it
followed, and which mail servers it then used.

They read the HTTP requests the web fakes recorded (with their answers and the redirects those
offered, see :mod:`harness.discovery`), the DNS queries, the names an in-process client
resolved, the IMAP/SMTP connections, and the tokens the OAuth endpoint issued. Evidence quotes
requests with the Authorization value and password fields shown as ``***``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from .. import discovery as disc
from ..verdicts import Evidence
from . import check
from .evidence import LINE_WIDTH, capped, excerpt, failed, measured, passed, redact, where
from .outcome import _output, _status, _tail
from .wire import _tagged_answer, secrets_of

HARMLESS = ("CAPABILITY", "STARTTLS", "NOOP", "LOGOUT", "ID", "EHLO", "HELO", "QUIT", "RSET")
OAUTH_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")
HTTP_LINES = 12  # request lines shown in evidence
NATIONAL_PATTERNS = ["national", "sovereign", "not supported", "unsupported", "21vianet", "china", "gcc",
                     r"office365\.us", r"outlook\.de", r"outlook\.cn"]


def _facts(obs) -> disc.DiscoveryFacts:
    facts = getattr(obs, "discovery", None)
    if facts is None:
        raise ValueError("the scenario's provider has no [provider.discovery] table: nothing to judge")
    return facts


def _secrets(obs) -> tuple[bytes, ...]:
    """The client's secrets and the forms they travel in over HTTP: Basic (base64 of
    user:password) and URL-encoded."""
    found = list(secrets_of(obs))
    user = (getattr(obs, "username", "") or "").encode("utf-8")
    if obs.password:
        if user:
            found.append(base64.b64encode(user + b":" + obs.password.encode("utf-8")))
        found += [quote(obs.password, safe="").encode(), quote_plus(obs.password).encode()]  # in a URL or form
    return tuple(dict.fromkeys(found))


def _more(what: str):
    def summary(rest: list[Evidence]) -> Evidence:
        return Evidence(rest[0].rule, rest[0].expected, f"{len(rest)} more {what}")
    return summary


def _request(e: disc.Exchange, secrets) -> str:
    """``POST https://host/path?query``, with any secret in it shown as ***."""
    return redact(f"{e.request.method} {e.url}", secrets)


def _http_excerpt(e: disc.Exchange, secrets) -> str:
    """The request (redacted: Authorization and password fields as ***) and its answer."""
    lines = e.conn.transcript(limit=1).splitlines()[:1]
    request = e.cmd.redacted.splitlines()
    lines.append(">> C: " + request[0])
    lines += [f"   {line}" for line in request[1:HTTP_LINES]]
    if len(request) > HTTP_LINES:
        lines.append(f"   ... {len(request) - HTTP_LINES} more lines")
    answer = next((r for r in e.conn.responses if e.answered_at is not None and r.at == e.answered_at), None)
    lines.append(f"   S: {answer.line}" if answer is not None else "   (no answer)")
    text = "\n".join(line if len(line) <= LINE_WIDTH else line[:LINE_WIDTH - 3] + "..." for line in lines)
    return redact(text, secrets)


def _mail_connections(obs, protocols=("imap", "smtp")) -> list:
    return [c for c in obs.wire.select() if c.protocol in protocols]


# -- credentials and redirects ---------------------------------------------------------------------

RULE_HTTP = "no credentials over plain http, to any host"


@check("no_credentials_over_http", {}, doc="""No request over plain http (the Autodiscover GET step,
       autoconfig, a redirect target, any host) carries an Authorization header, a password form
       field, or the client's password in any form (plain, base64, user:password Basic).""")
def no_credentials_over_http(obs, level):
    secrets = _secrets(obs)
    evidence, plain = [], []
    for e in disc.exchanges(obs.wire):
        if e.scheme != "http":
            continue
        plain.append(e)
        if e.credentials:
            scheme = e.request.header("authorization")
            what = f"an Authorization: {scheme.split(' ', 1)[0]} header" if scheme else "a secret form field"
        elif any(len(s) >= 4 and s in e.cmd.raw for s in secrets):
            what = "the password (in the request)"
        else:
            continue
        evidence.append(Evidence(RULE_HTTP, "credentials only over https",
                                 f"{_request(e, secrets)} carried {what} over plain http on {where(e.conn)}",
                                 _http_excerpt(e, secrets), e.conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("plain-http requests with credentials")), security=True)
    hosts = sorted({e.request.host for e in plain})
    seen = f"{len(plain)} plain-http request(s) (to {', '.join(hosts)}), none carried credentials" if plain \
        else "no request over plain http"
    return passed(level, [Evidence(RULE_HTTP, "credentials only over https", seen)])


RULE_TRUST = "a host reached through a redirect is untrusted until validated: no credentials go to it"


def _within(host: str, domains) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


@check("no_credentials_to_untrusted_hosts", {"trusted": list[str]}, doc="""No request carrying
       credentials (an Authorization header, a password form field, the password in any form) goes to a
       host outside the account's own domains: the address's domain, the domains of addresses a
       redirectAddr answer gave, and trusted (more domains), each with its subdomains. A host an HTTP
       redirect or a redirectUrl points at elsewhere is untrusted until validated, and an unattended
       client has no one to validate it with.""")
def no_credentials_to_untrusted_hosts(obs, level, trusted=None):
    secrets = _secrets(obs)
    found = disc.exchanges(obs.wire)
    domains = {(obs.username or "").rpartition("@")[2].lower()} - {""}
    domains |= {e.redirect.target.rpartition("@")[2].lower() for e in found
                if e.redirect is not None and e.redirect.kind == "redirectAddr"}
    domains |= {d.lower().strip(".") for d in trusted or ()}
    reached: dict[str, disc.Exchange] = {}  # host -> the redirect answer that first led there
    for answer, request in disc.followed(found):
        reached.setdefault(request.request.host, answer)
    evidence, sent = [], 0
    for e in found:
        carries = e.credentials or any(len(s) >= 4 and s in e.cmd.raw for s in secrets)
        if not carries:
            continue
        sent += 1
        if _within(e.request.host, domains):
            continue
        how = reached.get(e.request.host)
        via = f", reached by following {how.redirect.show()} from {how.request.host}" if how is not None else ""
        evidence.append(Evidence(RULE_TRUST, f"credentials only to {', '.join(sorted(domains))}",
                                 f"{_request(e, secrets)} carried credentials to {e.request.host}{via}",
                                 _http_excerpt(e, secrets), e.conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("requests with credentials to untrusted hosts")), security=True)
    return passed(level, [Evidence(RULE_TRUST, f"credentials only to {', '.join(sorted(domains))}",
                                   f"{sent} request(s) carried credentials, all to those domains")])


RULE_HOPS = "a client follows a bounded number of discovery redirects"


@check("max_redirects", {"n": int}, minimum={"n": 0}, doc="""In each run the client follows at most n
       redirects: an HTTP 3xx Location, a POX redirectUrl, or a POX redirectAddr, each counted once
       when a later request goes where it pointed (to that URL; for redirectAddr, an Autodiscover
       request for that address).""")
def max_redirects(obs, level, n):
    found = disc.exchanges(obs.wire)
    offered = sum(1 for e in found if e.redirect is not None)
    pairs = disc.followed(found)
    by_run: dict[int, list] = {}
    for answer, request in pairs:
        by_run.setdefault(request.conn.run, []).append((answer, request))
    evidence = []
    for run, hops in sorted(by_run.items()):
        if len(hops) > n:
            answer, request = hops[n]
            evidence.append(Evidence(RULE_HOPS, f"at most {n} redirects followed",
                                     f"{len(hops)} redirects followed in run {run}; hop {n + 1} followed "
                                     f"{answer.redirect.show()} with {_request(request, _secrets(obs))}",
                                     _http_excerpt(request, _secrets(obs)), run))
    if evidence:
        return failed(level, evidence)
    most = max((len(h) for h in by_run.values()), default=0)
    return passed(level, [Evidence(RULE_HOPS, f"at most {n} redirects followed",
                                   f"at most {most} followed in a run ({offered} redirect answer(s) offered)")])


RULE_HTTPS_ONLY = "discovery redirects are followed over https only"


@check("https_only_redirects", {}, doc="""The client never follows a redirect (3xx Location, POX
       redirectUrl) to an http:// URL: no request reaches that URL over plain http after it was
       offered. Upgrading it to https is allowed.""")
def https_only_redirects(obs, level):
    found = disc.exchanges(obs.wire)
    to_http = [e for e in found if e.redirect is not None and e.redirect.scheme == "http"]
    evidence = []
    for answer, request in disc.followed(found):
        if answer.redirect.scheme == "http":
            evidence.append(Evidence(RULE_HTTPS_ONLY, "no redirect to http followed",
                                     f"{_request(answer, _secrets(obs))} answered {answer.redirect.show()}; the "
                                     f"client followed it with {_request(request, _secrets(obs))} over plain http",
                                     _http_excerpt(request, _secrets(obs)), request.conn.run))
    if evidence:
        return failed(level, evidence)
    https = sum(1 for a, _ in disc.followed(found) if a.redirect.scheme != "http")
    seen = f"{len(to_http)} redirect(s) to http offered, none followed" if to_http \
        else "no redirect to http was offered"
    return passed(level, [Evidence(RULE_HTTPS_ONLY, "no redirect to http followed",
                                   f"{seen}; {https} other redirect(s) followed")])


# -- which servers the client used -------------------------------------------------------------------

RULE_USED = "the client uses the mail servers discovery named, and no other"


def _named_text(named: list[disc.MailServer]) -> str:
    return "; ".join(dict.fromkeys(s.show() for s in named)) or "nothing"


@check("used_discovered_servers", {"protocols": list[str], "require": bool},
       choices={"protocols": ("imap", "smtp")}, doc="""Every IMAP/SMTP connection (of protocols; both by
       default) went to a port some discovery answer named for that protocol (Autodiscover settings,
       autoconfig entries, RFC 6186 SRV), and every mail-server name the client looked up (DNS queries on
       the fake DNS; names an in-process client resolved, with their port) is one discovery gave. With
       require (the default), at least one such connection was made.""")
def used_discovered_servers(obs, level, protocols=None, require=True):
    facts = _facts(obs)
    protocols = tuple(protocols or ("imap", "smtp"))
    named = [s for s in facts.named_servers() if s.protocol in protocols]
    expected = f"only {_named_text(named)}"
    allowed = {(s.protocol, s.listener) for s in named if s.listener}
    pairs = {(s.host, s.listener) for s in named if s.listener}
    secrets = _secrets(obs)
    evidence = []
    conns = _mail_connections(obs, protocols)
    for conn in conns:
        if (conn.protocol, conn.server) not in allowed:
            evidence.append(Evidence(RULE_USED, expected, f"{where(conn)} went to the {conn.server} port "
                                     f"({facts.ports.get(conn.server)}), which no discovery answer named",
                                     excerpt(conn, secrets=secrets), conn.run))
    guessed = facts.guessed_hosts()
    names = disc.lookups(obs)
    for look in names:
        listener = facts.listener_of(look.port) if look.port is not None else None
        if listener is not None and disc.MAIL_LISTENERS[listener] in protocols:
            if (look.name, listener) not in pairs:
                evidence.append(Evidence(RULE_USED, expected, f"the client went to {look.name}:{look.port} "
                                         f"({listener}; {look.how}), which no discovery answer named", run=look.run))
        elif look.port is None and look.name in guessed:
            evidence.append(Evidence(RULE_USED, expected, f"the client looked up {look.name} ({look.how}), a mail "
                                     "server name no discovery answer gave",
                                     excerpt(look.conn) if look.conn is not None else "", look.run))
    if evidence:
        return failed(level, capped(evidence, _more("connections or lookups elsewhere")))
    if require and not conns:
        return failed(level, [Evidence(RULE_USED, expected, "the client never connected to a mail server "
                                       f"({', '.join(protocols)})", run=None)])
    used = sorted({f"{c.protocol}/{c.server}" for c in conns})
    mail_names = sorted({n.name for n in names if n.name not in facts.web_hosts()})
    hosts = f"names looked up: {', '.join(mail_names)}" if mail_names else \
        "no mail-server name lookup was recorded (hosts judged by port only)"
    return passed(level, [Evidence(RULE_USED, expected, f"{len(conns)} connection(s), to {', '.join(used) or 'none'}; "
                                   f"{hosts}")])


RULE_PLAINTEXT = "a server discovery lists as plaintext-only is never used without TLS"


@check("no_plaintext_servers", {}, doc="""On every connection to the port of a server a discovery
       answer lists as plaintext-only (autoconfig socketType plain, Autodiscover Encryption None), the
       client sends nothing but CAPABILITY, STARTTLS, NOOP, ID, EHLO/HELO, RSET and LOGOUT/QUIT before
       TLS: it never logs in, selects, fetches or submits in plaintext. Credentials or mail sent so make
       it a security failure.""")
def no_plaintext_servers(obs, level):
    facts = _facts(obs)
    plain = [s for s in facts.named_servers() if s.security == "none" and s.listener]
    if not plain:
        raise ValueError("no discovery answer names a plaintext-only server: nothing to judge")
    listeners = {s.listener for s in plain}
    secrets = _secrets(obs)
    evidence, security, judged = [], False, 0
    for conn in _mail_connections(obs):
        if conn.server not in listeners:
            continue
        judged += 1
        used = [c for c in conn.commands if not c.tls and c.name.upper() not in HARMLESS]
        if not used:
            continue
        cmd = used[0]
        security = security or any(c.credentials or c.mail_data for c in used)
        entry = next(s for s in plain if s.listener == conn.server)
        evidence.append(Evidence(RULE_PLAINTEXT, "TLS (or nothing) on a plaintext-only server",
                                 f"{cmd.redacted!r} sent without TLS on {where(conn)}, the port of {entry.show()} "
                                 f"from the {entry.source}", excerpt(conn, command=cmd, secrets=secrets), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("connections used in plaintext")), security=security)
    seen = f"{judged} connection(s) to its port, none used without TLS" if judged else "the client never connected"
    return passed(level, [Evidence(RULE_PLAINTEXT, "TLS (or nothing) on a plaintext-only server",
                                   f"plaintext-only: {_named_text(plain)}; {seen}")])


RULE_SRV = "a service whose SRV target is \".\" is not available, and is not tried (RFC 6186 §3.4)"


@check("srv_not_available_respected", {}, doc="""For every RFC 6186 SRV record whose target is "."
       (_imap._tcp, _imaps._tcp, _submission._tcp, _submissions._tcp), the client makes no connection to
       the fake serving that service.""")
def srv_not_available_respected(obs, level):
    facts = _facts(obs)
    gone = facts.not_available()
    if not gone:
        raise ValueError('the scenario has no SRV record with target "." (not available): nothing to judge')
    evidence = []
    conns = _mail_connections(obs)
    for na in gone:
        for conn in conns:
            if conn.server == na.listener:
                evidence.append(Evidence(RULE_SRV, f"no connection for {na.owner}",
                                         f"{where(conn)}: the {na.listener} port ({facts.ports.get(na.listener)}) "
                                         f"serves {na.owner}, whose SRV target is \".\"",
                                         excerpt(conn, secrets=_secrets(obs)), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("connections to unavailable services")))
    used = sorted({f"{c.protocol}/{c.server}" for c in conns})
    return passed(level, [Evidence(RULE_SRV, "no connection for " + ", ".join(n.owner for n in gone),
                                   f"none; the client connected to {', '.join(used) or 'no mail server'}")])


RULE_NATIONAL = "a redirect to a national cloud is reported as unsupported (measured)"


@check("national_cloud_reported", {"patterns": list[str]}, doc="""Measured only (INFO, never a failure):
       whether a redirect to a national-cloud Autodiscover endpoint (China/21Vianet, US Government,
       Germany) was offered and followed, whether credentials went there, and whether each run's
       output (stdout, stderr, the python exception) says so, by patterns (case-insensitive regexes; a
       default list of words such as "national", "sovereign", "not supported").""")
def national_cloud_reported(obs, level, patterns=None):
    from fake_servers.discovery import NATIONAL_CLOUDS

    clouds = set(NATIONAL_CLOUDS.values())
    compiled = [re.compile(p, re.IGNORECASE) for p in (patterns or NATIONAL_PATTERNS)]
    found = disc.exchanges(obs.wire)
    evidence = []
    offers = [e for e in found if e.redirect is not None and e.redirect.kind != "redirectAddr"
              and (re.sub(r"^\w+://", "", e.redirect.target).split("/", 1)[0].split(":", 1)[0].lower() in clouds)]
    reached = [e for e in found if e.request.host in clouds]
    expected = "the redirect reported as unsupported"
    if not offers:
        evidence.append(Evidence(RULE_NATIONAL, expected, "no redirect to a national cloud was offered"))
    for e in offers[:1]:
        with_creds = [r for r in reached if r.credentials]
        went = f"followed it ({len(reached)} request(s) to the cloud endpoint" + \
            (f", {len(with_creds)} with credentials)" if with_creds else ", no credentials)") if reached \
            else "did not follow it"
        shown = (reached or [e])[0]
        evidence.append(Evidence(RULE_NATIONAL, expected, f"{_request(e, _secrets(obs))} answered "
                                 f"{e.redirect.show()}; the client {went}", _http_excerpt(shown, _secrets(obs)),
                                 e.conn.run))
    for outcome in obs.outcomes:
        text = _output(outcome)
        # the last matching line: a traceback ends with its message
        line = next((ln.strip() for ln in reversed(text.splitlines()) if any(p.search(ln) for p in compiled)), None)
        said = f"its output says: {_tail(line)[-200:]!r}" if line else \
            ("its output does not mention it" if text.strip() else "it printed nothing")
        evidence.append(Evidence(RULE_NATIONAL, expected, f"run {outcome.run} ({_status(outcome)}): {said}",
                                 run=outcome.run))
    return measured(evidence)


# -- OAuth -----------------------------------------------------------------------------------------------


@dataclass
class OAuthLogin:
    """One XOAUTH2/OAUTHBEARER authentication on an IMAP or SMTP connection."""

    conn: object
    cmd: object
    mechanism: str
    user: str | None
    token: str | None
    ok: bool
    answer: str  # the final reply line

    @property
    def at(self) -> float:
        return self.cmd.at


def _sasl_fields(data: bytes) -> tuple[str | None, str | None]:
    """(user, bearer token) from an XOAUTH2 or OAUTHBEARER client response (base64)."""
    try:
        text = base64.b64decode(data.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None, None
    user = re.search(r"(?:^|\x01)user=([^\x01]*)", text) or re.search(r"(?:^|,)a=([^,\x01]*)", text)
    token = re.search(r"auth=Bearer ([^\x01]+)", text, re.IGNORECASE)
    return (user.group(1) if user else None), (token.group(1).strip() if token else None)


def oauth_logins(obs) -> list[OAuthLogin]:
    out = []
    for conn in _mail_connections(obs):
        commands = list(conn.commands)
        for i, cmd in enumerate(commands):
            if cmd.name.upper() not in ("AUTHENTICATE", "AUTH"):
                continue
            words = cmd.raw.split()
            at = 2 if conn.protocol == "imap" else 1  # tag AUTHENTICATE MECH [ir] / AUTH MECH [ir]
            mech = words[at].decode("ascii", "replace").upper() if len(words) > at else ""
            if mech not in OAUTH_MECHANISMS:
                continue
            response = words[at + 1] if len(words) > at + 1 else None
            if response is None:
                nxt = next((c for c in commands[i + 1:] if c.name.upper() == "CONTINUATION"), None)
                response = nxt.raw if nxt is not None else b""
            user, token = _sasl_fields(response)
            answer = _tagged_answer(conn, cmd)
            status = (answer.status or "").upper() if answer is not None else ""
            ok = status == "OK" or status.startswith("2")
            line = answer.line if answer is not None else "(no answer)"
            out.append(OAuthLogin(conn, cmd, mech, user, token, ok, line))
    return sorted(out, key=lambda login: login.at)


def _token_requests(obs, facts) -> list[disc.Exchange]:
    cfg = facts.config.oauth
    return [e for e in disc.exchanges(obs.wire)
            if cfg is not None and e.request.host == cfg.host and e.request.path == cfg.path]


RULE_REFRESH = "a client whose OAuth token is refused as expired gets a new one and continues"


@check("oauth_token_refreshed", {}, doc="""Every run in which the mail server refused an access token
       the OAuth endpoint had issued (XOAUTH2/OAUTHBEARER answered NO or 5xx: it expired) goes on to
       authenticate successfully with a different token the endpoint issued (by a refresh_token or a new
       grant). A client that never authenticates with OAuth fails; one whose every token worked passes.""")
def oauth_token_refreshed(obs, level):
    facts = _facts(obs)
    issued = {g.access_token: g for g in facts.grants}
    logins = oauth_logins(obs)
    secrets = _secrets(obs)
    if not logins:
        others = [c for c in _mail_connections(obs) if any(cmd.credentials for cmd in c.commands)]
        how = f"; it authenticated otherwise on {len(others)} connection(s)" if others else ""
        return failed(level, [Evidence(RULE_REFRESH, "XOAUTH2 with a fresh token after the refusal",
                                       f"the client never authenticated with XOAUTH2 or OAUTHBEARER "
                                       f"({len(facts.grants)} token(s) issued){how}",
                                       excerpt(others[0], secrets=secrets) if others else "", None)])
    evidence, recovered = [], []
    for run in sorted({login.conn.run for login in logins}):
        mine = [login for login in logins if login.conn.run == run]
        refusal = next((login for login in mine if not login.ok and login.token in issued), None)
        if refusal is None:
            continue
        later = [login for login in mine if login.at > refusal.at]
        good = next((login for login in later if login.ok and login.token != refusal.token
                     and login.token in issued), None)
        if good is not None:
            grant = issued[good.token]
            asked = [e for e in _token_requests(obs, facts) if refusal.at < e.at < good.at]
            how = f"after {len(asked)} token request(s) ({grant.grant_type} grant)" if asked else \
                f"with a token it already held ({grant.grant_type} grant)"
            recovered.append(f"run {run}: refused {_short(refusal.token)} ({refusal.answer!r}), then logged in "
                             f"with {_short(good.token)} {how}")
            continue
        again = sum(1 for login in later if login.token == refusal.token)
        other_logins = [c for c in obs.wire.select(run=run) if c.protocol in ("imap", "smtp")
                        for cmd in c.commands if cmd.name.upper() in ("LOGIN", "AUTHENTICATE", "AUTH")
                        and cmd.at > refusal.at and not any(cmd is login.cmd for login in mine)]
        what = f"tried the refused token {again} more time(s)" if again else \
            ("fell back to another login" if other_logins else "did not authenticate again")
        evidence.append(Evidence(RULE_REFRESH, "a new token, then a successful login",
                                 f"run {run}: {refusal.mechanism} with {_short(refusal.token)} on "
                                 f"{where(refusal.conn)} "
                                 f"was refused ({refusal.answer!r}); afterwards the client {what}",
                                 excerpt(refusal.conn, command=refusal.cmd, secrets=secrets), run))
    if evidence:
        return failed(level, evidence)
    if not recovered:
        return passed(level, [Evidence(RULE_REFRESH, "a new token, then a successful login",
                                       f"no token was refused: {len(logins)} OAuth login(s), "
                                       f"{len({login.token for login in logins})} token(s), all accepted")])
    return passed(level, [Evidence(RULE_REFRESH, "a new token, then a successful login", text)
                          for text in recovered])


def _short(token: str | None) -> str:
    """A token named in evidence: enough to tell tokens apart, not enough to use one."""
    if not token:
        return "(no token)"
    return f"token …{token[-6:]}" if len(token) > 12 else "token ***"


RULE_IDENTITY = "a client refuses an OAuth identity other than the address it was set up for"


@check("oauth_identity_refused", {}, doc="""When the OAuth endpoint issued a token whose identity (the
       id_token's email, whom the token logs in as) differs from the account's address, no IMAP or SMTP
       session authenticates as that identity (by XOAUTH2/OAUTHBEARER or otherwise): the client neither
       logs in nor syncs as someone else.""")
def oauth_identity_refused(obs, level):
    facts = _facts(obs)
    oauth = facts.config.oauth
    if oauth is None or not oauth.identity:
        raise ValueError("the scenario's [provider.discovery.oauth] sets no other identity: nothing to judge")
    me = (obs.username or "").lower()
    others = {g.identity.lower() for g in facts.grants if g.identity.lower() != me} or {oauth.identity.lower()}
    secrets = _secrets(obs)
    logins = oauth_logins(obs)
    evidence = []
    for conn in _mail_connections(obs):
        user = (conn.user or "").lower()
        oauth_ok = [login for login in logins if login.conn is conn and login.ok
                    and (login.user or "").lower() in others]
        if user in others or oauth_ok:
            cmd = oauth_ok[0].cmd if oauth_ok else next((c for c in conn.commands if c.credentials), None)
            answer = _tagged_answer(conn, cmd) if cmd is not None else None
            after = [c.redacted for c in conn.commands if answer is not None and c.at > answer.at][:3]
            did = f"; then {', '.join(repr(a) for a in after)}" if after else ""
            evidence.append(Evidence(RULE_IDENTITY, f"no session as {', '.join(sorted(others))}",
                                     f"{where(conn)} logged in as {user or oauth_ok[0].user}{did}",
                                     excerpt(conn, command=cmd, secrets=secrets), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("sessions as the other identity")), security=True)
    mismatched = [g for g in facts.grants if g.identity.lower() in others]
    presented = [login for login in logins if login.token in {g.access_token for g in mismatched}]
    if not mismatched:
        seen = "the client obtained no token for the other identity"
    elif presented:
        seen = (f"the endpoint issued {len(mismatched)} token(s) for {', '.join(sorted(others))}; the client "
                f"presented one {len(presented)} time(s) (as {presented[0].user}), never logged in as them")
    else:
        seen = (f"the endpoint issued {len(mismatched)} token(s) for {', '.join(sorted(others))} (asked for by "
                f"{mismatched[0].requested_by}); the client never presented one")
    return passed(level, [Evidence(RULE_IDENTITY, f"no session as {', '.join(sorted(others))}", seen)])
