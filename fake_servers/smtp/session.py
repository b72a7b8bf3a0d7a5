"""One SMTP submission session as a state machine without I/O: lines in, replies and actions out.

The server (server.py) reads a command line, a SASL continuation line or a whole message
(``wants`` says which), hands it here and writes what comes back: :class:`Reply` (one
reply, possibly multi-line), :class:`StartTLS` (begin the handshake once the reply before
it went out) and :class:`Close`. Provider limits are the policy's (policy.py); this module
keeps the sequence: EHLO before MAIL, AUTH only when allowed, MAIL, RCPT, DATA, and the
mail transaction's state.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Callable

from ..imap import sasl
from ..mailstore import AuthResult, MailStore
from .config import SmtpConfig
from .delivery import deliver
from .policy import MailParams, SubmissionPolicy, account_key
from .records import Submission

KNOWN_VERBS = ("EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY",
               "HELP", "EXPN", "BDAT")
MAX_ERRORS = 20  # syntax and sequence errors on one connection before it is closed with 421
_NOT_IN_ADDRESS = re.compile(r"[ <>\t]")
_CODE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}( |$)")
_queue_ids = itertools.count(1)
_PARSED: dict[bytes, tuple[str, str | None, str, bool]] = {}  # command line -> parse_command(line)
# (text, kind, hostname, enhanced codes) -> the reply, made once and shared (never changed)
_TEXTS: dict[tuple[str, str, str, bool], "Reply"] = {}
# The error challenge Gmail's SMTP server gives a bearer token it refuses (base64 of this JSON)
OAUTH_ERROR = json.dumps({"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"},
                         separators=(",", ":")).encode()


class Reply:
    """One reply: its lines (without CRLF), each a full ``NNN-``/``NNN `` line.

    The replies the session says often are made once and shared: change none in place
    (:meth:`for_submission` makes the copy that carries a submission)."""

    __slots__ = ("lines", "kind", "injected", "submission", "data", "codes")

    def __init__(self, lines: list[str] | tuple[str, ...], kind: str = "reply", injected: bool = False,
                 submission: int | None = None, *, codes: tuple[tuple[str | None, str | None], ...] | None = None,
                 data: bytes | None = None) -> None:
        self.lines = lines
        self.kind = kind  # "greeting", "continuation" (334) or "reply"
        self.injected = injected  # written by a fault rule rather than the protocol
        self.submission = submission  # index in the SubmissionLog whose reply this is
        # (status, enhanced status code) of each line, and the reply as it goes on the wire
        self.codes = codes if codes is not None else tuple(split_code(line) for line in lines)
        self.data = data if data is not None else ("\r\n".join(lines) + "\r\n").encode("utf-8")

    @property
    def status(self) -> str:
        return self.lines[-1][:3]

    def for_submission(self, index: int) -> "Reply":
        """This reply as the answer to submission ``index`` (a copy: replies are shared)."""
        return Reply(self.lines, self.kind, self.injected, index, codes=self.codes, data=self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reply):
            return NotImplemented
        return (list(self.lines), self.kind, self.injected, self.submission) == (
            list(other.lines), other.kind, other.injected, other.submission)

    def __repr__(self) -> str:
        return f"Reply({list(self.lines)!r}, {self.kind!r}, injected={self.injected}, submission={self.submission})"


@dataclass
class StartTLS:
    """Start the TLS handshake once everything before it went out."""


@dataclass
class Close:
    reason: str


def reply_lines(text: str, **values: str) -> list[str]:
    """A configured text as reply lines: ``\\n`` separates lines, all but the last become
    ``NNN-`` continuation lines; ``{hostname}``-style placeholders are filled in."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    lines = text.split("\n")
    return [line[:3] + "-" + line[4:] if i < len(lines) - 1 else line for i, line in enumerate(lines)]


def split_code(line: str) -> tuple[str | None, str | None]:
    """(status, enhanced status code) of a reply line, e.g. ("535", "5.7.8")."""
    status = line[:3] if len(line) >= 3 and line[:3].isdigit() else None
    rest = line[4:] if status else ""
    match = _CODE.match(rest)
    return status, (match.group(0).strip() if match else None)


def parse_command(line: bytes) -> tuple[str, str | None, str, bool]:
    """(name, argument, what a transcript shows, whether it carries a credential) of a
    command line: :func:`split_command` and :func:`describe_command` in one pass over the
    common case, a line of valid UTF-8. Remembered per line, but for AUTH lines (a client
    says the same MAIL FROM, RCPT TO and DATA over and over; credentials are not kept)."""
    parsed = _PARSED.get(line)
    if parsed is None:
        parsed = _parse_command(line)
        if parsed[0] != "AUTH":
            if len(_PARSED) >= 1024:  # lines with ever new addresses: keep it bounded
                _PARSED.clear()
            _PARSED[line] = parsed
    return parsed


def _parse_command(line: bytes) -> tuple[str, str | None, str, bool]:
    text = line.rstrip(b"\r\n")
    try:
        shown = text.decode("utf-8")
    except UnicodeDecodeError:
        name, arg = split_command(line)
        return (name, arg, *describe_command(name, line))
    verb, space, rest = shown.partition(" ")
    upper = verb.upper()
    if upper in _HANDLERS:  # a known verb
        if upper == "AUTH":
            return ("AUTH", rest.strip() if space and rest else None, *describe_command("AUTH", line))
        verb = upper
    return (verb or "(empty)"), (rest.strip() if space and rest else None), shown, False


def split_command(line: bytes) -> tuple[str, str | None]:
    """The command name as recorded (known verbs upper-cased, others as sent) and its argument."""
    text = line.rstrip(b"\r\n")
    verb, _, arg = text.partition(b" ")
    name = verb.decode("ascii", "replace") if verb.isascii() else verb.decode("utf-8", "replace")
    if name.upper() in KNOWN_VERBS:
        name = name.upper()
    try:
        decoded = arg.decode("utf-8").strip() if arg else None
    except UnicodeDecodeError:
        decoded = None
    return (name or "(empty)"), decoded


@dataclass
class Transaction:
    """The mail transaction in progress (MAIL up to the end of DATA or RSET)."""

    mail_from: str
    params: MailParams
    rcpt_tos: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    refused_replies: list[str] = field(default_factory=list)


class SmtpSession:
    """The protocol state of one connection."""

    def __init__(self, store: MailStore, config: SmtpConfig, policy: SubmissionPolicy, *, tls: bool,
                 on_submission: Callable[[Submission], int] | None = None,
                 connection: tuple[int, int, int, str] = (1, 1, 0, "smtp")) -> None:
        self.store = store
        self.config = config
        self.policy = policy
        self.tls = tls
        self.on_submission = on_submission  # records a Submission, returns its index
        self.connection = connection  # the Submission fields run, session, connection, server
        self.helo: str | None = None
        self.extended = False
        self.username: str | None = None  # set with the state, by _logged_in
        self.state = "not-authenticated"  # or "authenticated" (as the wire record shows it)
        self.auth_failures = 0
        self.errors = 0
        self.transaction: Transaction | None = None
        self.wants = "command"  # or "line" (a SASL response) or "data" (the message)
        self.refused_greeting = False  # a fault refused the session with 554: only QUIT works
        self._sasl: sasl.Mechanism | None = None
        self._oauth_failed = ""  # the mechanism whose error challenge awaits the client's answer
        self.notes: list[str] = []  # for the wire record (the server moves them there)

    # -- output helpers --------------------------------------------------------------------

    def _text(self, text: str, kind: str = "reply") -> Reply:
        config = self.config
        key = (text, kind, config.hostname, config.enhanced_status_codes)
        reply = _TEXTS.get(key)
        if reply is None:  # made once: the same few texts are said over and over
            lines = reply_lines(text, hostname=config.hostname)
            if not config.enhanced_status_codes:
                lines = [_strip_code(line) for line in lines]
            if len(_TEXTS) >= 4096:  # texts with addresses in them: keep it bounded
                _TEXTS.clear()
            reply = _TEXTS[key] = Reply(tuple(lines), kind)
        return reply

    def _error(self, text: str) -> list:
        """A syntax or sequence error; too many of them end the session."""
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            return [self._text(f"421 4.7.0 {self.config.hostname} Error: too many errors"), Close("too many errors")]
        return [self._text(text)]

    def _final(self, text: str) -> list:
        """A reply from the policy or texts; a 421 ends the session (RFC 5321 section 3.8)."""
        out: list = [self._text(text)]
        if text.startswith("421"):
            out.append(Close("421 reply"))
        return out

    # -- entry points ----------------------------------------------------------------------

    def greeting(self) -> list:
        return [self._text(self.config.texts.greeting, "greeting")]

    def tls_started(self) -> None:
        """RFC 3207 section 4.2: after the handshake the client starts over with EHLO."""
        self.tls = True
        self.helo = None
        self.extended = False
        self.transaction = None

    def command(self, line: bytes, split: tuple[str, str | None] | None = None) -> list:
        """A command line (CRLF included or not); ``split``: ``split_command(line)`` if the
        caller has it already."""
        name, arg = split if split is not None else split_command(line)
        handler = _HANDLERS.get(name)
        if handler is not None and not self.refused_greeting and b"\0" not in line and (
                arg is not None or b" " not in line):
            return getattr(self, handler)(arg)  # a known verb, well formed: the common case
        text = line.rstrip(b"\r\n")
        if b"\0" in text:
            return self._error("500 5.5.2 Error: bad syntax (NUL byte)")
        if name == "(empty)":
            return self._error("500 5.5.2 Error: bad syntax")
        if name not in KNOWN_VERBS:
            return self._error("500 5.5.2 Error: command not recognized")
        if arg is None and b" " in text and text.partition(b" ")[2].strip():
            return self._error("500 5.5.2 Error: bad UTF-8 syntax")
        if self.refused_greeting and name != "QUIT":
            return self._error("503 5.5.1 Error: service refused, send QUIT")
        return getattr(self, _HANDLERS[name])(arg)

    # -- the commands ----------------------------------------------------------------------

    def _ehlo(self, arg: str | None) -> list:
        if not arg:
            return self._error("501 5.5.4 Syntax: EHLO hostname")
        self.helo, self.extended, self.transaction = arg, True, None
        lines = [self.config.hostname] + self.config.extensions(tls=self.tls)
        return [Reply([f"250{'-' if i < len(lines) - 1 else ' '}{line}" for i, line in enumerate(lines)])]

    def _helo(self, arg: str | None) -> list:
        if not arg:
            return self._error("501 5.5.4 Syntax: HELO hostname")
        self.helo, self.extended, self.transaction = arg, False, None
        return [self._text(f"250 {self.config.hostname}")]

    def _starttls(self, arg: str | None) -> list:
        if arg:
            return self._error("501 5.5.4 Syntax: STARTTLS")
        if self.tls:
            return self._error("503 5.5.1 Error: TLS already active")
        if "STARTTLS" not in self.policy.advertised(tls=False) or not self.config.starttls:
            return self._error("502 5.5.1 Error: command not implemented")
        return [self._text("220 2.0.0 Ready to start TLS"), StartTLS()]

    def _noop(self, arg: str | None) -> list:
        return [self._text("250 2.0.0 OK")]

    def _rset(self, arg: str | None) -> list:
        self.transaction = None
        return [self._text("250 2.0.0 OK")]

    def _quit(self, arg: str | None) -> list:
        return [self._text("221 2.0.0 Bye"), Close("QUIT")]

    def _vrfy(self, arg: str | None) -> list:
        if not arg:
            return self._error("501 5.5.4 Syntax: VRFY address")
        return [self._text("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery")]

    def _expn(self, arg: str | None) -> list:
        return self._error("502 5.5.1 Error: command not implemented")

    def _bdat(self, arg: str | None) -> list:
        return self._error("502 5.5.1 Error: command not implemented (no CHUNKING)")

    def _help(self, arg: str | None) -> list:
        return [self._text("214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT VRFY HELP")]

    # -- AUTH ------------------------------------------------------------------------------

    def _auth(self, arg: str | None) -> list:
        if self.helo is None:
            return self._error("503 5.5.1 Error: send EHLO first")
        if self.username is not None:
            return self._error("503 5.5.1 Error: already authenticated")
        if self.transaction is not None:
            return self._error("503 5.5.1 Error: MAIL transaction in progress")
        if not self.tls and not self.config.auth_before_tls:
            return [self._text("538 5.7.11 Encryption required for requested authentication mechanism")]
        words = (arg or "").split()
        if not words or len(words) > 2:
            return self._error("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
        name = words[0].upper()
        if name not in sasl.MECHANISMS or name not in self.config.auth_mechanisms:
            return [self._text("504 5.5.4 Unrecognized authentication type")]
        mech = sasl.MECHANISMS[name]()
        if len(words) == 1:
            self._sasl = mech
            self.wants = "line"
            return [self._challenge(mech.first_challenge())]
        return self._step(mech, words[1].encode("ascii", "replace"))

    def _challenge(self, data: bytes) -> Reply:
        return Reply(["334 " + base64.b64encode(data).decode("ascii")], "continuation")

    def line(self, data: bytes) -> list:
        """A SASL response line (CRLF included or not)."""
        data = data.strip()
        mech, self._sasl, self.wants = self._sasl, None, "command"
        if self._oauth_failed:  # the client answered the XOAUTH2/OAUTHBEARER error challenge
            failed, self._oauth_failed = self._oauth_failed, ""
            if failed == "OAUTHBEARER":  # RFC 7628 §3.2.2: ^A, or a SASL abort
                if data == b"*":
                    self.auth_failures += 1
                    return [self._text("501 5.7.0 Authentication aborted")]
                if data != base64.b64encode(sasl.OAUTHBEARER_ACK):
                    self.notes.append("OAUTHBEARER: the client answered the error challenge with something "
                                      "other than ^A (RFC 7628 §3.2.2)")
            return self._failed(AuthResult.INVALID)
        if data == b"*":
            return [self._text("501 5.7.0 Authentication aborted")]
        if mech is None:
            return self._error("503 5.5.1 Error: no authentication in progress")
        return self._step(mech, data)

    def _step(self, mech: sasl.Mechanism, response: bytes) -> list:
        try:
            decoded = b"" if response == b"=" else base64.b64decode(response, validate=True)
        except (binascii.Error, ValueError):
            return self._failed_syntax("501 5.5.2 Cannot decode response")
        try:
            out = mech.step(decoded)
        except sasl.SaslError as exc:
            return self._failed_syntax(f"501 5.5.2 {exc}")
        if isinstance(out, bytes):
            self._sasl = mech
            self.wants = "line"
            return [self._challenge(out)]
        return self._finish(out, mech.name)

    def _failed_syntax(self, text: str) -> list:
        self.auth_failures += 1
        return self._error(text)

    def _finish(self, creds: sasl.Credentials, mechanism: str = "") -> list:
        account = sasl.account_for(self.store, creds)  # OAUTHBEARER without a=: the token's owner
        result = AuthResult.INVALID
        if account is not None:
            if creds.kind == "oauth":
                # Account.check_token: OK, INVALID or EXPIRED (issued tokens have lifetimes,
                # static oauth_tokens never expire); a successful check uses the token once
                result = account.check_token(creds.secret)
            else:
                result = account.check_password(creds.secret)
        if result is AuthResult.OK:
            self.username, self.state = account.username, "authenticated"
            text, _ = self.policy.auth(result, self.auth_failures)
            return [self._text(text)]
        if creds.kind == "oauth":
            # As Gmail answers a token it does not take (expired or unknown): a 334 with a JSON
            # error, then, once the client answered it (an empty line; ^A for OAUTHBEARER, whose
            # JSON is RFC 7628's), the auth_failed text.
            if result is AuthResult.EXPIRED:
                self.notes.append(f"{mechanism or 'XOAUTH2'} for {creds.username or account.username}: "
                                  "the access token has expired")
            self._oauth_failed = mechanism or "XOAUTH2"
            self.wants = "line"
            return [self._challenge(sasl.OAUTHBEARER_ERROR if mechanism == "OAUTHBEARER" else OAUTH_ERROR)]
        return self._failed(result)

    def _failed(self, result: AuthResult) -> list:
        text, close = self.policy.auth(result, self.auth_failures)
        self.auth_failures += 1
        out: list = [self._text(text)]
        if close or text.startswith("421"):
            out.append(Close("too many failed AUTH attempts" if close else "421 reply"))
        return out

    # -- the mail transaction --------------------------------------------------------------

    def _mail(self, arg: str | None) -> list:
        if self.helo is None:
            return self._error("503 5.5.1 Error: send HELO/EHLO first")
        if self.transaction is not None:
            return self._error("503 5.5.1 Error: nested MAIL command")
        parsed = _path(arg, "FROM:")
        if parsed is None:
            return self._error("501 5.5.4 Syntax: MAIL FROM:<address>")
        address, words = parsed
        advertised = self.policy.advertised(tls=self.tls) if words else frozenset()  # only parameters need it
        refusal, params = self.policy.mail(address, words, advertised, self.username is not None, self.extended)
        if refusal is not None:
            return self._final(refusal)
        self.transaction = Transaction(address, params)
        return [self._text("250 2.1.0 OK")]

    def _rcpt(self, arg: str | None) -> list:
        if self.transaction is None:
            return self._error("503 5.5.1 Error: need MAIL command")
        parsed = _path(arg, "TO:")
        if parsed is None or not parsed[0]:
            return self._error("501 5.5.4 Syntax: RCPT TO:<address>")
        address, words = parsed
        t = self.transaction
        refusal = self.policy.rcpt(address, words, account_key(self.username, t.mail_from), t.params.smtputf8,
                                   len(t.rcpt_tos))
        if refusal is not None:
            t.refused.append(address)
            t.refused_replies.append(reply_lines(refusal, hostname=self.config.hostname)[-1])
            return self._final(refusal)
        t.rcpt_tos.append(address)
        return [self._text("250 2.1.5 OK")]

    def _data(self, arg: str | None) -> list:
        if self.transaction is None:
            return self._error("503 5.5.1 Error: need MAIL command")
        if arg:
            return self._error("501 5.5.4 Syntax: DATA")
        if not self.transaction.rcpt_tos:
            return self._error("554 5.5.1 Error: no valid recipients")
        self.wants = "data"
        return [self._text("354 End data with <CR><LF>.<CR><LF>")]

    def data_refused(self) -> None:
        """The 354 was replaced by a fault's reply: no message follows."""
        if self.wants == "data":
            self.wants = "command"

    def message(self, data: bytes, size: int, oversize: bool = False, at: float = 0.0,
                override: str | None = None) -> list:
        """The message after the final dot (dot-unstuffed). ``override``: a fault answered (or,
        when empty, said nothing) instead of the fake, so nothing is checked, counted or delivered."""
        self.wants = "command"
        t, self.transaction = self.transaction, None
        if t is None:  # cannot happen: DATA is only accepted inside a transaction
            return [self._text("503 5.5.1 Error: need MAIL command")]
        recipients = tuple(t.rcpt_tos)
        account = account_key(self.username, t.mail_from)
        out: list = []
        accepted = False
        if override is not None:
            if override:
                out = [Reply([override], injected=True)]
        else:
            refusal = self.policy.message(account, self.username, t.mail_from, recipients, size, oversize)
            queue_id = f"{next(_queue_ids):08X}"
            if refusal is None:
                accepted = True
                self.policy.commit(account, recipients)
                where = deliver(self.store, data, self.username or t.mail_from, recipients, self.config.deliver_to)
                if where:
                    self.notes.append(f"message {queue_id} delivered to {', '.join(where)}")
            if not data.isascii() and t.params.body != "8BITMIME":
                self.notes.append("message has 8-bit bytes but MAIL had no BODY=8BITMIME")
            out = self._final(refusal) if refusal else self._accepted(queue_id)
        if self.on_submission is not None:
            params = t.params
            index = self.on_submission(Submission._make((  # the fields in order (reply_sent: not yet)
                *self.connection, self.username, t.mail_from, recipients, tuple(t.refused), tuple(t.refused_replies),
                data, size, out[0].lines[-1] if out else "", accepted, False, at, params.smtputf8, params.body,
                params.size)))
            if out:
                if accepted:
                    out[0].submission = index  # the accepted reply is made for this message
                else:
                    out[0] = out[0].for_submission(index)
        return out

    def _accepted(self, queue_id: str) -> list:
        """The accepted text, its ``{id}`` the message's queue id (filled in after the
        template's lines were made once, so each message does not make new ones)."""
        template = self._text(self.config.texts.accepted)
        lines = template.lines
        lines = (lines[0].replace("{id}", queue_id),) if len(lines) == 1 else tuple(
            line.replace("{id}", queue_id) for line in lines)
        out: list = [Reply(lines, codes=template.codes)]  # a new one: it will carry the submission
        if lines[0].startswith("421"):  # as _final says it
            out.append(Close("421 reply"))
        return out

    def cancel_line(self) -> None:
        """A fault answered a SASL response instead of the fake: the exchange is over."""
        self._sasl, self._oauth_failed = None, ""
        if self.wants == "line":
            self.wants = "command"


_HANDLERS = {verb: f"_{verb.lower()}" for verb in KNOWN_VERBS}  # verb -> the method that answers it


def _path(arg: str | None, keyword: str) -> tuple[str, tuple[str, ...]] | None:
    """``FROM:<address> PARAMS`` as (address, parameter words); None when malformed.
    Remembered per argument, as :func:`parse_command` is per line."""
    key = (arg, keyword)
    parsed = _PATHS.get(key, _UNSEEN)
    if parsed is _UNSEEN:
        parsed = _parse_path(arg, keyword)
        if len(_PATHS) >= 1024:
            _PATHS.clear()
        _PATHS[key] = parsed
    return parsed


_PATHS: dict[tuple[str | None, str], tuple[str, tuple[str, ...]] | None] = {}
_UNSEEN = object()


def _parse_path(arg: str | None, keyword: str) -> tuple[str, tuple[str, ...]] | None:
    if not arg or arg[: len(keyword)].upper() != keyword:
        return None
    rest = arg[len(keyword):].strip()
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            return None
        address, words = rest[1:end], rest[end + 1:].split()
        if ":" in address and address.startswith("@"):  # an RFC 5321 source route: ignored
            address = address.split(":", 1)[1]
    else:
        words = rest.split()
        if not words:
            return None
        address, words = words[0], words[1:]
    if _NOT_IN_ADDRESS.search(address) or (address and "@" not in address and address.lower() != "postmaster"):
        return None
    return address, tuple(words)


def _strip_code(line: str) -> str:
    status, code = split_code(line)
    if status is None or code is None:
        return line
    rest = line[4 + len(code):].lstrip(" ")
    return f"{line[:4]}{rest}"


def describe_command(name: str, line: bytes) -> tuple[str, bool]:
    """(what a transcript shows, whether the line carries a credential) for a command line:
    an AUTH initial response is shown as ``***``."""
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    if name == "AUTH":
        words = text.split()
        if len(words) >= 3:
            return f"{words[0]} {words[1]} ***", True
    return text, False


def describe_line(line: bytes) -> tuple[str, bool]:
    """The same for a SASL continuation line: everything but a cancel (``*``) or an empty or
    ^A (``AQ==``, OAUTHBEARER's) acknowledgement is a secret."""
    data = line.strip()
    if data in (b"", b"*", b"AQ=="):
        return data.decode(), False
    return "***", True
