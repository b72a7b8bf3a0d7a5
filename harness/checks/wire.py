"""Checks decided from the wire log alone: what the client sent, when, and over what.

These hold for clients that expose nothing, so most MUST rules live here. Each looks at
the fakes' record (commands with TLS state and credential flags, responses with their
codes and whether a fault injected them, connection open/close/TLS times) and names the
offending command with a redacted transcript window.
"""

from __future__ import annotations

import base64
import math
import re

from ..verdicts import Evidence
from . import capabilities as caps
from . import check
from .evidence import capped, excerpt, failed, passed, where

LOGIN_COMMANDS = ("LOGIN", "AUTHENTICATE", "AUTH")  # IMAP, and SMTP's AUTH
PROTOCOLS = ("imap", "smtp", "http", "dns", "any")
TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
SECURITY = ("tls", "starttls", "none")
DEFAULT_REFUSAL = r"too many|maximum number of connections|connection limit|simultaneous connections"


# -- shared helpers ------------------------------------------------------------------------------


def secrets_of(obs) -> tuple[bytes, ...]:
    """Every credential the client was given, as bytes (the password included), and the base64
    forms SMTP's AUTH sends them in: the password alone (AUTH LOGIN) and the PLAIN response
    (RFC 4616: authzid NUL authcid NUL password, with an empty or repeated authzid)."""
    found = list(obs.secrets)
    if obs.password:
        found.append(obs.password.encode("utf-8"))
    user = (getattr(obs, "username", "") or "").encode("utf-8")
    for secret in [s for s in found if len(s) >= 4]:
        found.append(base64.b64encode(secret))
        if user:
            found.append(base64.b64encode(b"\0" + user + b"\0" + secret))
            found.append(base64.b64encode(user + b"\0" + user + b"\0" + secret))
    return tuple(dict.fromkeys(s for s in found if s))


def _select(obs, protocol: str = "any"):
    return obs.wire.select(protocol=None if protocol == "any" else protocol)


def _more(what: str):
    def summary(rest: list[Evidence]) -> Evidence:
        runs = sorted({e.run for e in rest if e.run is not None})
        return Evidence(rest[0].rule, rest[0].expected, f"{len(rest)} more {what} (runs {runs})")
    return summary


def _tagged_answer(conn, cmd):
    """The final response to ``cmd``: the tagged line with its tag (IMAP), or the first
    non-continuation reply after it (SMTP)."""
    for resp in conn.responses:
        if resp.at < cmd.at:
            continue
        if cmd.tag is not None:
            if resp.kind == "tagged" and resp.tag == cmd.tag:
                return resp
        elif resp.status and not str(resp.status).startswith("3"):
            return resp
    return None


def _is_login(cmd) -> bool:
    return cmd.name.upper() in LOGIN_COMMANDS


# -- credentials and TLS -------------------------------------------------------------------------

RULE_CREDENTIALS = "no credential before TLS"


@check("no_credentials_before_tls", {}, doc="""No password, token or SASL response crosses the wire
       before TLS is established, on any connection, in any command (the client's secrets are
       also searched for in every plaintext byte it sent).""")
def no_credentials_before_tls(obs, level):
    secrets = secrets_of(obs)
    evidence, flagged, used = [], set(), set()
    for conn, text in obs.wire.credentials_before_tls(secrets):
        cmd = next((c for c in conn.commands if c.credentials and not c.tls and c.redacted == text
                    and id(c) not in used), None)
        if cmd is not None:
            used.add(id(cmd))
            flagged.add(conn.id)
            late = "" if cmd.executed else " (pipelined behind STARTTLS and thrown away, but it crossed the wire)"
            observed = f"{cmd.redacted!r} sent in plaintext on {where(conn)}{late}"
        else:
            if conn.id in flagged:  # the secret's bytes inside a command already reported
                continue
            cmd = next((c for c in conn.commands if not c.tls and any(s in c.raw for s in secrets if len(s) >= 4)),
                       None)
            inside = f" inside {cmd.redacted!r}" if cmd is not None else ""
            observed = f"{text}{inside} on {where(conn)}"
        evidence.append(Evidence(RULE_CREDENTIALS, "credentials only after the TLS handshake", observed,
                                 excerpt(conn, command=cmd, secrets=secrets), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("plaintext credentials")), security=True)
    conns = obs.wire.select()
    with_creds = sum(1 for c in conns if any(cmd.credentials for cmd in c.commands))
    return passed(level, [Evidence(RULE_CREDENTIALS, "credentials only after the TLS handshake",
                                   f"{len(conns)} connections, {with_creds} carried credentials, all over TLS")])


RULE_LOGINDISABLED = "no LOGIN or AUTHENTICATE while LOGINDISABLED is advertised (RFC 3501 §6.2.3)"


@check("no_login_when_logindisabled", {}, doc="""On a connection whose server advertised LOGINDISABLED
       before TLS, the client sends no LOGIN or AUTHENTICATE until TLS is established.""")
def no_login_when_logindisabled(obs, level):
    evidence = []
    for conn in obs.wire.select(protocol="imap"):
        anns = [a for a in caps.announcements(conn) if not a.tls and "LOGINDISABLED" in a.caps]
        if not anns:
            continue
        for cmd in conn.commands:
            if cmd.tls or cmd.name.upper() not in ("LOGIN", "AUTHENTICATE"):
                continue
            told = next((a for a in anns if a.at <= cmd.at), None)
            if told is None:
                continue
            evidence.append(Evidence(
                RULE_LOGINDISABLED, "STARTTLS (or giving up) before any LOGIN/AUTHENTICATE",
                f"{cmd.redacted!r} sent in plaintext on {where(conn)} after the server announced "
                f"LOGINDISABLED in {told.line!r}", excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("plaintext logins")), security=True)
    return passed(level)


RULE_MAIL = "no mail content crosses the wire in plaintext when the client was configured for TLS"
_CONTENT_ITEMS = re.compile(r"\b(?:BODY(?:\.PEEK)?\[|BINARY(?:\.PEEK)?\[|RFC822(?:\.HEADER|\.TEXT)?(?![.\w])|"
                            r"ENVELOPE\b|ALL\b|FULL\b)", re.IGNORECASE)


def configured_security(obs, protocol: str = "imap") -> str | None:
    """How the scenario configured the client for ``protocol`` (``tls``/``starttls``/``none``):
    its ``[client]`` table, else attributes of the scenario itself, when it says."""
    for source in (getattr(obs.scenario, "client", None), obs.scenario):
        for attr in (f"{protocol}_security", "security"):
            value = getattr(source, attr, None)
            if value in SECURITY:
                return value
    return None


@check("no_mail_data_before_tls", {"security": str}, choices={"security": SECURITY}, doc="""When the
       client is configured for TLS or STARTTLS, no message content crosses the wire in plaintext:
       no APPEND or SMTP message data, and no FETCH of bodies, headers or envelopes before TLS. The
       configuration is security when given, else the scenario's imap_security for IMAP connections
       and smtp_security for SMTP ones.""")
def no_mail_data_before_tls(obs, level, security=None):
    evidence, judged = [], 0
    for conn in obs.wire.select():
        wanted = security or configured_security(obs, conn.protocol) or "starttls"
        if wanted == "none":
            continue
        judged += 1
        for cmd in conn.commands:
            if cmd.tls:
                continue
            if cmd.mail_data:
                what = f"message content sent in plaintext: {cmd.redacted!r}"
            elif cmd.name.upper() in ("FETCH", "UID FETCH") and _CONTENT_ITEMS.search(cmd.redacted):
                what = f"message content requested in plaintext: {cmd.redacted!r}"
            else:
                continue
            evidence.append(Evidence(RULE_MAIL, f"mail data only over TLS (client configured for {wanted})",
                                     f"{what} on {where(conn)}", excerpt(conn, command=cmd, secrets=secrets_of(obs)),
                                     conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("plaintext mail commands")), security=True)
    if not judged and obs.wire.select():
        return passed(level, [Evidence(RULE_MAIL, "nothing (the client was configured for plaintext)",
                                       "not applicable")])
    return passed(level)


RULE_ABORT = "a client that cannot get a trustworthy TLS connection gives up without sending credentials"


@check("aborts_without_credentials", {}, doc="""For STARTTLS stripping, PREAUTH, missing STARTTLS and
       bad certificates: no LOGIN/AUTHENTICATE/AUTH command and no credential bytes on any connection,
       over TLS or not.""")
def aborts_without_credentials(obs, level):
    secrets = secrets_of(obs)
    evidence = []
    for conn in obs.wire.select():
        reported = False
        for cmd in conn.commands:
            if cmd.credentials or _is_login(cmd):
                state = "over TLS" if cmd.tls else "in plaintext"
                evidence.append(Evidence(RULE_ABORT, "no login attempt at all", f"{cmd.redacted!r} sent {state} on "
                                         f"{where(conn)}", excerpt(conn, command=cmd, secrets=secrets), conn.run))
                reported = True
                break
        if reported:
            continue
        sent = conn.client_bytes()
        leaked = [s for s in secrets if len(s) >= 4 and s in sent]
        if leaked:
            cmd = next((c for c in conn.commands if any(s in c.raw for s in leaked)), None)
            inside = f" inside {cmd.redacted!r}" if cmd is not None else ""
            evidence.append(Evidence(RULE_ABORT, "no credential bytes at all",
                                     f"the password ({len(leaked[0])} bytes) was sent{inside} on {where(conn)}",
                                     excerpt(conn, command=cmd, secrets=secrets), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("connections with login attempts")), security=True)
    conns = obs.wire.select()
    return passed(level, [Evidence(RULE_ABORT, "no login attempt at all",
                                   f"{len(conns)} connections, none carried credentials")])


RULE_USED_TLS = "credentials only over TLS of an allowed version (RFC 8996, RFC 8314)"


def _rank(version: str | None) -> int | None:
    if version is None:
        return None
    version = version.replace("_", ".").replace("TLSv1.0", "TLSv1")
    if version.startswith("SSL"):
        return -1
    return TLS_VERSIONS.index(version) if version in TLS_VERSIONS else None


@check("used_tls", {"min_version": str}, choices={"min_version": TLS_VERSIONS}, doc="""Every connection
       that carried credentials was TLS, at min_version or newer, when they were sent.""")
def used_tls(obs, level, min_version="TLSv1.2"):
    secrets = secrets_of(obs)
    floor = TLS_VERSIONS.index(min_version)
    evidence, undecided, carrying = [], [], 0
    for conn in obs.wire.select():
        creds = [c for c in conn.commands if c.credentials]
        sent = conn.client_bytes()
        leaked = [s for s in secrets if len(s) >= 4 and s in sent]
        if not creds and not leaked:
            continue
        carrying += 1
        plain_cmd = next((c for c in creds if not c.tls), None)
        plain_leak = any(s in conn.client_bytes(tls=False) for s in leaked)
        if plain_cmd is not None or plain_leak:
            cmd = plain_cmd or next((c for c in conn.commands if not c.tls and any(s in c.raw for s in leaked)), None)
            text = f"{cmd.redacted!r} sent in plaintext" if cmd is not None else "the password sent in plaintext"
            evidence.append(Evidence(RULE_USED_TLS, f"TLS ({min_version} or newer) before credentials",
                                     f"{text} on {where(conn)}", excerpt(conn, command=cmd, secrets=secrets), conn.run))
            continue
        rank = _rank(conn.tls_version)
        if rank is None:
            undecided.append(f"{where(conn)}: TLS version {conn.tls_version!r} unknown")
        elif rank < floor:
            first = creds[0] if creds else None
            evidence.append(Evidence(RULE_USED_TLS, f"{min_version} or newer",
                                     f"credentials sent over {conn.tls_version} on {where(conn)}",
                                     excerpt(conn, command=first, secrets=secrets), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("connections")), security=True)
    if undecided:
        raise ValueError("cannot tell the TLS version of " + "; ".join(undecided))
    return passed(level, [Evidence(RULE_USED_TLS, f"{min_version} or newer",
                                   f"{carrying} connections carried credentials, all over TLS {min_version}+")])


# -- capabilities --------------------------------------------------------------------------------

RULE_ADVERTISED = "extensions are used only when the capability list in force advertises them"


UNCHECKED_BY_DEFAULT = ("STARTTLS",)  # sent unasked by clients that insist on TLS: safe, so only when listed


@check("only_advertised", {"commands": list[str]}, doc="""Each listed command (every known extension
       command but STARTTLS when omitted; "LITERAL+" stands for non-synchronizing literals) is sent
       only when the capability list in force advertised its capability: the latest list the client
       received before it on that connection, under the same TLS state (IDLE needs IDLE, UID MOVE
       needs MOVE, AUTHENTICATE X needs AUTH=X and, with an initial response, SASL-IR).""")
def only_advertised(obs, level, commands=None):
    wanted = None if commands is None else {" ".join(c.upper().split()).removeprefix("UID ") for c in commands}
    evidence = []
    for conn in obs.wire.select(protocol="imap"):
        anns = caps.announcements(conn)
        for cmd in conn.commands:
            for label, req in caps.requirements(cmd):
                skip = label in UNCHECKED_BY_DEFAULT if wanted is None else label not in wanted
                if skip:
                    continue
                current = caps.in_force(anns, cmd)
                if current is not None and caps.satisfied(req, current.caps):
                    continue
                known = f"the capabilities in force were {current.line!r}" if current else \
                    "no capability list had been received under this TLS state"
                evidence.append(Evidence(RULE_ADVERTISED, f"{label} only after {caps.show(req)} was advertised",
                                         f"{cmd.redacted!r} on {where(conn, cmd)}; {known}",
                                         excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("unadvertised commands")))
    return passed(level)


RULE_REFRESH = "capabilities learnt before STARTTLS are discarded (RFC 3501 §6.2.1)"


@check("capabilities_refreshed_after_tls", {}, doc="""After STARTTLS the client relies only on
       capabilities it received over TLS (a new CAPABILITY response, or a post-TLS greeting/OK code):
       no command sent over TLS needs a capability that only a plaintext announcement (genuine or
       injected) listed.""")
def capabilities_refreshed_after_tls(obs, level):
    evidence = []
    for conn in obs.wire.select(protocol="imap"):
        if conn.implicit_tls or not conn.tls:
            continue
        anns = caps.announcements(conn)
        before = set().union(*(a.caps for a in anns if not a.tls))
        for cmd in conn.commands:
            if not cmd.tls:
                continue
            current = caps.in_force(anns, cmd)
            for _, req in caps.requirements(cmd):
                if (current is not None and caps.satisfied(req, current.caps)) or not caps.satisfied(req, before):
                    continue
                since = f"after TLS the list in force was {current.line!r}" if current else \
                    "no capability list had been received since TLS"
                evidence.append(Evidence(RULE_REFRESH, f"{caps.show(req)} confirmed over TLS before {cmd.name}",
                                         f"{cmd.redacted!r} on {where(conn, cmd)} relies on {caps.show(req)}, "
                                         f"announced only before TLS; {since}",
                                         excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("commands relying on stale capabilities")))
    return passed(level)


RULE_INJECTED = "plaintext lines behind the STARTTLS OK are discarded, never acted on"
_LIST_LINE = re.compile(r'^\* (?:LIST|LSUB|XLIST) \([^)]*\) (?:"(?:[^"\\]|\\.)*"|NIL) (.+)$', re.IGNORECASE)
_MAILBOX_COMMANDS = ("SELECT", "EXAMINE", "STATUS", "APPEND", "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
                     "UNSUBSCRIBE", "COPY", "UID COPY", "MOVE", "UID MOVE")


def _injected_after_starttls(conn) -> list:
    """Plaintext lines a fault injected behind the tagged OK of STARTTLS."""
    tags = {c.tag for c in conn.commands if c.name.upper() == "STARTTLS"}
    ok = next((i for i, r in enumerate(conn.responses)
               if r.kind == "tagged" and r.tag in tags and r.status == "OK"), None)
    if ok is None:
        return []
    return [r for r in conn.responses[ok + 1:] if r.injected and not r.tls]


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _tokens(text: str) -> list[str]:
    return [_unquote(t) for t in re.findall(r'"(?:[^"\\]|\\.)*"|[^\s()]+', text)]


def _listed_names(lines) -> set[str]:
    names = set()
    for line in lines:
        match = _LIST_LINE.match(line)
        if match:
            names.add(_unquote(match.group(1).strip()))
    return names


@check("injected_lines_ignored", {}, doc="""The client does not act on plaintext lines injected behind
       the STARTTLS OK (IMAP) or 220 (SMTP): over TLS it never uses a capability or EHLO extension
       (an AUTH mechanism, SMTPUTF8, BODY=8BITMIME, SIZE=, DSN) only those lines announced, and never
       names a mailbox only those lines listed.""")
def injected_lines_ignored(obs, level):
    evidence, injected_seen = [], 0
    genuine_names = _listed_names(r.line for c in obs.wire.select(protocol="imap") for r in c.responses
                                  if not r.injected)
    for conn in obs.wire.select(protocol="imap"):
        injected = _injected_after_starttls(conn)
        if not injected:
            continue
        injected_seen += len(injected)
        injected_caps = set().union(*(caps.parse(r.line) or frozenset() for r in injected))
        injected_names = _listed_names(r.line for r in injected) - genuine_names
        anns = caps.announcements(conn)
        for cmd in conn.commands:
            if not cmd.tls:
                continue
            genuine = caps.in_force(anns, cmd, injected=False)
            for _, req in caps.requirements(cmd):
                if caps.satisfied(req, injected_caps) and not (genuine and caps.satisfied(req, genuine.caps)):
                    evidence.append(Evidence(RULE_INJECTED, "injected capabilities ignored",
                                             f"{cmd.redacted!r} on {where(conn, cmd)} uses {caps.show(req)}, which "
                                             f"only the injected plaintext line(s) announced",
                                             excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
            if cmd.name.upper() in _MAILBOX_COMMANDS and injected_names:
                named = set(_tokens(cmd.redacted)[2:]) & injected_names
                if named:
                    evidence.append(Evidence(RULE_INJECTED, "injected mailbox list ignored",
                                             f"{cmd.redacted!r} on {where(conn, cmd)} names {sorted(named)[0]!r}, "
                                             f"a mailbox only the injected plaintext line(s) listed",
                                             excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
    from .smtp import injected_evidence

    smtp_evidence, smtp_seen = injected_evidence(obs, RULE_INJECTED)
    evidence += smtp_evidence
    injected_seen += smtp_seen
    if evidence:
        return failed(level, capped(evidence, _more("commands acting on injected lines")), security=True)
    return passed(level, [Evidence(RULE_INJECTED, "injected lines ignored",
                                   f"{injected_seen} injected plaintext lines were sent; none was acted on")])


# -- attempts, connections and pacing -----------------------------------------------------------

RULE_ATTEMPTS = "no login retry loop after a permanent authentication failure"


def _permanent(resp, codes: list[str]) -> bool:
    if resp is None:
        return False
    status = (resp.status or "").upper()
    if status == "NO" and ("*" in codes or (resp.code or "").upper() in codes):
        return True
    return status in codes  # SMTP: "535", "534"...


@check("max_login_attempts", {"n": int, "codes": list[str]}, minimum={"n": 0}, doc="""Within one run, at
       most n LOGIN/AUTHENTICATE (SMTP: AUTH) commands follow the first permanent failure: a NO whose
       response code is in codes (default AUTHENTICATIONFAILED; "*" means any NO), or an SMTP reply
       whose code is listed.""")
def max_login_attempts(obs, level, n, codes=None):
    codes = [c.upper() for c in (codes or ["AUTHENTICATIONFAILED"])]
    evidence = []
    attempts_by_run: dict[int, list] = {}
    for conn in obs.wire.select():
        for cmd in conn.commands:
            if _is_login(cmd):
                attempts_by_run.setdefault(conn.run, []).append((cmd.at, conn, cmd))
    worst, failing_runs = 0, 0
    for run, attempts in sorted(attempts_by_run.items()):
        attempts.sort(key=lambda item: item[0])
        failure = None
        for _, conn, cmd in attempts:
            answer = _tagged_answer(conn, cmd)
            if _permanent(answer, codes):
                failure = (conn, answer)
                break
        if failure is None:
            continue
        failing_runs += 1
        fail_conn, fail_resp = failure
        later = [(conn, cmd) for at, conn, cmd in attempts if at > fail_resp.at]
        worst = max(worst, len(later))
        if len(later) > n:
            conn, cmd = later[n]
            evidence.append(Evidence(
                RULE_ATTEMPTS, f"at most {n} more login attempt(s) after {fail_resp.line!r}",
                f"{len(later)} more attempts in run {run}; attempt {n + 1} was {cmd.redacted!r} on {where(conn)}, "
                f"{cmd.at - fail_resp.at:.2f} s after the failure on connection #{fail_conn.id}",
                excerpt(conn, command=cmd, secrets=secrets_of(obs)), run))
    if evidence:
        return failed(level, evidence)
    if not failing_runs:
        return passed(level, [Evidence(RULE_ATTEMPTS, f"at most {n} more attempts",
                                       f"no login was refused with {', '.join(codes)}")])
    return passed(level, [Evidence(RULE_ATTEMPTS, f"at most {n} more attempts",
                                   f"at most {worst} attempts after a permanent failure "
                                   f"({failing_runs} run(s) with one)")])


RULE_BACKOFF = "the client waits the backoff the server suggested before coming back"
LEAVING = ("LOGOUT", "QUIT")  # saying goodbye at once is not coming back
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(milliseconds?|millis|ms|seconds?|secs?|s)\b", re.IGNORECASE)


def _suggested(line: str) -> float | None:
    match = _DURATION.search(line)
    if match is None:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2).lower().startswith("m") else value


@check("backoff_respected", {"min_seconds": float, "pattern": str}, minimum={"min_seconds": 0}, doc="""After
       a BYE/NO/BAD whose text asks for a backoff (pattern, a case-insensitive regex), the client's next
       contact in that run (a new connection, or a command other than LOGOUT/QUIT on the same
       connection) comes at least min_seconds later (default: the duration the text names).""")
def backoff_respected(obs, level, min_seconds=None, pattern=r"back ?off"):
    wanted = re.compile(pattern, re.IGNORECASE)
    conns = obs.wire.select()
    evidence, checked = [], 0
    for conn in conns:
        resp = next((r for r in conn.responses if (r.status or "").upper() in ("BYE", "NO", "BAD")
                     and wanted.search(r.line)), None)
        if resp is None:
            continue
        wait = min_seconds if min_seconds is not None else _suggested(resp.line)
        if wait is None:
            raise ValueError(f"no min_seconds given and no duration in {resp.line!r}")
        checked += 1
        contacts = [(c.opened_at, c, None) for c in conns
                    if c.run == conn.run and c.protocol == conn.protocol and c.opened_at > resp.at]
        contacts += [(cmd.at, conn, cmd) for cmd in conn.commands
                     if cmd.at > resp.at and cmd.name.upper() not in LEAVING]
        if not contacts:
            continue
        at, other, cmd = min(contacts, key=lambda item: item[0])
        if at - resp.at + 1e-6 < wait:
            what = f"{cmd.redacted!r} on the same connection" if cmd is not None else f"{where(other)} opened"
            evidence.append(Evidence(RULE_BACKOFF, f"at least {wait:g} s before the next contact",
                                     f"{what} {at - resp.at:.3f} s after {resp.line!r} on connection #{conn.id}",
                                     excerpt(conn, response=resp, secrets=secrets_of(obs)), conn.run))
    if evidence:
        return failed(level, evidence)
    return passed(level, [Evidence(RULE_BACKOFF, "the suggested backoff respected",
                                   f"{checked} backoff request(s) seen; every next contact waited")])


RULE_CAP = "the client stays within the server's connection limit once told"


def _refusal(conn, wanted: re.Pattern):
    return next((r for r in conn.responses if (r.status or "").upper() in ("BYE", "NO")
                 and wanted.search(r.line)), None)


def _peak(conns, since: float = -math.inf) -> tuple[int, float]:
    """(peak number open at once, when) counting only time from ``since``."""
    edges = []
    for c in conns:
        end = c.closed_at if c.closed_at is not None else math.inf
        if end < since:
            continue
        edges += [(max(c.opened_at, since), 1), (end, -1)]
    edges.sort(key=lambda e: (e[0], e[1]))
    peak, current, moment = 0, 0, since
    for at, delta in edges:
        current += delta
        if current > peak:
            peak, moment = current, at
    return peak, moment


@check("max_connections", {"n": int, "protocol": str, "refusal": str}, minimum={"n": 1},
       choices={"protocol": PROTOCOLS}, doc="""At most n connections open at once. When the server
       refused one for the limit (a BYE/NO matching refusal), the limit is judged from that moment:
       no later connection is refused, and the accepted ones never exceed n at once.""")
def max_connections(obs, level, n, protocol="imap", refusal=DEFAULT_REFUSAL):
    wanted = re.compile(refusal, re.IGNORECASE)
    conns = _select(obs, protocol)
    refused = {c.id: r for c in conns if (r := _refusal(c, wanted)) is not None}
    evidence = []
    if not refused:
        peak, moment = _peak(conns)
        if peak > n:
            opened = max((c for c in conns if c.opened_at <= moment), key=lambda c: c.opened_at)
            evidence.append(Evidence(RULE_CAP, f"at most {n} open at once", f"{peak} open at once when "
                                     f"{where(opened)} opened", excerpt(opened, secrets=secrets_of(obs)), opened.run))
    else:
        first_id, first = min(refused.items(), key=lambda item: item[1].at)
        first_conn = next(c for c in conns if c.id == first_id)
        for c in conns:
            if c.id in refused and c.opened_at > first.at:
                evidence.append(Evidence(RULE_CAP, f"no connection refused after the first refusal (at most {n})",
                                         f"{where(c)} opened {c.opened_at - first.at:.3f} s after "
                                         f"{first.line!r} (connection #{first_conn.id}) and was refused too",
                                         excerpt(c, response=refused[c.id], secrets=secrets_of(obs)), c.run))
        peak, moment = _peak([c for c in conns if c.id not in refused], since=first.at)
        if peak > n:
            evidence.append(Evidence(RULE_CAP, f"at most {n} open at once after the first refusal",
                                     f"{peak} accepted connections open at once, "
                                     f"{moment - first.at:.3f} s after the refusal",
                                     excerpt(first_conn, response=first, secrets=secrets_of(obs)), first_conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("refused connections")))
    peak = obs.wire.peak_concurrency(protocol=None if protocol == "any" else protocol)
    return passed(level, [Evidence(RULE_CAP, f"at most {n} open at once",
                                   f"peak {peak} open at once (refused ones included), {len(refused)} refused")])


RULE_STORM = "no retry storm: a bounded number of connections per run"


@check("no_retry_storm", {"max_connections_per_run": int, "protocol": str}, choices={"protocol": PROTOCOLS},
       minimum={"max_connections_per_run": 1}, doc="""In every run the client opens at most
       max_connections_per_run connections (of protocol; imap by default).""")
def no_retry_storm(obs, level, max_connections_per_run, protocol="imap"):
    by_run: dict[int, list] = {}
    for conn in _select(obs, protocol):
        by_run.setdefault(conn.run, []).append(conn)
    evidence = []
    for run, conns in sorted(by_run.items()):
        if len(conns) > max_connections_per_run:
            span = conns[-1].opened_at - conns[0].opened_at
            evidence.append(Evidence(RULE_STORM, f"at most {max_connections_per_run} connections in a run",
                                     f"{len(conns)} connections in run {run} within {span:.2f} s",
                                     excerpt(conns[-1], secrets=secrets_of(obs)), run))
    if evidence:
        return failed(level, evidence)
    most = max((len(c) for c in by_run.values()), default=0)
    return passed(level, [Evidence(RULE_STORM, f"at most {max_connections_per_run} connections in a run",
                                   f"at most {most} connections in a run")])
