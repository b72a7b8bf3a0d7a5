"""The reference client's sending path against the real SMTP fake.

Each test puts ``.eml`` files into an outbox, runs the client's submission (in-process, with
its sleep replaced by a recorder so backoff costs nothing and is checked exactly), and judges
it by what the fake received (``provider.submissions()``, the wire record), what is left in
the outbox and the exit status with its stderr.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fake_servers import FakeProvider
from fake_servers.smtp.config import SmtpConfig as FakeSmtp
from reference_client.config import Config, SmtpConfig, load
from reference_client.errors import retry_after
from reference_client.outbox import crlf, parse
from reference_client.run import run
from reference_client.sevenbit import body_is_8bit, to_7bit

from .conftest import PASSWORD, USER

REPO = Path(__file__).resolve().parent.parent
FRIEND = "bob@example.test"


def message(n: int = 1, *, to: str = FRIEND, extra: str = "", body: bytes | None = None, sender: str = USER) -> bytes:
    head = (f"From: Alice <{sender}>\r\nTo: {to}\r\n{extra}Subject: Outgoing {n}\r\n"
            f"Message-ID: <out-{n}@example.test>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n")
    return head.encode("utf-8") + b"\r\n" + (body if body is not None else f"Message number {n}.\r\n".encode())


@dataclass
class Outcome:
    status: int
    out: str
    err: str
    waits: list[float] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [line for line in self.err.splitlines() if ": error: " in line]


class Home:
    """The client's directories for one test: outbox and state."""

    def __init__(self, root: Path) -> None:
        self.outbox = root / "outbox"
        self.state = root / "state"
        self.outbox.mkdir()

    def queue(self, name: str, data: bytes) -> Path:
        path = self.outbox / name
        path.write_bytes(data)
        return path

    def left(self) -> list[str]:
        return sorted(p.name for p in self.outbox.iterdir())

    def config(self, provider: FakeProvider, *, security: str = "starttls", username: str = USER,
               password: str = PASSWORD, port: int | None = None) -> SmtpConfig:
        if port is None:
            port = provider.smtps_port if security == "tls" else provider.smtp_port
        return SmtpConfig(host=provider.host, port=port, security=security, username=username, password=password,
                          ca_file=str(provider.ca_file), outbox=self.outbox, state_dir=self.state,
                          scenario="smtp-test")

    def send(self, provider: FakeProvider, **options) -> Outcome:
        out, err, waits = io.StringIO(), io.StringIO(), []
        status = run(None, self.config(provider, **options), stdout=out, stderr=err, sleep=waits.append)
        return Outcome(status, out.getvalue(), err.getvalue(), waits)


@pytest.fixture
def home(tmp_path) -> Home:
    return Home(tmp_path)


@pytest.fixture
def smtp_provider(make_provider):
    """A provider with the given SMTP settings and the known account (password, app password)."""
    def make(**settings) -> FakeProvider:
        faults = settings.pop("faults", None)
        options = {"smtp": FakeSmtp(**settings)}
        if faults is not None:
            options["faults"] = faults
        return make_provider(messages=0, **options)
    return make


def commands(provider: FakeProvider) -> list:
    return [cmd for _, cmd in provider.wire.commands(protocol="smtp")]


def verbs(provider: FakeProvider) -> list[str]:
    return [cmd.name for cmd in commands(provider)]


def accepted(provider: FakeProvider) -> list:
    return [s for s in provider.submissions() if s.accepted]


# -- the ordinary path -------------------------------------------------------------------------


def test_starttls_sends_every_message_and_empties_the_outbox(smtp_provider, home):
    provider = smtp_provider()
    for n in (1, 2, 3):
        home.queue(f"00{n}-m.eml", message(n))
    result = home.send(provider)
    assert result.status == 0, result.err
    assert home.left() == []
    subs = provider.submissions()
    assert [s.data for s in subs] == [message(n) for n in (1, 2, 3)]
    assert all(s.accepted and s.reply_sent and s.user == USER and s.server == "smtp" for s in subs)
    assert {s.session for s in subs} == {1}  # one session for the whole outbox
    assert [s.mail_from for s in subs] == [USER] * 3 and all(s.rcpt_tos == (FRIEND,) for s in subs)
    assert all(s.declared_size == len(s.data) for s in subs)  # SIZE= declared
    names = verbs(provider)
    assert names[:3] == ["EHLO", "STARTTLS", "EHLO"]  # EHLO again after TLS
    assert names.index("AUTH") > names.index("STARTTLS")
    assert provider.wire.credentials_before_tls((PASSWORD.encode(),)) == []
    assert all(c.tls for c in commands(provider) if c.name in ("AUTH", "MAIL", "RCPT", "DATA", "END-OF-DATA"))
    assert "sent 3 message(s) over SMTP with AUTH PLAIN" in result.out
    assert result.waits == []


def test_implicit_tls_sends_the_same(smtp_provider, home):
    provider = smtp_provider()
    home.queue("001-m.eml", message(1))
    result = home.send(provider, security="tls")
    assert result.status == 0, result.err
    (sub,) = provider.submissions()
    assert sub.server == "smtps" and sub.data == message(1)
    assert "STARTTLS" not in verbs(provider)
    assert home.left() == []


def test_envelope_from_the_header_bcc_stripped_line_endings_made_crlf(smtp_provider, home):
    provider = smtp_provider()
    raw = (b"From: \"Alice, A.\" <alice@example.test>\nTo: Bob <bob@example.test>, carol@example.test\n"
           b"Cc: dave@example.test,\n BOB@example.test\nBcc: secret@example.test,\n\tother@example.test\n"
           b"Subject: hi\n\n.leading dot\nbody\n")
    home.queue("001-m.eml", raw)
    result = home.send(provider)
    assert result.status == 0, result.err
    (sub,) = provider.submissions()
    assert sub.mail_from == "alice@example.test"
    assert sub.rcpt_tos == ("bob@example.test", "carol@example.test", "dave@example.test",
                           "secret@example.test", "other@example.test")
    assert b"secret@" not in sub.data and b"Bcc" not in sub.data and b"other@" not in sub.data
    assert sub.data == crlf(raw).replace(b"Bcc: secret@example.test,\r\n\tother@example.test\r\n", b"")
    assert b"\r\n.leading dot\r\n" in sub.data  # dot-stuffed on the wire, unstuffed by the server


def test_non_ascii_username_authenticates_with_the_exact_utf8_bytes(smtp_provider, home):
    provider = smtp_provider()
    user = "jürgen.müller@example.test"
    provider.add_account(user, "pässwörd")
    home.queue("001-m.eml", message(1, sender=user))
    result = home.send(provider, username=user, password="pässwörd")
    assert result.status == 0, result.err
    (sub,) = provider.submissions()
    assert sub.user == user
    (auth,) = [c for c in commands(provider) if c.name == "AUTH"]
    initial = auth.raw.split()[-1]
    assert base64.b64decode(initial) == b"\0" + user.encode() + b"\0" + "pässwörd".encode()


def test_login_is_used_when_it_is_the_only_mechanism(smtp_provider, home):
    provider = smtp_provider(auth_mechanisms=("LOGIN",))
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 0, result.err
    assert "AUTH LOGIN" in result.out
    assert [s.user for s in provider.submissions()] == [USER]


def test_imap_part_skipped_when_imap_host_unset_from_the_command_line(smtp_provider, home):
    provider = smtp_provider()
    home.queue("001-m.eml", message(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCONFORM_")}
    env.update({"MAILCONFORM_SMTP_HOST": provider.host, "MAILCONFORM_SMTP_PORT": str(provider.smtp_port),
                "MAILCONFORM_SMTP_SECURITY": "starttls", "MAILCONFORM_USERNAME": USER,
                "MAILCONFORM_PASSWORD": PASSWORD, "MAILCONFORM_CA_FILE": str(provider.ca_file),
                "MAILCONFORM_OUTBOX": str(home.outbox), "MAILCONFORM_STATE_DIR": str(home.state)})
    result = subprocess.run([sys.executable, "-m", "reference_client"], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert home.left() == [] and len(accepted(provider)) == 1
    assert not [c for c in provider.wire.connections if c.protocol == "imap"]
    imap, smtp = load(env)
    assert imap is None and smtp.outbox == home.outbox


# -- security --------------------------------------------------------------------------------


def test_no_starttls_refuses_before_credentials_or_mail(smtp_provider, home):
    provider = smtp_provider(starttls=False, auth_before_tls=True)
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 3
    assert "does not offer STARTTLS" in result.err and len(result.problems) == 1
    assert verbs(provider) == ["EHLO"] or verbs(provider) == ["EHLO", "QUIT"]
    assert provider.submissions() == [] and home.left() == ["001-m.eml"]


def test_starttls_refused_stops(smtp_provider, home):
    provider = smtp_provider(faults=[{"on": "command", "command": "STARTTLS", "action": "reply", "status": "454",
                                      "code": "4.7.0", "text": "TLS not available"}])
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 3 and "refused STARTTLS" in result.err
    assert "AUTH" not in verbs(provider) and "MAIL" not in verbs(provider)
    assert home.left() == ["001-m.eml"]


def test_pre_tls_capabilities_are_discarded(smtp_provider, home):
    """Plaintext EHLO advertises AUTH and no SIZE; over TLS SIZE 100: the TLS list decides."""
    provider = smtp_provider(ehlo_plaintext=("AUTH PLAIN LOGIN", "STARTTLS", "8BITMIME"),
                             ehlo_tls=("SIZE 100", "AUTH LOGIN", "8BITMIME"), auth_before_tls=True)
    home.queue("001-m.eml", message(1, body=b"x" * 200 + b"\r\n"))
    result = home.send(provider)
    assert result.status == 1
    assert "SIZE" in result.err and home.left() == ["001-m.eml"]
    auths = [c for c in commands(provider) if c.name == "AUTH"]
    assert [a.raw.split()[1].upper() for a in auths] == [b"LOGIN"]  # the TLS list's only mechanism


# -- what the server can take ----------------------------------------------------------------


def test_message_over_size_is_kept_and_the_rest_are_sent(smtp_provider, home):
    provider = smtp_provider(size_limit=2000)
    home.queue("001-big.eml", message(1, body=b"y" * 3000 + b"\r\n"))
    home.queue("002-small.eml", message(2))
    result = home.send(provider)
    assert result.status == 1
    assert home.left() == ["001-big.eml"]
    assert [s.data for s in provider.submissions()] == [message(2)]  # the big one never reached DATA
    assert not [c for c in commands(provider) if c.name == "MAIL" and b"out-1" in (c.raw or b"")]
    (problem,) = result.problems
    assert "001-big.eml not sent" in problem and "at most 2,000 (SIZE)" in problem and "kept" in problem


def test_utf8_address_is_not_sent_without_smtputf8(smtp_provider, home):
    provider = smtp_provider(smtputf8=False)
    home.queue("001-utf8.eml", message(1, to="jörg@example.test"))
    home.queue("002-ascii.eml", message(2))
    result = home.send(provider)
    assert result.status == 1
    assert home.left() == ["001-utf8.eml"]
    assert [s.rcpt_tos for s in provider.submissions()] == [(FRIEND,)]
    for cmd in commands(provider):
        assert (cmd.raw or b"").isascii()
    assert "jörg@example.test needs SMTPUTF8" in result.err


def test_utf8_address_goes_with_smtputf8_when_offered(smtp_provider, home):
    provider = smtp_provider()
    home.queue("001-utf8.eml", message(1, to="jörg@example.test", body="Grüße\r\n".encode()))
    result = home.send(provider)
    assert result.status == 0, result.err
    (sub,) = provider.submissions()
    assert sub.smtputf8 and sub.rcpt_tos == ("jörg@example.test",) and sub.body == "8BITMIME"


def test_8bit_body_is_reencoded_without_8bitmime(smtp_provider, home):
    provider = smtp_provider(eightbitmime=False)
    raw = message(1, extra="MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: 8bit\r\n", body="Grüße aus Köln\r\n".encode())
    home.queue("001-m.eml", raw)
    result = home.send(provider)
    assert result.status == 0, result.err
    (sub,) = provider.submissions()
    assert sub.data.isascii() and sub.body is None
    assert b"Content-Transfer-Encoding: quoted-printable" in sub.data
    sent = email.message_from_bytes(sub.data, policy=email.policy.compat32)
    assert sent.get_payload(decode=True) == "Grüße aus Köln\r\n".encode()
    assert home.left() == []


def test_8bit_body_declared_with_8bitmime(smtp_provider, home):
    provider = smtp_provider()
    raw = message(1, body="Grüße\r\n".encode())
    home.queue("001-m.eml", raw)
    assert home.send(provider).status == 0
    (sub,) = provider.submissions()
    assert sub.body == "8BITMIME" and sub.data == raw


# -- temporary trouble ------------------------------------------------------------------------


def test_greylisting_is_retried_after_a_pause(smtp_provider, home):
    provider = smtp_provider(greylist=True)
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 0, result.err
    assert [s.accepted for s in provider.submissions()] == [False, True]
    assert len(result.waits) == 1 and 1.0 <= result.waits[0] < 1.3
    assert home.left() == []


def test_4xx_with_a_named_pause_is_honoured(smtp_provider, home):
    provider = smtp_provider(faults=[{"on": "command", "command": "MAIL", "nth": 1, "action": "reply",
                                      "status": "451", "code": "4.3.0", "text": "Busy, try again in 7 seconds"}])
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 0, result.err
    assert len(result.waits) == 1 and 7.0 <= result.waits[0] <= 7.8
    assert len(accepted(provider)) == 1


def test_421_ends_the_session_and_a_new_one_delivers(smtp_provider, home):
    provider = smtp_provider(faults=[{"on": "command", "command": "RCPT", "nth": 1, "action": "bye",
                                      "code": "4.7.0", "text": "Too many messages, try again in 3 seconds"}])
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 0, result.err
    assert len(provider.wire.connections) == 2
    assert provider.wire.peak_concurrency() == 1
    assert 3.0 <= result.waits[0] <= 3.4
    assert [s.session for s in accepted(provider)] == [2]
    first = [c.name for c in provider.wire.connections[0].commands]
    assert first[-1] == "RCPT"  # nothing more was sent on the closed session


def test_persistent_4xx_gives_up_after_a_bounded_number_of_tries(smtp_provider, home):
    provider = smtp_provider(faults=[{"on": "command", "command": "MAIL", "action": "reply", "status": "451",
                                      "code": "4.3.0", "text": "Local error in processing"}])
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 5
    assert len(result.waits) == 4 and result.waits == sorted(result.waits)
    assert len([c for c in commands(provider) if c.name == "MAIL"]) == 5
    assert home.left() == ["001-m.eml"]
    assert len(result.problems) == 1


def test_reset_after_the_final_dot_sends_again_rather_than_lose_it(smtp_provider, home):
    provider = smtp_provider(faults=[{"on": "response", "command": "END-OF-DATA", "nth": 1, "action": "reset"}])
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 0, result.err
    subs = provider.submissions()
    assert [(s.accepted, s.reply_sent) for s in subs] == [(True, False), (True, True)]
    assert "may arrive twice" in result.err
    assert home.left() == []


# -- recipients and quotas --------------------------------------------------------------------


def test_recipient_cap_splits_the_message_into_transactions(smtp_provider, home):
    provider = smtp_provider(max_recipients=3)
    recipients = [f"r{i}@example.test" for i in range(8)]
    home.queue("001-m.eml", message(1, to=", ".join(recipients)))
    result = home.send(provider)
    assert result.status == 0, result.err
    subs = accepted(provider)
    assert [len(s.rcpt_tos) for s in subs] == [3, 3, 2]
    assert [r for s in subs for r in s.rcpt_tos] == recipients
    assert len({s.data for s in subs}) == 1
    assert home.left() == [] and result.waits == []


def test_refused_recipient_keeps_the_message_and_the_next_run_sends_only_to_it(smtp_provider, home):
    provider = smtp_provider(faults=[{"on": "command", "command": "RCPT", "nth": 2, "action": "reply",
                                      "status": "550", "code": "5.1.1", "text": "No such user"}])
    home.queue("001-m.eml", message(1, to="a@example.test, b@example.test, c@example.test"))
    first = home.send(provider)
    assert first.status == 1
    assert home.left() == ["001-m.eml"]
    assert [s.rcpt_tos for s in accepted(provider)] == [("a@example.test", "c@example.test")]
    assert "b@example.test" in first.err and "2 of 3" in first.err
    second = home.send(provider)
    assert second.status == 0, second.err
    assert [s.rcpt_tos for s in accepted(provider)][1:] == [("b@example.test",)]
    assert home.left() == []
    assert not (home.state / "outbox.json").exists() or b"001-m" not in (home.state / "outbox.json").read_bytes()


def test_deferred_recipient_is_retried_alone_after_the_pause_it_names(smtp_provider, home):
    provider = smtp_provider(faults=[{"on": "command", "command": "RCPT", "nth": 2, "action": "reply",
                                      "status": "450", "code": "4.2.1", "text": "Mailbox busy, try again in 1 second"}])
    home.queue("001-m.eml", message(1, to="a@example.test, b@example.test, c@example.test"))
    result = home.send(provider)
    assert result.status == 0, result.err
    assert [s.rcpt_tos for s in accepted(provider)] == [("a@example.test", "c@example.test"), ("b@example.test",)]
    assert len(result.waits) == 1 and 1.0 <= result.waits[0] <= 1.2
    assert "1 recipient(s) deferred" in result.err and "2 of 3 have it" in result.err
    assert home.left() == []


def test_daily_quota_stops_and_keeps_the_rest(smtp_provider, home):
    provider = smtp_provider(daily_messages=2)
    for n in range(1, 5):
        home.queue(f"00{n}-m.eml", message(n))
    result = home.send(provider)
    assert result.status == 5
    assert home.left() == ["003-m.eml", "004-m.eml"]
    assert len(accepted(provider)) == 2
    assert len(provider.submissions()) == 3  # one refused, and then no more tries
    assert result.waits == []
    assert "quota" in result.err and len(result.problems) == 1


# -- authentication --------------------------------------------------------------------------


def test_wrong_password_is_not_retried(smtp_provider, home):
    provider = smtp_provider()
    home.queue("001-m.eml", message(1))
    result = home.send(provider, password="wrong")
    assert result.status == 4
    assert "535 5.7.8" in result.err and len(result.problems) == 1
    assert len([c for c in commands(provider) if c.name == "AUTH"]) == 1
    assert result.waits == [] and home.left() == ["001-m.eml"]


def test_app_password_required_is_surfaced(smtp_provider, home):
    provider = smtp_provider()
    provider.call(lambda: setattr(provider.store.account(USER), "require_app_password", True))
    home.queue("001-m.eml", message(1))
    result = home.send(provider)
    assert result.status == 4 and "Application-specific password required" in result.err
    assert home.left() == ["001-m.eml"]
    assert home.send(provider, password="app-secret").status == 0
    assert home.left() == []


def test_too_many_login_attempts_stops(smtp_provider, home):
    provider = smtp_provider(max_auth_failures=1)
    home.queue("001-m.eml", message(1))
    result = home.send(provider, password="wrong")
    assert result.status == 5
    assert "Too many login attempts" in result.err and "not trying again" in result.err
    assert len([c for c in commands(provider) if c.name == "AUTH"]) == 1
    assert result.waits == [] and home.left() == ["001-m.eml"]


def test_sync_then_send_in_one_run(make_provider, home, tmp_path):
    provider = make_provider(messages=3, smtp=FakeSmtp())
    home.queue("001-m.eml", message(1))
    imap = Config(host=provider.host, port=provider.imap_port, security="starttls", username=USER,
                  password=PASSWORD, ca_file=str(provider.ca_file), maildir=tmp_path / "Maildir",
                  state_dir=home.state, scenario="smtp-test")
    out, err = io.StringIO(), io.StringIO()
    status = run(imap, home.config(provider), stdout=out, stderr=err, sleep=lambda s: None)
    assert status == 0, err.getvalue()
    assert len(list((tmp_path / "Maildir" / "INBOX" / "cur").iterdir())) + len(
        list((tmp_path / "Maildir" / "INBOX" / "new").iterdir())) == 3
    assert len(accepted(provider)) == 1 and home.left() == []
    assert "synced" in out.getvalue() and "sent 1 message(s)" in out.getvalue()
    imap_end = max(c.closed_at for c in provider.wire.select(protocol="imap"))
    assert min(c.opened_at for c in provider.wire.select(protocol="smtp")) >= imap_end  # one connection at a time


# -- pieces ----------------------------------------------------------------------------------


def test_outbox_parsing_problems_are_reported_and_kept(smtp_provider, home):
    provider = smtp_provider()
    home.queue("001-none.eml", b"From: alice@example.test\r\nTo: undisclosed-recipients:;\r\n\r\nx\r\n")
    home.queue("002-ok.eml", message(2))
    home.queue("notes.txt", b"not a message")
    result = home.send(provider)
    assert result.status == 1
    assert home.left() == ["001-none.eml", "notes.txt"]
    assert "001-none.eml not sent: it names no recipient" in result.err


def test_retry_after_reads_the_pauses_servers_name():
    assert retry_after("421 4.7.0 Try again in 2 seconds") == 2.0
    assert retry_after("451 please retry after 1 minute") == 60.0
    assert retry_after("Suggested Backoff Time: 500 milliseconds") == 0.5
    assert retry_after("451 4.7.1 Greylisted, please try again later") is None


def test_to_7bit_reencodes_only_what_needs_it():
    raw = crlf(b"From: a@x\nTo: b@y\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
               b"--B\nContent-Type: text/plain\n\nplain ascii\n--B\nContent-Type: text/plain; charset=latin-1\n\n"
               b"K\xf6ln\n--B\nContent-Type: application/octet-stream\n\n\x00\xff\n--B--\n")
    out = to_7bit(raw)
    assert not body_is_8bit(out)
    assert b"\r\n\r\nplain ascii\r\n--B" in out  # untouched
    parts = [p.get_payload(decode=True) for p in email.message_from_bytes(out).walk() if not p.is_multipart()]
    assert parts == [b"plain ascii", b"K\xf6ln", b"\x00\xff"]
    assert parse(Path("x.eml"), raw).data == raw
    long = crlf(b"Subject: long\n\n" + b"word " * 400 + b"\n")
    folded = to_7bit(long)
    assert max(len(line) for line in folded.split(b"\r\n")) <= 78
    assert email.message_from_bytes(folded).get_payload(decode=True) == b"word " * 400 + b"\r\n"
