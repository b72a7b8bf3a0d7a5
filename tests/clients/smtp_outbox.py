"""Small outbox clients for the SMTP checks' tests: one careful, the others careless on purpose.

Each is ``fn(ctx)`` (the python adapter's calling convention): it submits every ``*.eml`` of
``ctx.outbox`` with smtplib to its To, Cc and Bcc recipients.

``careful`` follows the contract: TLS as configured, the certificate checked against the run's
CA, AUTH PLAIN with the exact UTF-8 bytes, SMTPUTF8 and 8BITMIME only when advertised (an 8-bit
body is re-encoded as quoted-printable otherwise), one transaction per message in which a
refused recipient makes it RSET and keep the file (recipients refused with 452 "too many" are
sent in a further transaction instead), and a file is removed only once every recipient was
accepted and the final 250 arrived. A temporary failure naming a short wait is retried once
after that wait; otherwise the file stays for the next run. A quota reply ends the run.

The others each break one rule, so the tests can see a check fail: ``deletes_always``,
``deletes_partial``, ``never_deletes``, ``insecure``, ``hammer``, ``ignores_size``,
``ignores_extensions``.
"""

from __future__ import annotations

import base64
import email
import quopri
import re
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr
from pathlib import Path

WAIT_LIMIT = 5.0  # longest named wait the careful client sits out within a run


class SubmitError(Exception):
    """Why a run did not send everything (the message the harness's error checks read)."""


@dataclass(frozen=True)
class Policy:
    remove: str = "accepted"  # "accepted" | "always" | "after-data" (even with refused recipients) | "never"
    verify: bool = True  # check the certificate and insist on STARTTLS
    rest_after_452: bool = True  # send recipients refused as "too many" in a further transaction
    retry_immediately: int = 0  # on a temporary failure, try again at once this many times
    stop_on_quota: bool = True
    declare_size: bool = True  # smtplib's SIZE= (False: the SIZE extension is ignored)
    respect_extensions: bool = True  # SMTPUTF8 / 8BITMIME only when advertised


def careful(ctx) -> None:
    Submitter(ctx, Policy()).run()


def deletes_always(ctx) -> None:
    Submitter(ctx, Policy(remove="always")).run()


def deletes_partial(ctx) -> None:
    Submitter(ctx, Policy(remove="after-data", rest_after_452=False)).run()


def never_deletes(ctx) -> None:
    Submitter(ctx, Policy(remove="never")).run()


def insecure(ctx) -> None:
    Submitter(ctx, Policy(verify=False)).run()


def hammer(ctx) -> None:
    Submitter(ctx, Policy(retry_immediately=8, stop_on_quota=False)).run()


def ignores_size(ctx) -> None:
    Submitter(ctx, Policy(declare_size=False)).run()


def ignores_extensions(ctx) -> None:
    Submitter(ctx, Policy(respect_extensions=False)).run()


def recipients_of(msg) -> list[str]:
    values = [v for k in ("To", "Cc", "Bcc") for v in msg.get_all(k, [])]
    return [a for _, a in getaddresses([str(v) for v in values]) if a]


def named_wait(text: str) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)\s*(ms|milliseconds?|seconds?|s)\b", text)
    if not match:
        return None
    return float(match.group(1)) / (1000 if match.group(2).startswith("m") else 1)


class Submitter:
    def __init__(self, ctx, policy: Policy) -> None:
        self.ctx, self.policy = ctx, policy
        self.conn: smtplib.SMTP | None = None
        self.problems: list[str] = []

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> smtplib.SMTP:
        ctx = self.ctx
        context = ssl.create_default_context(cafile=str(ctx.ca_file))
        if not self.policy.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if ctx.smtp_security == "tls":
            conn = smtplib.SMTP_SSL(ctx.smtp_host, ctx.smtp_port, context=context, timeout=10)
        else:
            conn = smtplib.SMTP(ctx.smtp_host, ctx.smtp_port, timeout=10)
        conn.ehlo()
        if ctx.smtp_security == "starttls":
            if conn.has_extn("starttls"):
                conn.starttls(context=context)
                conn.ehlo()
            elif self.policy.verify:
                conn.close()
                raise SubmitError("the submission server offers no STARTTLS: TLS is unavailable, nothing sent")
        self.login(conn)
        if not self.policy.declare_size:
            conn.esmtp_features.pop("size", None)
        return conn

    def login(self, conn: smtplib.SMTP) -> None:
        user, password = self.ctx.username.encode(), self.ctx.password.encode()
        blob = base64.b64encode(b"\0" + user + b"\0" + password).decode()
        code, text = conn.docmd("AUTH", "PLAIN " + blob)
        if code != 235:
            conn.close()
            raise SubmitError(f"authentication failed: {code} {text.decode(errors='replace')}")

    def session(self) -> smtplib.SMTP:
        if self.conn is None:
            self.conn = self.connect()
        return self.conn

    def abandon(self, code: int) -> None:
        """End a refused transaction: RSET, or forget a connection the server closed (421)."""
        if code == 421:
            self.drop()
            return
        try:
            self.session().rset()
        except smtplib.SMTPServerDisconnected:
            self.drop()

    def drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    # -- the outbox ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            for path in sorted(Path(self.ctx.outbox).glob("*.eml")):
                if not self.submit(path):
                    break
        finally:
            if self.conn is not None:
                try:
                    self.conn.quit()
                except smtplib.SMTPException:
                    pass
                self.drop()
        if self.problems:
            raise SubmitError("; ".join(self.problems))

    def submit(self, path: Path) -> bool:
        """Send one file; False ends the run."""
        raw = path.read_bytes()
        head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")  # RFC 6532: headers may be UTF-8
        msg = email.message_from_string(head + "\r\n\r\n")
        sender = parseaddr(str(msg.get("From", "")))[1] or self.ctx.username
        rcpts = recipients_of(msg)
        attempts = 1 + self.policy.retry_immediately
        for attempt in range(attempts + 1):
            try:
                outcome, reply = self.transaction(raw, sender, rcpts)
            except smtplib.SMTPServerDisconnected as exc:
                self.drop()
                outcome, reply = "lost", f"connection lost: {exc}"
            except SubmitError:
                if self.policy.remove == "always":
                    path.unlink()
                raise
            if outcome == "sent":
                if self.policy.remove != "never":
                    path.unlink()
                return True
            if outcome == "partial" and self.policy.remove == "after-data":
                path.unlink()
                return True
            if self.policy.remove == "always":
                path.unlink()
                return True
            if outcome == "temporary":
                if attempt < self.policy.retry_immediately:
                    continue
                wait = named_wait(reply)
                if attempt == 0 and wait is not None and wait <= WAIT_LIMIT and not self.policy.retry_immediately:
                    time.sleep(wait)  # the client's own pacing, as the server asked
                    continue
            quota = bool(re.search(r"quota|5\.4\.5", reply, re.I))
            self.problems.append(f"{path.name}: not sent ({reply})")
            if outcome == "lost" or reply.startswith("421") or (quota and self.policy.stop_on_quota):
                return False  # the server is gone or will refuse the rest: try again next run
            return True
        return True

    def transaction(self, raw: bytes, sender: str, rcpts: list[str]) -> tuple[str, str]:
        """("sent" | "partial" | "temporary" | "refused" | "skipped", the deciding reply)."""
        conn = self.session()
        options = []
        header = raw.split(b"\r\n\r\n", 1)[0]
        international = not (sender + "".join(rcpts)).isascii() or not header.isascii()
        if self.policy.respect_extensions:
            if international:
                if not conn.has_extn("smtputf8"):
                    return "skipped", "the server does not offer SMTPUTF8 for a UTF-8 address"
                options.append("SMTPUTF8")
            if not raw.isascii():
                if conn.has_extn("8bitmime"):
                    options.append("BODY=8BITMIME")
                else:
                    raw = seven_bit(raw)
                    if raw is None:
                        return "skipped", "8-bit message and no 8BITMIME"
        elif international:
            conn.command_encoding = "utf-8"
        if self.policy.declare_size and conn.has_extn("size"):
            options.append(f"SIZE={len(raw)}")
        code, text = conn.mail(sender, options)
        if code != 250:
            self.abandon(code)
            return _kind(code), f"{code} {text.decode(errors='replace')}"
        accepted, later, refusal = [], [], None
        for rcpt in rcpts:
            code, text = conn.rcpt(rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            elif code == 452 and self.policy.rest_after_452:
                later.append(rcpt)
            elif refusal is None:
                refusal = (code, f"{code} {text.decode(errors='replace')}")
        if refusal is not None and self.policy.remove != "after-data":
            self.abandon(refusal[0])
            return _kind(refusal[0]), refusal[1]
        if not accepted:
            self.abandon(0)
            return "temporary", "no recipient accepted"
        code, text = conn.data(raw)
        reply = f"{code} {text.decode(errors='replace')}"
        if code != 250:
            if code == 421:
                self.drop()
            return _kind(code), reply
        if later:
            return self.transaction(raw, sender, later)
        return ("partial" if refusal is not None else "sent"), reply


def _kind(code: int) -> str:
    return "temporary" if 400 <= code < 500 else "refused"


def seven_bit(raw: bytes) -> bytes | None:
    """A single-part 8-bit message re-encoded as quoted-printable (None when it is not that simple)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.isascii() or b"multipart" in head.lower():
        return None
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"content-transfer-encoding:")]
    lines.append(b"Content-Transfer-Encoding: quoted-printable")
    encoded = quopri.encodestring(body.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    return b"\r\n".join(lines) + b"\r\n\r\n" + encoded
