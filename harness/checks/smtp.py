"""Checks of SMTP submission: the outbox against what the fake accepted, and how the client talked.

Two records decide them. The fake's submissions (every end of DATA, accepted or not, and
whether its reply reached the wire) say what was delivered; the outbox listing after each
run says what the client treated as sent (CONTRACT.md: "a client moves or deletes a file
only once it was accepted"). The wire log says what the client sent and under which EHLO.

Submissions are matched to outbox messages by Message-ID (the loader makes sure each outbox
message has its own). A message's recipients are the addresses of its To, Cc and Bcc headers.

The wire is read as SMTP exchanges: each command paired, in order, with the reply that
answers it (a multi-line reply is one reply; the greeting and lines a fault added beside the
real answer answer nothing, see :func:`exchanges`), then grouped into mail transactions
(MAIL, RCPT..., DATA, end of data). The EHLO in force for a command is the last EHLO answered
with 250 on that connection, under the same TLS state, before the command was sent.
"""

from __future__ import annotations

import fnmatch
import re
from collections import deque
from dataclasses import dataclass, field

from ..outbox import address, addresses, header, message_id, recipients
from ..verdicts import Evidence
from . import check
from .evidence import capped, describe_message, excerpt, failed, measured, passed, where
from .wire import secrets_of

TEMPORARY_CODES = ("421", "450", "451", "452", "454")
DEFAULT_QUOTA = r"\b5\.4\.5\b|quota"


# -- the wire as SMTP exchanges ----------------------------------------------------------------------


@dataclass
class Reply:
    """One SMTP reply: its lines (the last one without a hyphen) as the fake sent them."""

    lines: list  # ResponseRecord
    status: str
    tls: bool

    @property
    def at(self) -> float:
        return self.lines[-1].at

    @property
    def first(self):
        return self.lines[0]

    @property
    def text(self) -> str:
        return " / ".join(r.line for r in self.lines)

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


@dataclass
class Exchange:
    cmd: object  # CommandRecord
    reply: Reply | None


def _replies(conn) -> list[Reply]:
    """The replies on ``conn`` after the greeting, each with its lines."""
    out, current = [], []
    for resp in conn.responses:
        if resp.kind == "greeting":
            continue
        current.append(resp)
        if resp.line[3:4] != "-":
            out.append(Reply(current, (resp.status or resp.line[:3]), resp.tls))
            current = []
    return out


def exchanges(conn) -> list[Exchange]:
    """Every command of ``conn`` that the fake executed, with the reply that answered it (FIFO, as
    SMTP pipelining orders them); None for commands the connection ended before answering.

    A fault's ``reply`` or ``bye`` answers a command with lines marked injected, while its
    ``untagged`` lines come in addition to the answer: an injected reply is taken as an extra
    (and answers nothing) when the replies that follow it, before the client's next command,
    are enough to answer every command waiting; a reply when no command waits answers nothing.
    """
    commands = sorted((c for c in conn.commands if c.executed), key=lambda c: c.at)
    replies = sorted(_replies(conn), key=lambda r: r.first.at)
    pending: deque[Exchange] = deque()
    out: list[Exchange] = []
    i = 0
    for n, reply in enumerate(replies):
        while i < len(commands) and commands[i].at <= reply.first.at:
            exchange = Exchange(commands[i], None)
            out.append(exchange)
            pending.append(exchange)
            i += 1
        if not pending:
            continue  # unsolicited: nothing was asked
        if all(line.injected for line in reply.lines):
            horizon = commands[i].at if i < len(commands) else float("inf")
            following = sum(1 for r in replies[n + 1:] if r.first.at < horizon)
            if following >= len(pending):
                continue  # extra lines beside the real answers
        pending.popleft().reply = reply
    out += [Exchange(c, None) for c in commands[i:]]
    return out


@dataclass
class Ehlo:
    at: float  # when its reply ended
    tls: bool
    extensions: dict[str, list[str]]  # keyword -> parameters
    line: str


def ehlos(conn) -> list[Ehlo]:
    out = []
    for ex in exchanges(conn):
        if ex.cmd.name.upper() == "EHLO" and ex.reply is not None and ex.reply.status == "250":
            ext = {}
            for resp in ex.reply.lines[1:]:
                words = resp.line[4:].split()
                if words:
                    ext[words[0].upper()] = [w.upper() for w in words[1:]]
            out.append(Ehlo(ex.reply.at, ex.cmd.tls, ext, ex.reply.text))
    return out


def in_force(ehlo_list: list[Ehlo], cmd) -> Ehlo | None:
    """The EHLO in force when ``cmd`` was sent: the latest answered before it under its TLS state."""
    found = None
    for e in ehlo_list:
        if e.at <= cmd.at and e.tls == cmd.tls:
            found = e
    return found


_PATH = re.compile(r"^\s*(?:MAIL\s+FROM|RCPT\s+TO)\s*:\s*(<[^>]*>|\S*)\s*(.*)$", re.IGNORECASE | re.S)


def _command_text(cmd) -> str:
    return cmd.raw.decode("utf-8", "replace").rstrip("\r\n")


def parse_path(cmd) -> tuple[str, dict[str, str]]:
    """(address, {PARAM: value}) of a MAIL FROM or RCPT TO command."""
    match = _PATH.match(_command_text(cmd))
    if not match:
        return "", {}
    params = {}
    for word in match.group(2).split():
        key, _, value = word.partition("=")
        params[key.upper()] = value
    return match.group(1).strip("<>"), params


def message_bytes(cmd) -> bytes:
    """The message an END-OF-DATA command carried: without the final dot, dot-unstuffed."""
    data = cmd.raw[:-3] if cmd.raw.endswith(b".\r\n") else cmd.raw
    return re.sub(rb"(^|\r\n)\.\.", rb"\1.", data)


@dataclass
class Transaction:
    """MAIL, its RCPTs, DATA and the end of data, on one connection."""

    conn: object
    mail: Exchange
    rcpts: list[Exchange] = field(default_factory=list)
    data: Exchange | None = None
    eod: Exchange | None = None

    @property
    def run(self) -> int:
        return self.conn.run

    @property
    def start(self) -> float:
        return self.mail.cmd.at

    @property
    def sender(self) -> str:
        return address(parse_path(self.mail.cmd)[0])

    @property
    def params(self) -> dict[str, str]:
        return parse_path(self.mail.cmd)[1]

    @property
    def recipients(self) -> list[str]:
        return [address(parse_path(ex.cmd)[0]) for ex in self.rcpts]

    @property
    def message(self) -> bytes | None:
        return message_bytes(self.eod.cmd) if self.eod is not None else None

    def exchanges(self) -> list[Exchange]:
        return [self.mail, *self.rcpts, *(e for e in (self.data, self.eod) if e is not None)]


def transactions(conn, exs: list[Exchange] | None = None) -> list[Transaction]:
    """The mail transactions of ``conn`` (built from ``exs``, its exchanges, when given)."""
    out: list[Transaction] = []
    current: Transaction | None = None
    for ex in exchanges(conn) if exs is None else exs:
        name = ex.cmd.name.upper()
        if name == "MAIL":
            current = Transaction(conn, ex)
            out.append(current)
        elif current is None:
            continue
        elif name == "RCPT":
            current.rcpts.append(ex)
        elif name == "DATA":
            current.data = ex
        elif name == "END-OF-DATA":
            current.eod = ex
            current = None
        elif name not in ("NOOP",):
            current = None  # RSET, EHLO, QUIT, ... end the transaction
    return out


def smtp_connections(obs) -> list:
    return obs.wire.select(protocol="smtp")


def analyse(obs) -> list[tuple]:
    """(connection, its exchanges, its transactions) for every SMTP connection; the
    transactions are made of the same Exchange objects, so either can be found from the other."""
    out = []
    for conn in smtp_connections(obs):
        exs = exchanges(conn)
        out.append((conn, exs, transactions(conn, exs)))
    return out


# -- the outbox and the submissions ------------------------------------------------------------------


class Outbox:
    """The outbox messages, by file name, with their recipients and the submissions of each.

    A submission is an outbox message's when it carries its Message-ID; for a client that
    writes its own Message-ID, when it has the Subject of exactly one outbox message whose
    recipients include one of the submission's.
    """

    def __init__(self, obs) -> None:
        self.messages: dict[str, bytes] = dict(getattr(obs, "outbox_messages", {}) or {})
        self.by_id = {message_id(raw): name for name, raw in self.messages.items() if message_id(raw)}
        self.recipients = {name: recipients(raw) for name, raw in self.messages.items()}
        self.subjects = {name: header(raw, "Subject") for name, raw in self.messages.items()}
        self.submissions: dict[str, list] = {name: [] for name in self.messages}
        self.unmatched: list = []
        for sub in getattr(obs, "submissions", []) or []:
            name = self.name_of(sub.data, sub.rcpt_tos)
            (self.submissions[name] if name is not None else self.unmatched).append(sub)

    def name_of(self, data: bytes | None, rcpts=()) -> str | None:
        if not data:
            return None
        name = self.by_id.get(message_id(data) or "")
        if name is not None or not rcpts:
            return name
        subject, sent_to = header(data, "Subject"), addresses(rcpts)
        fits = [n for n, s in self.subjects.items() if s and s == subject and sent_to & set(self.recipients[n])]
        return fits[0] if len(fits) == 1 else None

    def unmatched_note(self) -> str:
        if not self.unmatched:
            return ""
        return (f"; {len(self.unmatched)} submission(s) matched no outbox message (by Message-ID, or Subject "
                "and recipients)")

    def accepted(self, name: str, *, until_run: int | None = None, confirmed: bool = False) -> list:
        return [s for s in self.submissions[name] if s.accepted and (until_run is None or s.run <= until_run)
                and (s.reply_sent or not confirmed)]

    def reached(self, subs) -> set[str]:
        return set().union(*(addresses(s.rcpt_tos) for s in subs)) if subs else set()

    def describe(self, name: str) -> str:
        return f"{name}: {describe_message(self.messages[name])}"


def _conn_by_id(obs) -> dict:
    return {c.id: c for c in obs.wire.select()}


def _eod_of(obs, sub):
    """(connection, END-OF-DATA command) where the fake received ``sub``."""
    conn = _conn_by_id(obs).get(sub.connection)
    if conn is None:
        return None, None
    eods = [c for c in conn.commands if c.name.upper() == "END-OF-DATA"]
    before = [c for c in eods if c.at <= sub.at + 1e-6]
    return conn, (before[-1] if before else (eods[0] if eods else None))


def _sub_excerpt(obs, sub) -> str:
    conn, cmd = _eod_of(obs, sub)
    if conn is None:
        return ""
    return excerpt(conn, command=cmd, secrets=secrets_of(obs))


def _sub_text(sub) -> str:
    fate = "accepted" if sub.accepted else "refused"
    heard = "" if sub.reply_sent else " (the reply never reached the client)"
    return (f"run {sub.run}, connection #{sub.connection}: {fate} for {len(sub.rcpt_tos)} recipient(s) "
            f"with {sub.reply!r}{heard}")


def _more(what: str):
    def summary(rest: list[Evidence]) -> Evidence:
        runs = sorted({e.run for e in rest if e.run is not None})
        return Evidence(rest[0].rule, rest[0].expected, f"{len(rest)} more {what} (runs {runs})")
    return summary


def _no_outbox(obs, rule: str) -> None:
    if not getattr(obs, "outbox_messages", None):
        raise ValueError(f"{rule}: the scenario put nothing in the outbox ([[outbox]] tables)")


def _listing(obs) -> None:
    if not getattr(obs, "outbox_after_run", None):
        raise ValueError("no outbox listing was recorded after any run")


def _show(items: list[str], n: int = 3) -> str:
    shown = ", ".join(sorted(items)[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# -- the outbox: nothing lost, nothing half-delivered, nothing twice ---------------------------------

RULE_DELIVERED = "a client removes an outbox message only once the server accepted it for every recipient"


@check("outbox_delivered", {"require_reply": bool}, doc="""Every outbox message the client removed from
       the outbox (deleted, or moved elsewhere) by the end of a run had been accepted by then for all its
       recipients (its To, Cc and Bcc addresses): the union of the recipients of its accepted submissions
       covers them. With require_reply (the default) only acceptances whose 250 reached the wire count: a
       client that deletes a message whose reply it never saw only guessed. A message removed without any
       acceptance is lost mail. Messages still in the outbox are not judged here (see outbox_sent).""")
def outbox_delivered(obs, level, require_reply=True):
    _no_outbox(obs, RULE_DELIVERED)
    _listing(obs)
    box = Outbox(obs)
    evidence, removed, kept = [], 0, 0
    for name in box.messages:
        run = obs.outbox_removed_in(name)
        if run is None:
            kept += 1
            continue
        removed += 1
        wanted = set(box.recipients[name])
        confirmed = box.accepted(name, until_run=run, confirmed=require_reply)
        reached = box.reached(confirmed)
        if wanted <= reached:
            continue
        unheard = [s for s in box.accepted(name, until_run=run) if not s.reply_sent]
        if not confirmed and unheard:
            what = (f"removed in run {run}, but the server's acceptance never reached the client "
                    f"({_sub_text(unheard[0])}): the client deleted a message it did not know was sent")
            wire = _sub_excerpt(obs, unheard[0])
        elif not confirmed:
            tried = box.submissions[name]
            what = f"removed in run {run} and never accepted: LOST" + (
                f" ({len(tried)} submission(s), none accepted; last: {tried[-1].reply!r})" if tried
                else " (it never reached the end of DATA)") + box.unmatched_note()
            wire = _sub_excerpt(obs, tried[-1]) if tried else _last_smtp(obs, run)
        else:
            missing = sorted(wanted - reached)
            what = (f"removed in run {run} after acceptance for {len(wanted & reached)} of {len(wanted)} "
                    f"recipients; never accepted for {_show(missing)}")
            wire = _sub_excerpt(obs, confirmed[-1])
        evidence.append(Evidence(RULE_DELIVERED, f"{box.describe(name)} removed only after a 2xx for all "
                                 f"{len(wanted)} recipient(s)", what, wire, run))
    if evidence:
        return failed(level, capped(evidence, _more("messages removed unsent")))
    return passed(level, [Evidence(RULE_DELIVERED, "removed only after acceptance for every recipient",
                                   f"{len(box.messages)} outbox message(s): {removed} removed, each accepted "
                                   f"for all its recipients; {kept} still in the outbox")])


def _last_smtp(obs, run: int) -> str:
    conns = obs.wire.select(protocol="smtp", run=run)
    if not conns:
        return f"(no SMTP connection in run {run})"
    return excerpt(conns[-1], end=True, secrets=secrets_of(obs))


RULE_SENT = "every outbox message is submitted, accepted for every recipient, and then removed"


@check("outbox_sent", {"messages": list[str]}, doc="""By the end of the last run, every outbox message
       (or those whose file names match one of messages, shell patterns such as "*-plain.eml") was
       accepted for all its recipients with a 250 that reached the client, and its file is no longer in
       the outbox. For scenarios where a correct client can send everything.""")
def outbox_sent(obs, level, messages=None):
    _no_outbox(obs, RULE_SENT)
    _listing(obs)
    box = Outbox(obs)
    names = [n for n in box.messages if not messages or any(fnmatch.fnmatchcase(n, p) for p in messages)]
    if not names:
        raise ValueError(f"no outbox message matches {messages}; the outbox holds {sorted(box.messages)}")
    final = obs.outbox_after_run[-1]
    last = len(obs.outbox_after_run)
    evidence = []
    for name in names:
        wanted = set(box.recipients[name])
        confirmed = box.accepted(name, confirmed=True)
        reached = box.reached(confirmed)
        if wanted <= reached and name not in final:
            continue
        tried = box.submissions[name]
        if not tried:
            what = "never submitted (no end of DATA for it reached the server)" + box.unmatched_note()
            wire = _last_smtp(obs, last)
        elif not wanted <= reached:
            what = (f"accepted for {len(wanted & reached)} of {len(wanted)} recipients; last submission: "
                    f"{_sub_text(tried[-1])}")
            wire = _sub_excerpt(obs, tried[-1])
        else:
            what = (f"accepted ({_sub_text(confirmed[-1])}) but still in the outbox after run {last}: "
                    "it would be sent again")
            wire = _sub_excerpt(obs, confirmed[-1])
        evidence.append(Evidence(RULE_SENT, f"{box.describe(name)} accepted for all {len(wanted)} recipient(s) "
                                 "and removed", what, wire, last))
    if evidence:
        return failed(level, capped(evidence, _more("messages not sent")))
    return passed(level, [Evidence(RULE_SENT, "every message sent and removed",
                                   f"{len(names)} message(s) accepted for every recipient and removed")])


RULE_PARTIAL = "no message is treated as sent while some of its recipients never got it"


@check("no_partial_delivery", {}, doc="""No outbox message was accepted for only some of its recipients
       while the client treated it as sent (removed its file) without the remaining recipients being
       accepted in another submission by the end of that run. Refusing the whole message (RSET) and
       keeping it, or keeping it until every recipient is accepted, both pass.""")
def no_partial_delivery(obs, level):
    _no_outbox(obs, RULE_PARTIAL)
    _listing(obs)
    box = Outbox(obs)
    evidence, partial_kept = [], 0
    for name in box.messages:
        wanted = set(box.recipients[name])
        run = obs.outbox_removed_in(name)
        accepted = box.accepted(name, until_run=run)
        reached = box.reached(accepted) & wanted
        if not reached or wanted <= reached:
            continue
        if run is None:
            partial_kept += 1
            continue
        missing = sorted(wanted - reached)
        evidence.append(Evidence(RULE_PARTIAL, f"{box.describe(name)} kept until all {len(wanted)} recipients "
                                 "were accepted",
                                 f"removed in run {run} after acceptance for {len(reached)} of {len(wanted)} "
                                 f"recipients; {_show(missing)} never got it ({_sub_text(accepted[-1])})",
                                 _sub_excerpt(obs, accepted[-1]), run))
    if evidence:
        return failed(level, capped(evidence, _more("half-delivered messages")))
    note = f"; {partial_kept} partly accepted message(s) kept in the outbox" if partial_kept else ""
    return passed(level, [Evidence(RULE_PARTIAL, "no half-delivered message treated as sent",
                                   f"{len(box.messages)} outbox message(s), none removed half-delivered{note}")])


RULE_DUPLICATES = "each outbox message reaches each recipient once"


@check("no_duplicate_submissions", {"allow": int}, minimum={"allow": 0}, doc="""No outbox message was
       accepted for the same recipient more than 1 + allow times (every accepted submission counts, also
       one whose reply was lost: the recipient got it). At level INFO the duplicates are counted and
       reported, never judged (for scenarios where a duplicate is the price of not losing mail).""")
def no_duplicate_submissions(obs, level, allow=0):
    _no_outbox(obs, RULE_DUPLICATES)
    box = Outbox(obs)
    evidence, total = [], 0
    for name in box.messages:
        accepted = box.accepted(name)
        counts: dict[str, int] = {}
        for sub in accepted:
            for rcpt in addresses(sub.rcpt_tos):
                counts[rcpt] = counts.get(rcpt, 0) + 1
        extra = max((c - 1 for c in counts.values()), default=0)
        total += extra
        if extra == 0 or (level != "INFO" and extra <= allow):
            continue
        worst = sorted(r for r, c in counts.items() if c == extra + 1)
        runs = sorted({s.run for s in accepted})
        evidence.append(Evidence(RULE_DUPLICATES, f"{box.describe(name)} accepted at most {1 + allow} time(s) per "
                                 "recipient", f"accepted {extra + 1} times for {_show(worst)} "
                                 f"(runs {runs}); submissions: " + "; ".join(_sub_text(s) for s in accepted[:4]),
                                 _sub_excerpt(obs, accepted[-1]), accepted[-1].run))
    if level == "INFO":
        summary = Evidence(RULE_DUPLICATES, "counted only",
                           f"{total} duplicate delivery(ies) over {len(box.messages)} outbox message(s)")
        return measured([summary, *evidence][:6])
    if evidence:
        return failed(level, capped(evidence, _more("duplicated messages")))
    return passed(level, [Evidence(RULE_DUPLICATES, f"at most {1 + allow} acceptance(s) per recipient",
                                   f"{len(box.messages)} outbox message(s), no recipient got one more often")])


# -- what the server advertised ---------------------------------------------------------------------

RULE_SIZE = "no message larger than the SIZE the server advertised is sent (RFC 1870)"


RULE_EHLO_AFTER_TLS = ("after STARTTLS the client discards what the server advertised and starts over with "
                       "EHLO (RFC 3207 §4.2)")
_STARTING_OVER = ("EHLO", "HELO", "QUIT")


@check("ehlo_after_starttls", {}, doc="""On a connection upgraded with STARTTLS, the client's first command
       over TLS is EHLO (or HELO, or QUIT to give up): it asks again what the server offers rather than
       use what the plaintext EHLO advertised. Implicit-TLS connections, and connections where
       STARTTLS did not complete, pass.""")
def ehlo_after_starttls(obs, level):
    evidence, checked = [], 0
    for conn in smtp_connections(obs):
        if conn.implicit_tls or not conn.tls:
            continue
        first = next((c for c in conn.commands if c.tls and c.executed), None)
        if first is None:
            continue
        checked += 1
        if first.name.upper() not in _STARTING_OVER:
            evidence.append(Evidence(RULE_EHLO_AFTER_TLS, "EHLO as the first command over TLS",
                                     f"{first.redacted!r} was the first command over TLS on {where(conn, first)}",
                                     excerpt(conn, command=first, secrets=secrets_of(obs)), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("connections that went on without EHLO")))
    return passed(level, [Evidence(RULE_EHLO_AFTER_TLS, "EHLO as the first command over TLS",
                                   f"{checked} STARTTLS connection(s), each starting over with EHLO")])


@check("size_respected", {}, doc="""No message data (end of DATA) larger than the SIZE limit of the EHLO
       in force is sent. A client that declared MAIL FROM ... SIZE=n and was refused, or that never
       started such a message, passes.""")
def size_respected(obs, level):
    evidence, checked = [], 0
    for conn in smtp_connections(obs):
        ehlo_list = ehlos(conn)
        for cmd in conn.commands:
            if cmd.name.upper() != "END-OF-DATA":
                continue
            current = in_force(ehlo_list, cmd)
            limit = _size_limit(current)
            if limit is None:
                continue
            checked += 1
            size = len(message_bytes(cmd))
            if size > limit:
                evidence.append(Evidence(RULE_SIZE, f"no message over {limit:,} bytes (SIZE in {current.line!r})",
                                         f"a {size:,}-byte message sent on {where(conn, cmd)}",
                                         excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("oversized messages")))
    return passed(level, [Evidence(RULE_SIZE, "no message over the advertised SIZE",
                                   f"{checked} message(s) sent under a SIZE limit, none over it")])


def _size_limit(ehlo: Ehlo | None) -> int | None:
    if ehlo is None or "SIZE" not in ehlo.extensions:
        return None
    params = ehlo.extensions["SIZE"]
    try:
        limit = int(params[0]) if params else 0
    except ValueError:
        return None
    return limit or None  # SIZE 0: no fixed limit


RULE_UTF8 = ("UTF-8 addresses and headers only to a server that advertised SMTPUTF8, with MAIL ... SMTPUTF8 "
             "(RFC 6531 §3.4)")
_NON_ASCII = re.compile(rb"[\x80-\xff]")


def _header_block(data: bytes) -> bytes:
    end = re.search(rb"\r?\n\r?\n", data)
    return data[: end.start()] if end else data


@check("smtputf8_respected", {}, doc="""No non-ASCII address in MAIL FROM or RCPT TO, no SMTPUTF8 parameter,
       and no message whose header holds raw UTF-8, unless the EHLO in force advertised SMTPUTF8 and the
       transaction's MAIL carried the SMTPUTF8 parameter (an SMTPUTF8 parameter needs only the
       advertisement).""")
def smtputf8_respected(obs, level):
    evidence, checked = [], 0
    for conn in smtp_connections(obs):
        ehlo_list = ehlos(conn)
        for txn in transactions(conn):
            current = in_force(ehlo_list, txn.mail.cmd)
            offered = current is not None and "SMTPUTF8" in current.extensions
            declared = "SMTPUTF8" in txn.params
            checked += 1
            shown = f"the EHLO in force was {current.line!r}" if current else "no EHLO was answered before it"
            problems = []
            if declared and not offered:
                problems.append((txn.mail.cmd, "SMTPUTF8 parameter sent, but SMTPUTF8 was not advertised"))
            for ex in [txn.mail, *txn.rcpts]:
                if _NON_ASCII.search(ex.cmd.raw) and not (offered and declared):
                    why = "not advertised" if not offered else "advertised, but MAIL had no SMTPUTF8 parameter"
                    problems.append((ex.cmd, f"non-ASCII address sent (SMTPUTF8 {why})"))
            if txn.eod is not None and _NON_ASCII.search(_header_block(message_bytes(txn.eod.cmd))) \
                    and not (offered and declared):
                why = "not advertised" if not offered else "advertised, but MAIL had no SMTPUTF8 parameter"
                problems.append((txn.eod.cmd, f"a message with raw UTF-8 in its header sent (SMTPUTF8 {why})"))
            for cmd, what in problems[:1]:
                evidence.append(Evidence(RULE_UTF8, "ASCII envelope and headers unless SMTPUTF8 is advertised and used",
                                         f"{cmd.redacted!r} on {where(conn, cmd)}: {what}; {shown}",
                                         excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("transactions")))
    return passed(level, [Evidence(RULE_UTF8, "SMTPUTF8 respected", f"{checked} transaction(s), none broke it")])


RULE_8BIT = "8-bit message data only to a server that advertised 8BITMIME (RFC 6152)"


@check("eightbit_respected", {}, doc="""No message data containing bytes above 127, and no MAIL with
       BODY=8BITMIME (or BODY=BINARYMIME without BINARYMIME), is sent under an EHLO that did not advertise
       8BITMIME: an 8-bit body must be re-encoded (quoted-printable, base64) or not sent.""")
def eightbit_respected(obs, level):
    evidence, checked = [], 0
    for conn in smtp_connections(obs):
        ehlo_list = ehlos(conn)
        for txn in transactions(conn):
            current = in_force(ehlo_list, txn.mail.cmd)
            ext = current.extensions if current else {}
            shown = f"the EHLO in force was {current.line!r}" if current else "no EHLO was answered before it"
            body = txn.params.get("BODY", "").upper()
            problem = None
            if body == "8BITMIME" and "8BITMIME" not in ext:
                problem = (txn.mail.cmd, "BODY=8BITMIME without 8BITMIME advertised")
            elif body == "BINARYMIME" and "BINARYMIME" not in ext:
                problem = (txn.mail.cmd, "BODY=BINARYMIME without BINARYMIME advertised")
            elif txn.eod is not None:
                checked += 1
                data = message_bytes(txn.eod.cmd)
                hit = _NON_ASCII.search(data)
                if hit and "8BITMIME" not in ext:
                    line = data.count(b"\n", 0, hit.start()) + 1
                    problem = (txn.eod.cmd, f"message data with 8-bit bytes (first on line {line}) sent without "
                                            "8BITMIME")
            if problem:
                cmd, what = problem
                evidence.append(Evidence(RULE_8BIT, "7-bit data unless 8BITMIME is advertised",
                                         f"{what} on {where(conn, cmd)}; {shown}",
                                         excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("transactions")))
    return passed(level, [Evidence(RULE_8BIT, "8BITMIME respected", f"{checked} message(s) sent, none 8-bit "
                                   "without 8BITMIME")])


# -- temporary failures: wait, and do not loop ------------------------------------------------------

RULE_RETRY = "after a temporary (4xx) reply the client waits before trying again, and does not loop"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(milliseconds?|millis|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b",
                       re.IGNORECASE)


def named_wait(text: str) -> float | None:
    """The wait a reply text names ("try again in 2 seconds", "5 minutes", "2000 ms"), in seconds."""
    match = _DURATION.search(text)
    if match is None:
        return None
    unit = match.group(2).lower()
    if unit.startswith(("millis", "ms")):
        factor = 0.001
    elif unit.startswith("s"):
        factor = 1.0
    elif unit.startswith("m"):
        factor = 60.0
    else:
        factor = 3600.0
    return float(match.group(1)) * factor


def _same_message(first: Transaction, later: Transaction, box: Outbox) -> bool:
    """Whether ``later`` tries again what ``first`` tried (see the retry_after_4xx rule)."""
    a, b = _names(first, box), _names(later, box)
    if a and b:
        return bool(a & b)
    if not first.recipients or not later.recipients:
        return first.sender == later.sender  # refused at MAIL: the sender was refused, whatever it sends
    return bool(set(first.recipients) & set(later.recipients))


def _names(txn: Transaction, box: Outbox) -> set[str]:
    """The outbox message ``txn`` carried: by Message-ID, else the only one its recipients fit."""
    name = box.name_of(txn.message, txn.recipients)
    if name is not None:
        return {name}
    rcpts = set(txn.recipients)
    if not rcpts:
        return set()
    fits = [n for n, wanted in box.recipients.items() if rcpts <= set(wanted)]
    return set(fits) if len(fits) == 1 else set()


@check("retry_after_4xx", {"min_wait": float, "max_attempts": int, "codes": list[str]},
       minimum={"min_wait": 0, "max_attempts": 1}, doc="""After a temporary reply (codes; default 421, 450,
       451, 452, 454) the client waits at least min_wait seconds (default: the wait the reply text names,
       such as "try again in 2 seconds", else none) before trying again in that run, and tries each message
       at most max_attempts times in a run. Trying again means: for a reply inside a mail transaction, the
       next transaction for the same message (the same Message-ID; without message data, a shared
       recipient; refused at MAIL, any transaction from that sender); for a 421, also any new SMTP
       connection; for any other reply (greeting, EHLO, STARTTLS, AUTH), the next connection or the next
       command other than QUIT on that connection. Attempts in a later run (a new invocation of the
       client) are not timed.""")
def retry_after_4xx(obs, level, min_wait=None, max_attempts=3, codes=None):
    codes = tuple(codes or TEMPORARY_CODES)
    box = Outbox(obs)
    secrets = secrets_of(obs)
    analysed = analyse(obs)
    conns = [conn for conn, _, _ in analysed]
    txns = sorted((t for _, _, own in analysed for t in own), key=lambda t: t.start)
    evidence, seen, counted, handled = [], 0, set(), set()
    for conn, exs, own in analysed:
        txn_of = {id(e): t for t in own for e in t.exchanges()}
        refusals = [(None, r) for r in conn.responses if r.kind == "greeting" and (r.status or r.line[:3]) in codes]
        refusals += [(ex, ex.reply) for ex in exs if ex.reply is not None and ex.reply.status in codes]
        for ex, reply in refusals:
            txn = txn_of.get(id(ex)) if ex is not None else None
            if txn is not None and id(txn) in handled:
                continue  # one judgement per transaction: its first temporary reply
            seen += 1
            if isinstance(reply, Reply):
                first, text, status = reply.first, reply.text, reply.status
            else:  # a greeting line
                first, text, status = reply, reply.line, reply.status or reply.line[:3]
            at = first.at if not isinstance(reply, Reply) else reply.at
            wait = min_wait if min_wait is not None else (named_wait(text) or 0.0)
            contacts = []  # (time, description, connection, command)
            if txn is not None:
                handled.add(id(txn))
                later = [t for t in txns if t.run == conn.run and t.start > at and t is not txn
                         and _same_message(txn, t, box)]
                contacts += [(t.start, f"the next attempt of that message ({t.mail.cmd.redacted!r} on "
                              f"{where(t.conn)})", t.conn, t.mail.cmd) for t in later[:1]]
                if id(txn) not in counted:
                    chain = [txn] + later
                    counted.update(id(t) for t in chain)
                    if len(chain) > max_attempts:
                        extra = chain[max_attempts]
                        span = extra.start - txn.start
                        evidence.append(Evidence(RULE_RETRY, f"at most {max_attempts} attempt(s) of a message in a run",
                                                 f"{len(chain)} attempts in run {conn.run} within {span:.2f} s after "
                                                 f"{first.line!r}; attempt {max_attempts + 1} was "
                                                 f"{extra.mail.cmd.redacted!r} on {where(extra.conn)}",
                                                 excerpt(extra.conn, command=extra.mail.cmd, secrets=secrets),
                                                 conn.run))
            if txn is None or status == "421":
                nxt = next((c for c in conns if c.run == conn.run and c.opened_at > at), None)
                if nxt is not None:
                    contacts.append((nxt.opened_at, f"{where(nxt)} opened", nxt, None))
            if txn is None:
                cmd = next((c for c in conn.commands if c.at > at and c.name.upper() != "QUIT"), None)
                if cmd is not None:
                    contacts.append((cmd.at, f"{cmd.redacted!r} on the same connection", conn, cmd))
            if not contacts or wait <= 0:
                continue
            when, what, _, _ = min(contacts, key=lambda c: c[0])
            if when - at + 1e-6 < wait:
                source = "min_wait" if min_wait is not None else "the wait the reply names"
                evidence.append(Evidence(RULE_RETRY, f"at least {wait:g} s ({source}) before trying again",
                                         f"{what} {when - at:.3f} s after {first.line!r} "
                                         f"(connection #{conn.id}, run {conn.run})",
                                         excerpt(conn, response=first, secrets=secrets), conn.run))
    if evidence:
        return failed(level, capped(evidence, _more("early or repeated attempts")))
    return passed(level, [Evidence(RULE_RETRY, "waits after a 4xx; no retry loop",
                                   f"{seen} temporary reply(ies) with {', '.join(codes)}; every retry waited, "
                                   f"at most {max_attempts} attempt(s) per message in a run")])


RULE_QUOTA = "after a quota reply the client stops sending in that run"


@check("stops_after_quota", {"pattern": str, "max_more": int}, minimum={"max_more": 0}, doc="""After the
       first permanent (5xx) reply whose line matches pattern (a case-insensitive regex; default a
       5.4.5 code or the word quota) in a run, the client starts at most max_more further mail
       transactions (MAIL FROM) in that run, on any connection: the quota will refuse them all, so
       trying the rest of the outbox, or the same message again, is a retry loop.""")
def stops_after_quota(obs, level, pattern=DEFAULT_QUOTA, max_more=0):
    wanted = re.compile(pattern, re.IGNORECASE)
    secrets = secrets_of(obs)
    txns = sorted((t for _, _, own in analyse(obs) for t in own), key=lambda t: t.start)
    evidence, quotas = [], 0
    for run in sorted({t.run for t in txns}):
        hits = []
        for conn in obs.wire.select(protocol="smtp", run=run):
            for ex in exchanges(conn):
                if ex.reply is not None and ex.reply.permanent and wanted.search(ex.reply.text):
                    hits.append((ex.reply.at, conn, ex.reply))
        if not hits:
            continue
        quotas += 1
        at, conn, reply = min(hits, key=lambda h: h[0])
        later = [t for t in txns if t.run == run and t.start > at]
        if len(later) > max_more:
            extra = later[max_more]
            evidence.append(Evidence(RULE_QUOTA, f"at most {max_more} more transaction(s) after {reply.first.line!r}",
                                     f"{len(later)} more transaction(s) in run {run}; the first "
                                     f"{later[0].start - at:.3f} s later: {later[0].mail.cmd.redacted!r} on "
                                     f"{where(later[0].conn)}",
                                     excerpt(extra.conn, command=extra.mail.cmd, secrets=secrets), run))
    if evidence:
        return failed(level, evidence)
    return passed(level, [Evidence(RULE_QUOTA, f"at most {max_more} more transaction(s) after a quota reply",
                                   f"{quotas} run(s) with a quota reply; the client stopped each time")])


# -- helpers for wire.py's checks: what an SMTP command relies on -------------------------------------


def requirements(txn_cmd, params: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    """(extension keyword, parameter it needs or None) that ``txn_cmd`` relies on."""
    name = txn_cmd.name.upper()
    text = _command_text(txn_cmd)
    if name == "AUTH":
        words = text.split()
        return [("AUTH", words[1].upper())] if len(words) > 1 else []
    if name == "BDAT":
        return [("CHUNKING", None)]
    if name not in ("MAIL", "RCPT"):
        return []
    params = parse_path(txn_cmd)[1] if params is None else params
    out = []
    if "SMTPUTF8" in params:
        out.append(("SMTPUTF8", None))
    body = params.get("BODY", "").upper()
    if body in ("8BITMIME", "BINARYMIME"):
        out.append((body, None))
    if "SIZE" in params:
        out.append(("SIZE", None))
    if {"RET", "ENVID", "NOTIFY", "ORCPT"} & set(params):
        out.append(("DSN", None))
    return out


def offers(extensions: dict[str, list[str]], requirement: tuple[str, str | None]) -> bool:
    keyword, param = requirement
    if keyword not in extensions:
        return False
    return param is None or param in extensions[keyword]


def injected_after_starttls(conn) -> list:
    """Plaintext lines a fault wrote after the 220 that answered STARTTLS."""
    for ex in exchanges(conn):
        if ex.cmd.name.upper() == "STARTTLS" and ex.reply is not None and ex.reply.status == "220":
            return [r for r in conn.responses if r.injected and not r.tls and r.at >= ex.reply.at]
    return []


def injected_evidence(obs, rule: str) -> tuple[list[Evidence], int]:
    """For injected_lines_ignored: SMTP commands over TLS that rely on an extension only the lines
    injected behind the STARTTLS 220 advertised. Returns (evidence, injected lines seen)."""
    evidence, seen = [], 0
    for conn in smtp_connections(obs):
        injected = injected_after_starttls(conn)
        if not injected:
            continue
        seen += len(injected)
        fake: dict[str, list[str]] = {}
        for resp in injected:
            words = resp.line[4:].split() if re.match(r"^\d{3}[ -]", resp.line) else resp.line.split()
            if words:
                fake.setdefault(words[0].upper(), []).extend(w.upper() for w in words[1:])
        ehlo_list = ehlos(conn)
        for cmd in conn.commands:
            if not cmd.tls:
                continue
            current = in_force(ehlo_list, cmd)
            genuine = current.extensions if current else {}
            for req in requirements(cmd):
                if offers(fake, req) and not offers(genuine, req):
                    label = req[0] + (f" {req[1]}" if req[1] else "")
                    evidence.append(Evidence(rule, "injected EHLO lines ignored",
                                             f"{cmd.redacted!r} on {where(conn, cmd)} uses {label}, which only the "
                                             "injected plaintext line(s) advertised",
                                             excerpt(conn, command=cmd, secrets=secrets_of(obs)), conn.run))
    return evidence, seen
