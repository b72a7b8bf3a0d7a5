"""Sending the outbox over SMTP submission: one session at a time, each message sent in full
or kept with a reason.

The session (RFC 5321, with RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 1870 SIZE, RFC 6152
8BITMIME, RFC 6531 SMTPUTF8):

* **Security as configured** (``MAILCONFORM_SMTP_SECURITY``): ``tls`` is TLS from the first
  byte; ``starttls`` sends EHLO, then STARTTLS, and stops (exit 3) when STARTTLS is not
  offered or not accepted; ``none`` stays in plaintext. Certificates are checked as for IMAP
  (:func:`reference_client.connect.tls_context`: ``MAILCONFORM_CA_FILE`` only, host name,
  TLS 1.2 or newer). Whatever the server said before TLS is thrown away, bytes pipelined
  behind the ``220`` to STARTTLS included, and EHLO is sent again over TLS: only the
  capabilities listed after the handshake count.
* **AUTH only over TLS** (or in plaintext when configured ``none``): ``PLAIN`` with the
  credentials' exact UTF-8 bytes as the initial response, else ``LOGIN`` (UTF-8 too), never a
  mechanism the server did not list; with an OAuth token source (``MAILCONFORM_OAUTH_TOKEN_URL``)
  ``XOAUTH2`` when offered, a refused token renewed once. A refusal (``535``, ``534 5.7.9``
  "application-specific password required", any other 5xx) ends the run with exit 4 and the
  server's words: the same credentials are not tried again. ``454`` "too many login attempts"
  stops too (exit 5); any other ``454`` is a temporary failure with a small retry budget.
* **Before DATA**: a message larger than the advertised ``SIZE`` is not sent; a UTF-8 envelope
  address (or UTF-8 in the header) without ``SMTPUTF8`` is not sent; an 8-bit body goes with
  ``BODY=8BITMIME`` when offered and is re-encoded (:mod:`reference_client.sevenbit`) when not.
  Such messages are reported and stay in the outbox. ``SIZE=`` is declared when offered.
* **Recipients**: ``452`` (``4.5.3`` too many recipients) after some were accepted sends the
  message to those and starts a new transaction for the rest, as RFC 5321 §4.5.3.1.10 asks;
  other ``4xx`` defer that recipient (retried after a pause), ``5xx`` refuse it (reported).
  A daily quota (``5.4.5``) stops the run without sending that transaction.
* **A message's file is removed only after the final 2xx for every recipient.** One accepted
  for some recipients only stays in the outbox, and :class:`reference_client.outbox.Progress`
  remembers who has it, so the next attempt goes to the others only.
* **Temporary trouble** (a ``4xx`` to MAIL or DATA, ``421`` anywhere, which also ends the
  session, a lost connection) closes the session, waits (:class:`reference_client.backoff.Backoff`,
  honouring a pause the reply names, e.g. "try again in 2 seconds") and starts a new one; the
  budget is bounded. A connection lost after the final dot, before the reply, leaves the
  message's fate unknown: it is sent again (a possible duplicate, said on stderr, rather than a
  possible loss).
"""

from __future__ import annotations

import base64
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import Callable

from . import outbox, sevenbit
from .backoff import Backoff
from .config import SmtpConfig
from .connect import CONNECT_TIMEOUT, READ_TIMEOUT, discard_pending, tls_context
from .errors import (EXIT_AUTH, EXIT_ERROR, EXIT_INSECURE, EXIT_OK, EXIT_UNAVAILABLE, ClientError, Retry,
                     printable, retry_after)
from .outbox import Outgoing, Progress

REFUSE = "refusing to send credentials or mail in plaintext"
UNVERIFIED = "refusing to send credentials or mail over a connection that is not trustworthy"
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


class Unsendable(Exception):
    """This message cannot go now as it is: report it, keep its file, go on with the next."""


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # the reply's lines, joined with " / ", printable

    @classmethod
    def of(cls, code: int, message: bytes | str) -> "Reply":
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        return cls(code, printable(" / ".join(line.strip() for line in message.splitlines())))

    @property
    def enhanced(self) -> str | None:
        match = _ENHANCED.match(self.text)
        return match.group(0) if match else None

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def quota(self) -> bool:
        """A daily sending or recipient quota ("550 5.4.5 Daily user sending quota exceeded")."""
        return self.code >= 500 and (self.enhanced == "5.4.5" or "quota" in self.text.lower())

    def too_many_recipients(self) -> bool:
        """The per-message recipient cap (RFC 5321 §4.5.3.1.10: 452, or 552 from old servers)."""
        lowered = self.text.lower()
        return self.code == 452 or (self.code == 552 and ("5.5.3" == self.enhanced or "recipients" in lowered))

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class _SMTP(smtplib.SMTP):
    """smtplib with a connect timeout of its own and, for implicit TLS, a handshake that
    checks the certificate against the name we connected to."""

    def __init__(self, implicit: ssl.SSLContext | None) -> None:
        self.implicit = implicit
        super().__init__(local_hostname="localhost", timeout=CONNECT_TIMEOUT)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout, self.source_address)
        if self.implicit is None:
            return sock
        try:
            return self.implicit.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise


class Session:
    """One SMTP session: connected, secured, greeted with EHLO and authenticated."""

    def __init__(self, smtp: _SMTP, config: SmtpConfig, notify: Callable[[str], None]) -> None:
        self.smtp = smtp
        self.config = config
        self.notify = notify
        self.method = "no AUTH"
        self.where = f"{config.host}:{config.port}"

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, config: SmtpConfig, notify: Callable[[str], None] = lambda line: None) -> "Session":
        context = tls_context(config.ca_file)
        smtp = _SMTP(context if config.security == "tls" else None)
        session = cls(smtp, config, notify)
        try:
            session._connect()
            session._ehlo()
            if config.security == "starttls":
                session._starttls(context)
            session._login()
        except BaseException:
            session.close()
            raise
        return session

    def _connect(self) -> None:
        where = self.where
        try:
            code, message = self.smtp.connect(self.config.host, self.config.port)
        except ssl.SSLCertVerificationError as exc:
            raise ClientError(EXIT_INSECURE, f"invalid certificate from {where}: {exc.verify_message}; "
                                             f"{UNVERIFIED}") from None
        except ssl.SSLError as exc:
            raise ClientError(EXIT_INSECURE, f"TLS handshake with {where} failed ({exc.reason or exc}); "
                                             "is it an implicit-TLS port offering TLS 1.2 or newer?") from None
        except ConnectionRefusedError:
            raise ClientError(EXIT_ERROR, f"connection refused by {where}") from None
        except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:
            if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
                raise ClientError(EXIT_ERROR, f"no SMTP greeting from {where} within {CONNECT_TIMEOUT:g} s "
                                              "(wrong port or security setting, or a firewall?)") from None
            raise Retry(f"connection to {where} lost before the greeting: {printable(str(exc))}") from None
        except OSError as exc:
            if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
                raise Retry(f"connection to {where} lost before the greeting: {exc}") from None
            raise ClientError(EXIT_ERROR, f"cannot connect to {where}: {exc}") from None
        self.smtp.sock.settimeout(READ_TIMEOUT)
        local = self.smtp.sock.getsockname()[0]
        self.smtp.local_hostname = f"[IPv6:{local}]" if ":" in local else f"[{local}]"  # RFC 5321 address literal
        greeting = Reply.of(code, message)
        if code == 220:
            return
        if code == -1:
            raise ClientError(EXIT_ERROR, f"{where} is not an SMTP server (greeting {greeting.text!r})")
        if greeting.temporary:
            raise Retry(f"{where} refused the connection: {greeting}", at_least=retry_after(greeting.text),
                        kind="greeting")
        raise ClientError(EXIT_UNAVAILABLE, f"{where} refused the connection: {greeting}")

    def _ehlo(self) -> None:
        code, message = self._call("greeting the server (EHLO)", self.smtp.ehlo)
        if code == 250:
            return
        reply = Reply.of(code, message)
        if code == 421:
            raise Retry(f"server closed the session at EHLO: {reply}", at_least=retry_after(reply.text))
        code, message = self._call("greeting the server (HELO)", self.smtp.helo)
        if code != 250:
            raise Retry(f"server refused EHLO and HELO: {Reply.of(code, message)}", at_least=retry_after(reply.text))

    def _starttls(self, context: ssl.SSLContext) -> None:
        smtp = self.smtp
        if not smtp.has_extn("starttls"):
            raise ClientError(EXIT_INSECURE, f"server does not offer STARTTLS; {REFUSE}")
        try:
            code, message = smtp.docmd("STARTTLS")
        except (smtplib.SMTPException, OSError) as exc:
            raise ClientError(EXIT_INSECURE, f"connection lost during STARTTLS ({printable(str(exc))}); "
                                             f"{REFUSE}") from None
        if code != 220:
            raise ClientError(EXIT_INSECURE, f"server refused STARTTLS ({Reply.of(code, message)}); {REFUSE}")
        # Nothing received in plaintext may be used: drop what smtplib buffered and what
        # the socket holds, then forget the pre-TLS capabilities (RFC 3207 §4.2).
        discarded = discard_pending(smtp.file, smtp.sock)
        smtp.file = None
        try:
            smtp.sock = context.wrap_socket(smtp.sock, server_hostname=self.config.host)
        except ssl.SSLCertVerificationError as exc:
            raise ClientError(EXIT_INSECURE, f"invalid certificate after STARTTLS: {exc.verify_message}; "
                                             f"{UNVERIFIED}") from None
        except ssl.SSLError as exc:
            raise ClientError(EXIT_INSECURE, f"TLS handshake after STARTTLS failed ({exc.reason or exc}); "
                                             f"{UNVERIFIED}") from None
        except OSError as exc:
            raise ClientError(EXIT_INSECURE, f"connection lost during STARTTLS ({exc}); {REFUSE}") from None
        smtp.helo_resp = smtp.ehlo_resp = None
        smtp.esmtp_features = {}
        smtp.does_esmtp = False
        if discarded:
            self.notify(f"warning: discarded {discarded} bytes the server sent in plaintext after the "
                        "STARTTLS 220 (possible response injection)")
        self._ehlo()

    def _login(self) -> None:
        offered = self.smtp.esmtp_features.get("auth", "").upper().split() if self.smtp.does_esmtp else []
        if not offered:
            return  # nothing to log in with: send, and a server that wanted AUTH says so (530)
        user = self.config.username.encode("utf-8")
        password = self.config.password.encode("utf-8")
        oauth = getattr(self.config, "oauth", None)  # reference_client.oauth.TokenSource (a token URL is set)
        if oauth is not None and "XOAUTH2" in offered:
            return self._xoauth2(oauth)
        if "PLAIN" in offered:
            self.method = "AUTH PLAIN"
            reply = self._auth("AUTH", "PLAIN " + _b64(b"\0" + user + b"\0" + password))
            if reply.code == 334:  # the server ignored the initial response and asks for it
                reply = self._auth(_b64(b"\0" + user + b"\0" + password))
        elif "LOGIN" in offered:
            self.method = "AUTH LOGIN"
            reply = self._auth("AUTH", "LOGIN")
            if reply.code == 334:
                reply = self._auth(_b64(user))
            if reply.code == 334:
                reply = self._auth(_b64(password))
        else:
            raise ClientError(EXIT_AUTH, f"server offers no login method this client has (AUTH {' '.join(offered)};"
                                         " this client speaks PLAIN and LOGIN)")
        if reply.code == 235:
            return
        if reply.code == 334:
            self._auth("*")  # cancel an exchange that goes on (RFC 4954 §4)
            raise ClientError(EXIT_AUTH, f"authentication failed ({self.method}): the server asked for more "
                                         "than user name and password")
        raise self._auth_refused(reply)

    def _xoauth2(self, oauth) -> None:
        """XOAUTH2 with the account's access token; a refused token (an expired one is refused
        like any other: a 334 error challenge, then 535) is renewed once and tried again."""
        self.method = "AUTH XOAUTH2"
        renewed = False
        while True:
            token = oauth.token()
            reply = self._auth("AUTH", "XOAUTH2 " + _b64(f"user={self.config.username}\x01auth=Bearer {token}"
                                                         "\x01\x01".encode("utf-8")))
            if reply.code == 334:  # the error challenge: an empty line gets the final reply
                reply = self._auth("")
            if reply.code == 235:
                return
            if renewed or reply.code // 100 != 5 or not oauth.can_refresh:
                raise self._auth_refused(reply)
            oauth.refresh(f"the SMTP server refused the access token ({reply})")
            renewed = True

    def _auth(self, command: str, args: str = "") -> Reply:
        try:
            if args:
                code, message = self.smtp.docmd(command, args)
            else:  # a continuation line: no verb
                self.smtp.send(command + "\r\n")
                code, message = self.smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            raise Retry(f"connection lost during {self.method}: {printable(str(exc))}", kind="auth-lost") from None
        return Reply.of(code, message)

    def _auth_refused(self, reply: Reply) -> Exception:
        text = str(reply)
        if reply.code == 421:
            return Retry(f"server closed the session during {self.method}: {text}",
                         at_least=retry_after(reply.text), kind="auth")
        if reply.code == 454 and "too many" in reply.text.lower():
            return ClientError(EXIT_UNAVAILABLE, f"server refuses logins for now ({text}); not trying again")
        if reply.temporary:
            return Retry(f"temporary authentication failure: {text}", at_least=retry_after(reply.text), kind="auth")
        if (reply.code == 534 or reply.enhanced == "5.7.9") and "application-specific" not in text.lower():
            text += " (an application-specific password is required)"
        return ClientError(EXIT_AUTH, f"authentication failed ({self.method}): {text}")

    # -- sending -----------------------------------------------------------------------------

    def has(self, extension: str) -> bool:
        return self.smtp.does_esmtp and self.smtp.has_extn(extension)

    def prepare(self, message: Outgoing) -> tuple[bytes, list[str]]:
        """What to send and the MAIL parameters, or :class:`Unsendable` with the reason."""
        data = message.data
        params: list[str] = []
        limit = _int(self.smtp.esmtp_features.get("size", "")) if self.has("size") else 0
        if limit and len(data) > limit:  # before any work on it: re-encoding only makes it larger
            raise Unsendable(f"it is {len(data):,} bytes and the server accepts at most {limit:,} (SIZE)")
        envelope = [message.sender, *message.recipients]
        if not all(a.isascii() for a in envelope) or sevenbit.header_is_8bit(data):
            if not self.has("smtputf8"):
                what = ("the address " + next(a for a in envelope if not a.isascii())
                        if not all(a.isascii() for a in envelope) else "its header, which has UTF-8")
                raise Unsendable(f"{what} needs SMTPUTF8, which the server does not offer")
            params.append("SMTPUTF8")
        if sevenbit.needs_encoding(data):
            if self.has("8bitmime") and not sevenbit.has_long_line(sevenbit.split_header(data)[1]):
                params.append("BODY=8BITMIME")
            else:
                data = sevenbit.to_7bit(data)
                if sevenbit.body_is_8bit(data):
                    if not self.has("8bitmime"):
                        raise Unsendable("its body has 8-bit bytes this client cannot re-encode and the server "
                                         "does not offer 8BITMIME")
                    params.append("BODY=8BITMIME")
        if self.has("size"):
            if limit and len(data) > limit:
                raise Unsendable(f"it is {len(data):,} bytes and the server accepts at most {limit:,} (SIZE)")
            params.append(f"SIZE={len(data)}")
        return data, params

    def send(self, message: Outgoing, progress: Progress, *, progressed: Callable[[], None] = lambda: None) -> None:
        """Deliver ``message`` to every recipient not served yet; returns when all have it."""
        data, params = self.prepare(message)
        remaining = progress.remaining(message)
        deferred: list[tuple[str, Reply]] = []
        refused: list[tuple[str, Reply]] = []
        # UTF-8 on the command line only in a transaction that declared SMTPUTF8
        self.smtp.command_encoding = "utf-8" if "SMTPUTF8" in params else "ascii"
        try:
            while remaining:
                accepted, remaining, deferred_now, refused_now = self._transaction(message, data, params, remaining)
                deferred += deferred_now
                refused += refused_now
                if accepted:
                    progress.add(message, accepted)
                    progressed()
        finally:
            self.smtp.command_encoding = "ascii"
        total = len(message.recipients)
        served = total - len(deferred) - len(refused)
        if deferred:
            address, reply = deferred[0]
            raise Retry(f"{message.name}: {len(deferred)} recipient(s) deferred ({address}: {reply}); "
                        f"{served} of {total} have it", at_least=retry_after(reply.text))
        if refused:
            names = ", ".join(f"{a} ({r})" for a, r in refused[:3]) + (" ..." if len(refused) > 3 else "")
            raise Unsendable(f"the server refused {len(refused)} recipient(s): {names}; {served} of {total} "
                             "have it, the others will be tried again")

    def _transaction(self, message: Outgoing, data: bytes, params: list[str], recipients: list[str]):
        """MAIL, RCPT for ``recipients``, DATA: returns (delivered, left for another
        transaction, deferred, refused)."""
        doing = f"sending {message.name}"
        mail = self._command(doing, "MAIL", f"FROM:<{message.sender}>" + "".join(f" {p}" for p in params))
        if not mail.ok:
            self._fail(message, "MAIL FROM", mail)
        accepted: list[str] = []
        deferred: list[tuple[str, Reply]] = []
        refused: list[tuple[str, Reply]] = []
        left: list[str] = []
        for i, address in enumerate(recipients):
            reply = self._command(doing, "RCPT", f"TO:<{address}>")
            if reply.ok:
                accepted.append(address)
            elif reply.code == 421:
                raise Retry(f"server closed the session at RCPT TO ({message.name}): {reply}",
                            at_least=retry_after(reply.text))
            elif reply.too_many_recipients():
                if not accepted:  # not even one: the server cannot take any now
                    self._rset()
                    raise Retry(f"{message.name}: recipient refused for now: {reply}", at_least=retry_after(reply.text))
                left = recipients[i:]  # the rest go in the next transaction (RFC 5321 §4.5.3.1.10)
                self.notify(f"{message.name}: the server takes {len(accepted)} recipients per message ({reply}); "
                            "sending to the rest in another transaction")
                break
            elif reply.quota():
                self._rset()
                raise self._quota(message, reply)
            elif reply.temporary:
                deferred.append((address, reply))
            else:
                refused.append((address, reply))
        if not accepted:
            self._rset()
            return [], left, deferred, refused
        reply = self._data(message, data)
        if not reply.ok:
            self._fail(message, "the message", reply)
        return accepted, left, deferred, refused

    def _data(self, message: Outgoing, data: bytes) -> Reply:
        doing = f"sending {message.name}"
        reply = self._command(doing, "DATA")
        if reply.code != 354:
            return reply
        payload = re.sub(rb"(?m)^\.", b"..", data)  # dot-stuffing (RFC 5321 §4.5.2)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        try:
            self.smtp.send(payload + b".\r\n")
            code, text = self.smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            raise Retry(f"connection lost after sending {message.name}, before the server's reply "
                        f"({printable(str(exc))}); it may have been delivered: sending it again, "
                        "so it may arrive twice") from None
        return Reply.of(code, text)

    def _fail(self, message: Outgoing, what: str, reply: Reply) -> None:
        """A transaction refused at MAIL FROM or at the end of DATA."""
        if reply.code == 421:
            raise Retry(f"server closed the session at {what} ({message.name}): {reply}",
                        at_least=retry_after(reply.text))
        self._rset()
        if reply.quota():
            raise self._quota(message, reply)
        if reply.code == 530 or (reply.enhanced == "5.7.0" and "authentic" in reply.text.lower()):
            raise ClientError(EXIT_AUTH, f"the server requires authentication ({reply}) and offered no "
                                         "mechanism this client has")
        if reply.temporary:
            raise Retry(f"{message.name}: {what} refused for now: {reply}", at_least=retry_after(reply.text))
        raise Unsendable(f"the server refused {what}: {reply}")

    def _quota(self, message: Outgoing, reply: Reply) -> ClientError:
        return ClientError(EXIT_UNAVAILABLE, f"{message.name}: the account's sending quota is used up ({reply}); "
                                             "stopping, the message stays in the outbox")

    def _command(self, doing: str, verb: str, args: str = "") -> Reply:
        code, message = self._call(doing, self.smtp.docmd, verb, args)
        return Reply.of(code, message)

    def _rset(self) -> None:
        try:
            self.smtp.docmd("RSET")
        except (smtplib.SMTPException, OSError):
            pass  # the next command finds out

    def _call(self, doing: str, fn, *args):
        try:
            return fn(*args)
        except smtplib.SMTPResponseException as exc:  # a reply line too long
            raise Retry(f"{doing}: {exc.smtp_code} {printable(str(exc.smtp_error))}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Retry(f"{doing}: connection lost ({printable(str(exc))})") from None

    # -- closing -----------------------------------------------------------------------------

    def quit(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        try:
            self.smtp.close()
        except Exception:
            pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _int(text: str) -> int:
    try:
        return int(text.strip().split()[0])
    except (ValueError, IndexError):
        return 0


@dataclass
class Totals:
    queued: int = 0  # messages in the outbox at the start
    sent: int = 0
    kept: int = 0
    method: str = "no AUTH"


def submit_outbox(config: SmtpConfig, *, sleep: Callable[[float], None], notify: Callable[[str], None],
                  totals: Totals | None = None) -> int:
    """Send every message of the outbox; returns the exit status (problems already reported
    through ``notify``, one line each)."""
    totals = totals if totals is not None else Totals()
    progress = Progress.load(config.state_dir)
    messages = outbox.read(config.outbox, config.email)
    progress.keep_only(messages)
    totals.queued = len(messages)
    pending: list[Outgoing] = []
    status = EXIT_OK
    for message in messages:
        if message.problem:
            notify(f"error: {message.name} not sent: {message.problem}; kept in the outbox")
            status = EXIT_ERROR
        else:
            pending.append(message)
    totals.kept = len(messages) - len(pending)
    backoff = Backoff(config.scenario, sleep=sleep, notify=notify)
    session: Session | None = None
    try:
        while pending:
            message = pending[0]
            try:
                if session is None:
                    session = Session.open(config, notify)
                    totals.method = session.method
                session.send(message, progress, progressed=backoff.progressed)
            except Unsendable as exc:
                notify(f"error: {message.name} not sent: {exc}; kept in the outbox")
                status = EXIT_ERROR
                totals.kept += 1
                pending.pop(0)
                continue
            except Retry as retry:
                if session is not None:
                    session.close()
                    session = None
                backoff.wait(retry)
                continue
            message.path.unlink()
            progress.forget(message)
            backoff.progressed()
            totals.sent += 1
            pending.pop(0)
    except ClientError as exc:
        if session is not None:
            session.close()
            session = None
        totals.kept += len(pending)
        kept = f" ({len(pending)} message(s) kept in the outbox)" if pending else ""
        notify(f"error: {exc}{kept}")
        return exc.status
    finally:
        if session is not None:
            session.quit()
    return status
