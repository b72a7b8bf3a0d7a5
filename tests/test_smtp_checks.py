"""The SMTP checks, judged on real data: each passes a client that honours its rule and fails one
that breaks it.

Clients are real: the outbox clients of ``tests/clients/smtp_outbox.py`` (smtplib, one careful,
the others careless on purpose) and a few raw-socket ones, talking to the real SMTP fake. The
runs are driven here as the runner drives them (files into the outbox, a run, what is left),
so each check sees what it sees in a scenario. Tests are named ``test_<check>__pass_...`` and
``test_<check>__fail_...`` (tests/test_checks.py's meta test holds every check to that).
The last section runs the shipped smtp.* scenarios end to end.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fake_servers import FakeProvider
from fake_servers.smtp.config import SmtpConfig
from harness import checks
from harness.adapters.context import ClientContext
from harness.adapters.python import PythonAdapter
from harness.observation import Observation
from harness.outbox import OutboxItem, message_id
from harness.outcome import Outcome
from harness.runner import RunOptions, run_scenario
from harness.scenario import SCENARIO_DIR, catalog, load
from harness.verdicts import Verdict

from .clients import smtp_outbox
from .conftest import PASSWORD, USER
from .judging import judge

WAIT = 5.0
SCENARIO = "test.smtp"


# -- driving a client the way the runner does ------------------------------------------------------


def messages(*items: OutboxItem, sender: str = USER) -> dict[str, bytes]:
    """Outbox files for ``items``, named and numbered as the runner names them."""
    files, number = {}, 1
    for index, item in enumerate(items):
        for name, raw in item.messages(sender, seed=0, index=index, scenario=SCENARIO, first=number):
            files[name] = raw
        number += item.count
    return files


def one(**options) -> dict[str, bytes]:
    return messages(OutboxItem(generate=1, **options))


def observe(provider, tmp_path, *, security="starttls", outcomes=None, written=None, first_run=None, left=None,
            password=PASSWORD) -> Observation:
    for conn in provider.wire.select():
        assert conn.wait_closed(WAIT), f"connection #{conn.id} is still open"
    client = SimpleNamespace(smtp_security=security, imap_security="starttls")
    return Observation(
        scenario=SimpleNamespace(id=SCENARIO, client=client), wire=provider.wire,
        outcomes=outcomes or [Outcome(1, 0, False, 0.1, "", "")], maildir=tmp_path / "Maildir",
        outbox=tmp_path / "outbox", username=USER, password=password, secrets=(PASSWORD.encode(),),
        submissions=provider.submissions(), outbox_messages=dict(written or {}),
        outbox_run=dict(first_run or {}), outbox_after_run=list(left or []))


def drive(provider, tmp_path, client, files: dict[str, bytes], *, runs: int = 1, security: str = "starttls",
          password: str = PASSWORD, later: dict[int, dict[str, bytes]] | None = None) -> Observation:
    """Run ``client`` ``runs`` times on an outbox holding ``files`` (and ``later[run]`` before that run)."""
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    written, first_run, left, outcomes = {}, {}, [], []
    for run in range(1, runs + 1):
        if run > 1:
            provider.next_run()
        batch = files if run == 1 else (later or {}).get(run, {})
        for name, raw in batch.items():
            (outbox / name).write_bytes(raw)
            written[name], first_run[name] = raw, run
        port = provider.smtps_port if security == "tls" else provider.smtp_port
        ctx = ClientContext(scenario=SCENARIO, run=run, smtp_host=provider.host, smtp_port=port,
                            smtp_security=security, username=USER, password=password, email=USER,
                            ca_file=provider.ca_file, outbox=outbox, state_dir=tmp_path / "state")
        started, status, error = time.monotonic(), 0, None
        try:
            client(ctx)
        except Exception as exc:  # the client's own report of what it could not send
            status, error = 1, f"{type(exc).__name__}: {exc}"
        outcomes.append(Outcome(run, status, False, time.monotonic() - started, "", "", error=error))
        for conn in provider.wire.select():
            assert conn.wait_closed(WAIT), f"connection #{conn.id} is still open"
        left.append({p.name for p in outbox.iterdir() if p.is_file()})
    return observe(provider, tmp_path, security=security, outcomes=outcomes, written=written, first_run=first_run,
                   left=left, password=password)


@pytest.fixture
def smtp_provider(make_provider):
    """``smtp_provider(**SmtpConfig options, faults=[...])``: a started provider with alice's account."""
    def make(*, faults=(), cert="valid", **smtp) -> FakeProvider:
        return make_provider(smtp=SmtpConfig(**smtp), faults=list(faults), cert=cert)

    return make


def failing(result):
    assert result.passed is False, result.evidence
    assert result.evidence
    for e in result.evidence:
        assert e.rule and e.expected and e.observed
        assert PASSWORD not in e.wire and PASSWORD not in e.observed
    return result.evidence[0]


def passing(result):
    assert result.passed is True, [(e.expected, e.observed) for e in result.evidence]
    return result


def tls_context(provider) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(provider.ca_file))


def plain_blob(user: str = USER, password: str = PASSWORD) -> str:
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


# -- outbox_delivered --------------------------------------------------------------------------------


def test_outbox_delivered__pass_removed_only_after_250(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, messages(OutboxItem(generate=2)))
    assert obs.outbox_after_run == [set()]
    result = passing(judge("outbox_delivered", obs))
    assert "2 removed" in result.evidence[0].observed


def test_outbox_delivered__pass_kept_when_authentication_fails(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(), password="wrong password")
    assert obs.outcomes[0].exit_status == 1 and len(obs.outbox_after_run[0]) == 1
    passing(judge("outbox_delivered", obs))


def test_outbox_delivered__fail_deleted_after_authentication_failure(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.deletes_always, one(), password="wrong password")
    e = failing(judge("outbox_delivered", obs))
    assert "LOST" in e.observed and "never reached the end of DATA" in e.observed
    assert "001-generated.eml" in e.expected


def rewrites_message_id(ctx) -> None:
    """A client that gives each message a Message-ID of its own (the match falls back to Subject)."""
    with smtplib.SMTP(ctx.smtp_host, ctx.smtp_port, timeout=WAIT) as conn:
        conn.starttls(context=ssl.create_default_context(cafile=str(ctx.ca_file)))
        conn.ehlo()
        conn.login(ctx.username, ctx.password)
        for path in sorted(Path(ctx.outbox).glob("*.eml")):
            raw = path.read_bytes().replace(b"Message-ID: <", b"Message-ID: <rewritten.")
            conn.sendmail(ctx.username, ["bob@example.test"], raw)
            path.unlink()


def test_outbox_delivered__pass_client_rewrites_the_message_id(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, rewrites_message_id, messages(OutboxItem(generate=2)))
    assert all(b"<rewritten." in s.data for s in obs.submissions)
    passing(judge("outbox_delivered", obs))
    passing(judge("outbox_sent", obs))


def sends_something_else(ctx) -> None:
    """A client that sends a message of its own making and deletes the outbox file."""
    with smtplib.SMTP(ctx.smtp_host, ctx.smtp_port, timeout=WAIT) as conn:
        conn.starttls(context=ssl.create_default_context(cafile=str(ctx.ca_file)))
        conn.ehlo()
        conn.login(ctx.username, ctx.password)
        for path in sorted(Path(ctx.outbox).glob("*.eml")):
            conn.sendmail(ctx.username, ["bob@example.test"], b"Subject: other\r\nMessage-ID: <o@x>\r\n\r\nx\r\n")
            path.unlink()


def test_outbox_delivered__fail_another_message_sent_instead(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, sends_something_else, one())
    e = failing(judge("outbox_delivered", obs))
    assert "LOST" in e.observed and "1 submission(s) matched no outbox message" in e.observed


def test_outbox_delivered__fail_deleted_without_the_250(smtp_provider, tmp_path):
    reset = {"on": "response", "command": "END-OF-DATA", "times": 1, "action": "reset"}
    provider = smtp_provider(faults=[reset])
    obs = drive(provider, tmp_path, smtp_outbox.deletes_always, one())
    (sub,) = obs.submissions
    assert sub.accepted and not sub.reply_sent
    e = failing(judge("outbox_delivered", obs))
    assert "never reached the client" in e.observed
    assert "<message," in e.wire  # the excerpt shows the end of DATA, not the message
    passing(judge("outbox_delivered", obs, {"require_reply": False}))


def test_outbox_delivered__pass_careful_client_resends_after_a_lost_250(smtp_provider, tmp_path):
    reset = {"on": "response", "command": "END-OF-DATA", "times": 1, "action": "reset"}
    provider = smtp_provider(faults=[reset])
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(), runs=2)
    assert [len(s) for s in obs.outbox_after_run] == [1, 0]
    passing(judge("outbox_delivered", obs))
    passing(judge("outbox_sent", obs))
    # the lost reply costs a duplicate: counted at INFO, a failure where duplicates are judged
    info = judge("no_duplicate_submissions", obs, level="INFO")
    assert info.passed is None and "1 duplicate" in info.evidence[0].observed
    failing(judge("no_duplicate_submissions", obs))
    passing(judge("no_duplicate_submissions", obs, {"allow": 1}))


# -- outbox_sent -------------------------------------------------------------------------------------


def test_outbox_sent__pass_every_message_sent_and_removed(smtp_provider, tmp_path):
    provider = smtp_provider()
    later = {2: messages(OutboxItem(raw=CC_BCC, name="cc-bcc"))}
    obs = drive(provider, tmp_path, smtp_outbox.careful, messages(OutboxItem(generate=2)), runs=2, later=later)
    assert obs.outbox_run == {"001-generated.eml": 1, "002-generated.eml": 1, "001-cc-bcc.eml": 2}
    passing(judge("outbox_sent", obs))
    passing(judge("no_duplicate_submissions", obs))
    cc = next(s for s in obs.submissions if message_id(s.data) == "<cc-bcc@example.test>")
    assert set(cc.rcpt_tos) == {"bob@example.test", "carol@example.test", "dave@example.test"}


CC_BCC = (b"From: alice@example.test\r\nTo: bob@example.test\r\nCc: Carol <carol@example.test>\r\n"
          b"Bcc: dave@example.test\r\nSubject: Cc and Bcc\r\nMessage-ID: <cc-bcc@example.test>\r\n\r\nHi.\r\n")


def test_outbox_sent__fail_accepted_but_left_in_the_outbox(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.never_deletes, one())
    e = failing(judge("outbox_sent", obs))
    assert "still in the outbox" in e.observed
    passing(judge("outbox_delivered", obs))  # nothing lost, though


def test_outbox_sent__fail_never_submitted(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(), password="wrong password")
    e = failing(judge("outbox_sent", obs))
    assert "never submitted" in e.observed and "AUTH PLAIN ***" in e.wire


def test_outbox_sent__pass_only_the_messages_named(smtp_provider, tmp_path):
    provider = smtp_provider(smtputf8=False)
    files = messages(OutboxItem(generate=1, utf8_address=True, name="utf8"), OutboxItem(generate=1, name="plain"))
    obs = drive(provider, tmp_path, smtp_outbox.careful, files)
    passing(judge("outbox_sent", obs, {"messages": ["*-plain.eml"]}))
    failing(judge("outbox_sent", obs))
    assert checks.run("outbox_sent", obs, "MUST", {"messages": ["*-nothing.eml"]}).error


# -- no_partial_delivery ------------------------------------------------------------------------------


def test_no_partial_delivery__pass_rest_sent_after_452(smtp_provider, tmp_path):
    provider = smtp_provider(max_recipients=3)
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(recipients=5))
    assert [len(s.rcpt_tos) for s in obs.submissions] == [3, 2]
    passing(judge("no_partial_delivery", obs))
    passing(judge("no_duplicate_submissions", obs))
    passing(judge("outbox_sent", obs))


def test_no_partial_delivery__pass_message_kept_when_a_recipient_is_refused(smtp_provider, tmp_path):
    provider = smtp_provider(daily_recipients=3)
    obs = drive(provider, tmp_path, smtp_outbox.careful, messages(OutboxItem(generate=2, recipients=2)))
    assert [len(s.rcpt_tos) for s in obs.submissions] == [2]  # the second one was RSET, never sent
    passing(judge("no_partial_delivery", obs))
    passing(judge("outbox_delivered", obs))


def test_no_partial_delivery__fail_removed_after_some_recipients(smtp_provider, tmp_path):
    provider = smtp_provider(max_recipients=3)
    obs = drive(provider, tmp_path, smtp_outbox.deletes_partial, one(recipients=5))
    e = failing(judge("no_partial_delivery", obs))
    assert "3 of 5 recipients" in e.observed and "recipient-001-0004@example.net" in e.observed
    assert "3 of 5" in failing(judge("outbox_delivered", obs)).observed


def test_no_partial_delivery__fail_daily_recipient_quota(smtp_provider, tmp_path):
    provider = smtp_provider(daily_recipients=3)
    obs = drive(provider, tmp_path, smtp_outbox.deletes_partial, messages(OutboxItem(generate=2, recipients=2)))
    e = failing(judge("no_partial_delivery", obs))
    assert "1 of 2 recipients" in e.observed


# -- no_duplicate_submissions ----------------------------------------------------------------------


def test_no_duplicate_submissions__pass_two_runs(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, messages(OutboxItem(generate=2)), runs=2)
    passing(judge("no_duplicate_submissions", obs))
    assert len(obs.submissions) == 2


def test_no_duplicate_submissions__fail_resent_every_run(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.never_deletes, one(), runs=3)
    e = failing(judge("no_duplicate_submissions", obs))
    assert "accepted 3 times" in e.observed and "runs [1, 2, 3]" in e.observed
    failing(judge("no_duplicate_submissions", obs, {"allow": 1}))
    passing(judge("no_duplicate_submissions", obs, {"allow": 2}))


# -- size_respected ------------------------------------------------------------------------------------


def test_size_respected__pass_declares_size_and_takes_the_552(smtp_provider, tmp_path):
    provider = smtp_provider(size_limit=2000)
    obs = drive(provider, tmp_path, smtp_outbox.careful, messages(OutboxItem(generate=1, size=5000, name="big"),
                                                                   OutboxItem(generate=1, name="small")))
    mails = [c for _, c in provider.wire.commands("MAIL")]
    assert b"SIZE=5000" in mails[0].raw.upper()
    assert [len(s.data) < 2000 for s in obs.submissions] == [True]
    passing(judge("size_respected", obs))
    passing(judge("outbox_delivered", obs))
    passing(judge("outbox_sent", obs, {"messages": ["*-small.eml"]}))


def test_size_respected__fail_sends_past_the_limit(smtp_provider, tmp_path):
    provider = smtp_provider(size_limit=2000)
    obs = drive(provider, tmp_path, smtp_outbox.ignores_size, one(size=5000))
    e = failing(judge("size_respected", obs))
    assert "5,000-byte message" in e.observed and "SIZE 2000" in e.expected
    assert ">> C: <message, " in e.wire


# -- smtputf8_respected ------------------------------------------------------------------------------


def test_smtputf8_respected__pass_utf8_message_kept_without_smtputf8(smtp_provider, tmp_path):
    provider = smtp_provider(smtputf8=False)
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(utf8_address=True))
    assert obs.submissions == [] and obs.outbox_after_run == [{"001-generated.eml"}]
    passing(judge("smtputf8_respected", obs))


def test_smtputf8_respected__pass_smtputf8_used_when_offered(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(utf8_address=True))
    (sub,) = obs.submissions
    assert sub.smtputf8 and sub.accepted and "josé.müller@example.test" in sub.rcpt_tos
    passing(judge("smtputf8_respected", obs))
    passing(judge("outbox_sent", obs))


def test_smtputf8_respected__fail_utf8_address_without_smtputf8(smtp_provider, tmp_path):
    provider = smtp_provider(smtputf8=False)
    obs = drive(provider, tmp_path, smtp_outbox.ignores_extensions, one(utf8_address=True))
    e = failing(judge("smtputf8_respected", obs))
    assert "non-ASCII address" in e.observed and "SMTPUTF8 not advertised" in e.observed


def test_smtputf8_respected__fail_utf8_header_without_the_parameter(smtp_provider, tmp_path):
    provider = smtp_provider()
    utf8_from = (b"From: J\xc3\xbcrgen <alice@example.test>\r\nTo: bob@example.test\r\nSubject: x\r\n"
                 b"Message-ID: <utf8-header@example.test>\r\n\r\nHi.\r\n")
    with smtplib.SMTP(provider.host, provider.smtp_port, timeout=WAIT) as conn:
        conn.starttls(context=tls_context(provider))
        conn.ehlo()
        conn.login(USER, PASSWORD)
        conn.sendmail(USER, ["bob@example.test"], utf8_from, mail_options=["BODY=8BITMIME"])
    obs = observe(provider, tmp_path)
    e = failing(judge("smtputf8_respected", obs))
    assert "raw UTF-8 in its header" in e.observed and "no SMTPUTF8 parameter" in e.observed
    passing(judge("eightbit_respected", obs))  # 8BITMIME was offered: the body rule holds


# -- eightbit_respected --------------------------------------------------------------------------------


def test_eightbit_respected__pass_reencoded_as_quoted_printable(smtp_provider, tmp_path):
    provider = smtp_provider(eightbitmime=False, smtputf8=False)
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(eight_bit=True))
    (sub,) = obs.submissions
    assert sub.accepted and sub.data.isascii() and b"quoted-printable" in sub.data
    passing(judge("eightbit_respected", obs))
    passing(judge("outbox_sent", obs))  # matched by Message-ID although the client rewrote the body


def test_eightbit_respected__pass_8bit_with_8bitmime(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(eight_bit=True))
    assert obs.submissions[0].body == "8BITMIME" and not obs.submissions[0].data.isascii()
    passing(judge("eightbit_respected", obs))


def test_eightbit_respected__fail_8bit_body_without_8bitmime(smtp_provider, tmp_path):
    provider = smtp_provider(eightbitmime=False, smtputf8=False)
    obs = drive(provider, tmp_path, smtp_outbox.ignores_extensions, one(eight_bit=True))
    e = failing(judge("eightbit_respected", obs))
    assert "8-bit bytes (first on line" in e.observed and "8BITMIME" in e.observed


def test_eightbit_respected__fail_body_8bitmime_not_advertised(smtp_provider, tmp_path):
    provider = smtp_provider(eightbitmime=False)
    with smtplib.SMTP(provider.host, provider.smtp_port, timeout=WAIT) as conn:
        conn.starttls(context=tls_context(provider))
        conn.ehlo()
        conn.login(USER, PASSWORD)
        code, _ = conn.mail(USER, ["BODY=8BITMIME"])
        assert code == 555
        conn.rset()
    e = failing(judge("eightbit_respected", observe(provider, tmp_path)))
    assert "BODY=8BITMIME without 8BITMIME advertised" in e.observed


# -- retry_after_4xx ------------------------------------------------------------------------------------

RATE_LIMIT = {"on": "command", "command": "MAIL", "times": 1, "action": "bye", "code": "4.7.0",
              "text": "Rate limit exceeded; try again in 0.3 seconds"}


def test_retry_after_4xx__pass_waits_the_time_the_421_names(smtp_provider, tmp_path):
    provider = smtp_provider(faults=[RATE_LIMIT])
    obs = drive(provider, tmp_path, smtp_outbox.careful, one())
    assert len(obs.wire.select(protocol="smtp")) == 2
    result = passing(judge("retry_after_4xx", obs))
    assert "1 temporary reply" in result.evidence[0].observed
    passing(judge("outbox_sent", obs))


def test_retry_after_4xx__fail_reconnects_at_once_after_421(smtp_provider, tmp_path):
    provider = smtp_provider(faults=[RATE_LIMIT])
    obs = drive(provider, tmp_path, smtp_outbox.hammer, one())
    e = failing(judge("retry_after_4xx", obs))
    assert "at least 0.3 s" in e.expected and "421 4.7.0 Rate limit exceeded" in e.observed
    assert ">> S: 421 4.7.0" in e.wire


def test_retry_after_4xx__pass_greylisted_then_sent_next_run(smtp_provider, tmp_path):
    provider = smtp_provider(greylist=True)
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(), runs=2)
    assert [s.accepted for s in obs.submissions] == [False, True]
    assert obs.submissions[0].reply.startswith("451 4.7.1")
    passing(judge("retry_after_4xx", obs, {"max_attempts": 1}))
    passing(judge("outbox_sent", obs))


def test_retry_after_4xx__fail_greylisting_retry_loop(smtp_provider, tmp_path):
    provider = smtp_provider(greylist=True, greylist_delay=3600.0)
    obs = drive(provider, tmp_path, smtp_outbox.hammer, one())
    assert len(obs.submissions) == 9
    e = failing(judge("retry_after_4xx", obs, {"max_attempts": 3}))
    assert "9 attempts in run 1" in e.observed
    e = failing(judge("retry_after_4xx", obs, {"min_wait": 1.0, "max_attempts": 20}))
    assert "the next attempt of that message" in e.observed


def test_retry_after_4xx__fail_auth_again_at_once_after_454(smtp_provider, tmp_path):
    too_many = {"on": "command", "command": "AUTH", "action": "reply", "status": "454", "code": "4.7.0",
                "text": "Too many login attempts, please try again in 1 seconds."}
    provider = smtp_provider(faults=[too_many])
    with smtplib.SMTP(provider.host, provider.smtp_port, timeout=WAIT) as conn:
        conn.starttls(context=tls_context(provider))
        conn.ehlo()
        for _ in range(2):
            assert conn.docmd("AUTH", "PLAIN " + plain_blob())[0] == 454
    obs = observe(provider, tmp_path)
    e = failing(judge("retry_after_4xx", obs))
    assert "'AUTH PLAIN ***' on the same connection" in e.observed
    assert PASSWORD not in e.wire


# -- stops_after_quota ---------------------------------------------------------------------------------


def test_stops_after_quota__pass_stops_at_the_550(smtp_provider, tmp_path):
    provider = smtp_provider(daily_messages=1)
    obs = drive(provider, tmp_path, smtp_outbox.careful, messages(OutboxItem(generate=3)))
    assert [s.accepted for s in obs.submissions] == [True, False]
    assert "5.4.5" in obs.submissions[1].reply
    passing(judge("stops_after_quota", obs))
    passing(judge("outbox_delivered", obs))


def test_stops_after_quota__fail_tries_the_rest_of_the_outbox(smtp_provider, tmp_path):
    provider = smtp_provider(daily_messages=1)
    obs = drive(provider, tmp_path, smtp_outbox.hammer, messages(OutboxItem(generate=3)))
    e = failing(judge("stops_after_quota", obs))
    assert "more transaction(s) in run 1" in e.observed and "550 5.4.5" in e.expected
    passing(judge("stops_after_quota", obs, {"max_more": 1}))


# -- the wire checks, on SMTP ---------------------------------------------------------------------------


def test_no_credentials_before_tls__pass_smtp_auth_over_starttls(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, one())
    passing(judge("no_credentials_before_tls", obs))
    passing(judge("no_mail_data_before_tls", obs))


def test_no_credentials_before_tls__fail_smtp_auth_plain_initial_response(smtp_provider, tmp_path):
    provider = smtp_provider(starttls=False, auth_before_tls=True)
    obs = drive(provider, tmp_path, smtp_outbox.insecure, one())
    e = failing(judge("no_credentials_before_tls", obs))
    assert "'AUTH PLAIN ***' sent in plaintext" in e.observed
    assert plain_blob() not in e.wire and plain_blob() not in e.observed


def test_no_credentials_before_tls__fail_smtp_auth_login_continuations(smtp_provider, tmp_path):
    provider = smtp_provider(starttls=False, auth_before_tls=True, auth_mechanisms=("LOGIN",))
    with smtplib.SMTP(provider.host, provider.smtp_port, timeout=WAIT) as conn:
        conn.ehlo()
        conn.user, conn.password = USER, PASSWORD
        conn.auth("LOGIN", conn.auth_login, initial_response_ok=False)
    obs = observe(provider, tmp_path)
    result = judge("no_credentials_before_tls", obs)
    failing(result)
    observed = " ".join(e.observed for e in result.evidence)
    assert "***" in observed
    password_b64 = base64.b64encode(PASSWORD.encode()).decode()
    assert all(password_b64 not in e.wire for e in result.evidence)


def test_no_mail_data_before_tls__fail_smtp_message_in_plaintext(smtp_provider, tmp_path):
    provider = smtp_provider(starttls=False, auth_before_tls=True)
    obs = drive(provider, tmp_path, smtp_outbox.insecure, one())
    e = failing(judge("no_mail_data_before_tls", obs))
    assert "message content sent in plaintext" in e.observed and "starttls" in e.expected
    # configured for plaintext, the same wire is not judged
    obs.scenario.client.smtp_security = "none"
    passing(judge("no_mail_data_before_tls", obs))


def test_aborts_without_credentials__pass_smtp_bad_certificate(smtp_provider, tmp_path):
    provider = smtp_provider(cert="expired")
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(), security="tls")
    assert obs.outcomes[0].exit_status == 1 and obs.submissions == []
    passing(judge("aborts_without_credentials", obs))
    passing(judge("outbox_delivered", obs))


def test_aborts_without_credentials__fail_smtp_certificate_ignored(smtp_provider, tmp_path):
    provider = smtp_provider(cert="expired")
    obs = drive(provider, tmp_path, smtp_outbox.insecure, one(), security="starttls")
    e = failing(judge("aborts_without_credentials", obs))
    assert "'AUTH PLAIN ***' sent over TLS" in e.observed


def test_max_login_attempts__pass_smtp_gives_up_after_535(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, one(), password="wrong password")
    passing(judge("max_login_attempts", obs, {"n": 0, "codes": ["535"]}))


def test_max_login_attempts__fail_smtp_auth_loop(smtp_provider, tmp_path):
    provider = smtp_provider()
    with smtplib.SMTP(provider.host, provider.smtp_port, timeout=WAIT) as conn:
        conn.starttls(context=tls_context(provider))
        conn.ehlo()
        for _ in range(4):
            assert conn.docmd("AUTH", "PLAIN " + plain_blob(password="wrong password"))[0] == 535
    e = failing(judge("max_login_attempts", observe(provider, tmp_path), {"n": 1, "codes": ["535"]}))
    assert "3 more attempts" in e.observed


# -- injected_lines_ignored, on SMTP ----------------------------------------------------------------------

INJECTED = ["250-injected.example.test", "250-AUTH LOGIN", "250 SMTPUTF8"]


class RawSmtp:
    """A byte-level SMTP client that can keep (or drop) plaintext read behind the STARTTLS 220."""

    def __init__(self, provider) -> None:
        self.provider = provider
        self.sock = socket.create_connection((provider.host, provider.smtp_port), timeout=WAIT)
        self.buffer = b""
        self.reply()

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(self.buffer)
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> list[bytes]:
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def command(self, text: str) -> list[bytes]:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def starttls(self, *, keep_injected: bool, injected_lines: int = len(INJECTED)) -> None:
        assert self.command("STARTTLS")[0].startswith(b"220")
        injected = b"".join(self.line() + b"\r\n" for _ in range(injected_lines))  # wait for them all
        self.sock = tls_context(self.provider).wrap_socket(self.sock, server_hostname="localhost")
        self.buffer = injected if keep_injected else b""

    def close(self) -> None:
        self.command("QUIT")
        self.sock.close()


def test_injected_lines_ignored__pass_smtp_buffer_dropped_at_starttls(smtp_provider, tmp_path):
    inject = {"on": "response", "command": "STARTTLS", "action": "untagged", "when": "after", "lines": INJECTED}
    provider = smtp_provider(faults=[inject], auth_mechanisms=("PLAIN",))
    client = RawSmtp(provider)
    client.command("EHLO client.example.test")
    client.starttls(keep_injected=False)
    ehlo = client.command("EHLO client.example.test")
    assert b"250-AUTH PLAIN" in ehlo
    assert client.command("AUTH PLAIN " + plain_blob())[0].startswith(b"235")
    client.close()
    result = passing(judge("injected_lines_ignored", observe(provider, tmp_path)))
    assert "3 injected plaintext lines" in result.evidence[0].observed


def test_injected_lines_ignored__fail_smtp_injected_ehlo_reply_used(smtp_provider, tmp_path):
    inject = {"on": "response", "command": "STARTTLS", "action": "untagged", "when": "after", "lines": INJECTED}
    provider = smtp_provider(faults=[inject], auth_mechanisms=("PLAIN",))
    client = RawSmtp(provider)
    client.command("EHLO client.example.test")
    client.starttls(keep_injected=True)
    ehlo = client.command("EHLO client.example.test")  # the injected lines answer it
    assert ehlo[-1] == b"250 SMTPUTF8" and b"250-AUTH LOGIN" in ehlo
    client.reply()  # the genuine EHLO reply, now out of step
    assert client.command("AUTH LOGIN")[0].startswith(b"504")
    client.close()
    e = failing(judge("injected_lines_ignored", observe(provider, tmp_path)))
    assert "'AUTH LOGIN'" in e.observed and "AUTH LOGIN, which only the injected" in e.observed


def test_ehlo_after_starttls__pass_smtplib_asks_again(smtp_provider, tmp_path):
    provider = smtp_provider()
    obs = drive(provider, tmp_path, smtp_outbox.careful, one())
    result = passing(judge("ehlo_after_starttls", obs))
    assert "1 STARTTLS connection(s)" in result.evidence[0].observed


def test_ehlo_after_starttls__fail_auth_on_what_the_plaintext_ehlo_said(smtp_provider, tmp_path):
    provider = smtp_provider(auth_mechanisms=("PLAIN",))
    client = RawSmtp(provider)
    client.command("EHLO client.example.test")
    client.starttls(keep_injected=False, injected_lines=0)
    assert client.command("AUTH PLAIN " + plain_blob())[0].startswith(b"503")  # the fake wants EHLO first
    client.close()
    e = failing(judge("ehlo_after_starttls", observe(provider, tmp_path)))
    assert "'AUTH PLAIN ***' was the first command over TLS" in e.observed
    assert plain_blob() not in e.wire


def test_ehlo_after_starttls__pass_without_starttls(smtp_provider, tmp_path):
    provider = smtp_provider(starttls=False, auth_before_tls=True)
    with smtplib.SMTP(provider.host, provider.smtp_port, timeout=WAIT) as conn:
        conn.ehlo()
        conn.noop()
    result = passing(judge("ehlo_after_starttls", observe(provider, tmp_path)))
    assert "0 STARTTLS connection(s)" in result.evidence[0].observed


# -- the runner: outbox files, SMTP endpoints --------------------------------------------------------------


def _scenario(tmp_path, text: str):
    path = tmp_path / "scenario.toml"
    path.write_text('id = "test.smtp.case"\ntitle = "t"\nlevel = "MUST"\nrequirement = "r"\nsource = "s"\n'
                    'needs = ["smtp"]\ndeadline = 20\n' + text, encoding="utf-8")
    return load(path)


SEEN: list = []


def record_context(ctx) -> None:
    """A python client that only notes what it was given, and what the outbox held."""
    SEEN.append((ctx, sorted(p.name for p in Path(ctx.outbox).iterdir())))


def test_runner_writes_the_outbox_before_each_run_and_points_at_smtp(tmp_path):
    scenario = _scenario(tmp_path, 'runs = 2\n[client]\nsmtp_security = "tls"\n'
                                   '[[outbox]]\ngenerate = 2\n[[outbox]]\nrun = 2\nname = "Late One"\n'
                                   'raw = "To: bob@example.test\\r\\nMessage-ID: <late@x>\\r\\n\\r\\nx\\r\\n"\n'
                                   '[[checks]]\ncheck = "outbox_delivered"\n')
    SEEN.clear()
    adapter = PythonAdapter("tests.test_smtp_checks:record_context", features="smtp")
    result = run_scenario(scenario, adapter, RunOptions(seed=5, workdir=tmp_path / "work"))
    assert result.verdict is Verdict.PASS, result.reason
    (ctx1, files1), (ctx2, files2) = SEEN
    assert files1 == ["001-generated.eml", "002-generated.eml"]
    assert files2 == ["001-generated.eml", "002-generated.eml", "003-late-one.eml"]
    assert ctx1.imap_host is None and ctx1.imap_port is None  # a submission-only scenario
    assert ctx1.smtp_security == "tls" and ctx1.smtp_port and ctx1.smtp_host == "127.0.0.1"
    assert "MAILCONFORM_SMTP_PORT" in ctx1.environ() and "MAILCONFORM_IMAP_HOST" not in ctx1.environ()
    raw = (Path(ctx1.outbox) / "001-generated.eml").read_bytes()
    assert raw.startswith(b"From: alice@example.test\r\n") and message_id(raw)
    # deterministic from the seed, different for another seed
    assert scenario.outbox_files(USER, 5) == scenario.outbox_files(USER, 5)
    assert scenario.outbox_files(USER, 5)[0][2] != scenario.outbox_files(USER, 6)[0][2]


def test_runner_records_what_is_left_and_redacts(tmp_path):
    scenario = _scenario(tmp_path, '[client]\npassword = "wrong password"\n[[outbox]]\ngenerate = 1\n'
                                   '[[checks]]\ncheck = "outbox_delivered"\n[[checks]]\ncheck = "outbox_sent"\n')
    adapter = PythonAdapter("tests.clients.smtp_outbox:deletes_always", features="smtp")
    result = run_scenario(scenario, adapter, RunOptions(workdir=tmp_path / "work"))
    assert result.verdict is Verdict.FAIL
    delivered = next(c for c in result.checks if c.check == "outbox_delivered")
    assert "LOST" in delivered.evidence[0].observed
    assert "wrong password" not in result.transcript and "AUTH PLAIN ***" in result.transcript


# -- the shipped scenarios, end to end ----------------------------------------------------------------------

SMTP_SCENARIOS = catalog(SCENARIO_DIR, ["smtp.*"])

CAREFUL_UNSENT = {  # what the careful client leaves NON-STRICT: it does not do what these ask
}


@pytest.mark.parametrize("scenario", SMTP_SCENARIOS, ids=lambda s: s.id)
def test_careful_client_passes_the_smtp_scenario(scenario, tmp_path):
    adapter = PythonAdapter("tests.clients.smtp_outbox:careful", features="smtp")
    result = run_scenario(scenario, adapter, RunOptions(workdir=tmp_path))
    expected = CAREFUL_UNSENT.get(scenario.id, "INFO" if scenario.level == "INFO" else "PASS")
    assert result.verdict.value == expected, (result.reason, [(c.check, c.passed, c.error) for c in result.checks])


CARELESS = [
    ("smtp.tls.no-starttls", "insecure", "FAIL", "aborts_without_credentials"),
    ("smtp.tls.cert-expired", "insecure", "FAIL", "aborts_without_credentials"),
    ("smtp.tls.cert-untrusted-starttls", "insecure", "FAIL", "aborts_without_credentials"),
    ("smtp.auth.invalid", "deletes_always", "FAIL", "outbox_delivered"),
    ("smtp.limit.recipients-per-message", "deletes_partial", "FAIL", "no_partial_delivery"),
    ("smtp.limit.recipients-per-day", "deletes_partial", "FAIL", "no_partial_delivery"),
    ("smtp.limit.message-too-large", "ignores_size", "FAIL", "size_respected"),
    ("smtp.limit.daily-quota", "hammer", "NON-STRICT", "stops_after_quota"),
    ("smtp.limit.rate-limited", "hammer", "FAIL", "retry_after_4xx"),
    ("smtp.greylisting", "deletes_always", "FAIL", "outbox_delivered"),
    ("smtp.net.disconnect-after-data", "deletes_always", "FAIL", "outbox_delivered"),
    ("smtp.ext.no-smtputf8", "ignores_extensions", "FAIL", "smtputf8_respected"),
    ("smtp.ext.no-8bitmime", "ignores_extensions", "FAIL", "eightbit_respected"),
    ("smtp.submit.basic", "never_deletes", "FAIL", "outbox_sent"),
]


@pytest.mark.parametrize("sid, client, verdict, check", CARELESS, ids=[c[0] + "-" + c[1] for c in CARELESS])
def test_careless_clients_fail_what_they_violate(sid, client, verdict, check, tmp_path):
    (scenario,) = catalog(SCENARIO_DIR, [sid])
    adapter = PythonAdapter(f"tests.clients.smtp_outbox:{client}", features="smtp")
    result = run_scenario(scenario, adapter, RunOptions(workdir=tmp_path))
    assert result.verdict.value == verdict, result.reason
    failed = [c.check for c in result.checks if c.passed is False]
    assert check in failed, (failed, result.reason)
