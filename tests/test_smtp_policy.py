"""The SMTP submission policy and session without sockets: each provider limit is one call.

The policy answers None (go ahead) or the reply line a provider gives; the session keeps the
command sequence. Nothing here opens a socket, so every rule is checked byte by byte.
"""

from __future__ import annotations

import base64

import pytest

from fake_servers.mailstore import AuthResult, MailStore
from fake_servers.smtp import Counters, SmtpConfig, SmtpTexts, SubmissionPolicy
from fake_servers.smtp.config import reply_error
from fake_servers.smtp.session import Close, Reply, SmtpSession, StartTLS, describe_command, reply_lines, split_code

ALL = {"SIZE", "8BITMIME", "SMTPUTF8", "AUTH", "PIPELINING", "ENHANCEDSTATUSCODES"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(**options) -> SubmissionPolicy:
    return SubmissionPolicy(SmtpConfig(**options), Counters())


# -- AUTH -----------------------------------------------------------------------------------


def test_auth_results_map_to_the_texts():
    p = policy()
    assert p.auth(AuthResult.OK, 0) == ("235 2.7.0 Accepted", False)
    assert p.auth(AuthResult.INVALID, 0) == ("535 5.7.8 Username and Password not accepted", False)
    assert p.auth(AuthResult.APP_PASSWORD_REQUIRED, 0) == ("534 5.7.9 Application-specific password required", False)


def test_the_nth_failure_is_too_many_attempts_and_closes():
    p = policy(max_auth_failures=3)
    assert p.auth(AuthResult.INVALID, 0)[1] is False
    assert p.auth(AuthResult.INVALID, 1)[1] is False
    assert p.auth(AuthResult.INVALID, 2) == ("454 4.7.0 Too many login attempts, please try again later.", True)
    assert p.auth(AuthResult.OK, 5) == ("235 2.7.0 Accepted", False)  # success is never refused


# -- MAIL -----------------------------------------------------------------------------------


def test_mail_needs_authentication_when_required():
    assert policy().mail("a@x.test", [], advertised=ALL, authenticated=False)[0] == "530 5.7.0 Authentication required"
    assert policy(require_auth=False).mail("a@x.test", [], advertised=ALL, authenticated=False)[0] is None


def test_mail_parameters_are_parsed():
    refusal, params = policy().mail("a@x.test", ["SIZE=1000", "BODY=8BITMIME", "SMTPUTF8", "AUTH=<>"],
                                    advertised=ALL, authenticated=True)
    assert refusal is None
    assert (params.size, params.body, params.smtputf8) == (1000, "8BITMIME", True)


@pytest.mark.parametrize(("words", "advertised", "reply"), [
    (["BODY=8BITMIME"], ALL - {"8BITMIME"}, "555 5.5.4 Unsupported option: BODY=8BITMIME"),
    (["SMTPUTF8"], ALL - {"SMTPUTF8"}, "555 5.5.4 Unsupported option: SMTPUTF8"),
    (["SIZE=10"], ALL - {"SIZE"}, "555 5.5.4 Unsupported option: SIZE"),
    (["RET=HDRS"], ALL, "555 5.5.4 Unsupported option: RET"),
    (["BODY=BINARYMIME"], ALL, "555 5.5.4 Unsupported option: BODY=BINARYMIME"),
    (["SIZE=ten"], ALL, "501 5.5.4 Bad SIZE value"),
    (["SMTPUTF8=yes"], ALL, "501 5.5.4 SMTPUTF8 takes no value"),
    (["=x"], ALL, "501 5.5.4 Syntax error in MAIL parameters"),
])
def test_mail_parameters_the_server_did_not_advertise_are_refused(words, advertised, reply):
    assert policy().mail("a@x.test", words, advertised=advertised, authenticated=True)[0] == reply


def test_declared_size_over_the_limit_is_refused_at_mail():
    p = policy(size_limit=1000)
    assert p.mail("a@x.test", ["SIZE=1000"], advertised=ALL, authenticated=True)[0] is None
    assert p.mail("a@x.test", ["SIZE=1001"], advertised=ALL, authenticated=True)[0] == (
        "552 5.3.4 Message size exceeds fixed limit")


def test_a_utf8_sender_needs_smtputf8():
    p = policy()
    assert p.mail("jürgen@x.test", [], advertised=ALL, authenticated=True)[0] == (
        "553 5.6.7 SMTPUTF8 is required for this address")
    assert p.mail("jürgen@x.test", ["SMTPUTF8"], advertised=ALL, authenticated=True)[0] is None
    assert p.mail("jürgen@x.test", ["SMTPUTF8"], advertised=ALL - {"SMTPUTF8"}, authenticated=True)[0] == (
        "555 5.5.4 Unsupported option: SMTPUTF8")


# -- RCPT -----------------------------------------------------------------------------------


def test_recipients_per_message_cap():
    p = policy(max_recipients=2)
    assert p.rcpt("b@x.test", [], account="a", smtputf8=False, accepted=1) is None
    assert p.rcpt("c@x.test", [], account="a", smtputf8=False, accepted=2) == (
        "452 4.5.3 Your message has too many recipients")


def test_daily_recipient_quota_counts_committed_messages():
    p = policy(daily_recipients=3)
    p.commit("a", ("b@x.test", "c@x.test"))
    assert p.rcpt("d@x.test", [], account="a", smtputf8=False, accepted=0) is None
    assert p.rcpt("e@x.test", [], account="a", smtputf8=False, accepted=1) == "550 5.4.5 Daily recipient quota exceeded."
    assert p.rcpt("e@x.test", [], account="other", smtputf8=False, accepted=1) is None


def test_utf8_recipient_needs_smtputf8_and_rcpt_parameters_are_refused():
    p = policy()
    assert p.rcpt("bö@x.test", [], account="a", smtputf8=False, accepted=0) == (
        "553 5.6.7 SMTPUTF8 is required for this address")
    assert p.rcpt("bö@x.test", [], account="a", smtputf8=True, accepted=0) is None
    assert p.rcpt("b@x.test", ["NOTIFY=NEVER"], account="a", smtputf8=False, accepted=0) == (
        "555 5.5.4 Unsupported option: NOTIFY")


# -- end of DATA ----------------------------------------------------------------------------


def test_size_is_enforced_on_the_message():
    p = policy(size_limit=100)
    args = dict(account="a", user="a", sender="a@x.test", recipients=("b@x.test",))
    assert p.message(size=100, **args) is None
    assert p.message(size=101, **args) == "552 5.3.4 Message size exceeds fixed limit"
    assert p.message(size=5, oversize=True, **args) == "552 5.3.4 Message size exceeds fixed limit"


def test_daily_message_quota():
    p = policy(daily_messages=2)
    args = dict(account="a", user="a", sender="a@x.test", recipients=("b@x.test",), size=10)
    for _ in range(2):
        assert p.message(**args) is None
        p.commit("a", ("b@x.test",))
    assert p.message(**args) == "550 5.4.5 Daily user sending quota exceeded."


def test_greylisting_refuses_a_new_triplet_once_then_after_the_delay_accepts():
    clock = Clock()
    p = SubmissionPolicy(SmtpConfig(greylist=True, greylist_delay=60), Counters(), clock=clock)
    args = dict(account="a", user="a", sender="a@x.test", size=10)
    assert p.message(recipients=("b@x.test",), **args) == "451 4.7.1 Greylisted, please try again later"
    clock.now += 30
    assert p.message(recipients=("b@x.test",), **args) == "451 4.7.1 Greylisted, please try again later"
    clock.now += 31
    assert p.message(recipients=("b@x.test",), **args) is None
    # a message with one known and one new recipient waits for the new one
    assert p.message(recipients=("b@x.test", "c@x.test"), **args) == "451 4.7.1 Greylisted, please try again later"


def test_counters_are_shared_between_policies_of_one_provider():
    counters = Counters()
    plain = SubmissionPolicy(SmtpConfig(daily_messages=1), counters)
    implicit = SubmissionPolicy(SmtpConfig(daily_messages=1, starttls=False), counters)
    plain.commit("a", ("b@x.test",))
    assert implicit.message(account="a", user="a", sender="a@x.test", recipients=("b@x.test",), size=1) == (
        "550 5.4.5 Daily user sending quota exceeded.")


# -- config and texts -----------------------------------------------------------------------


def test_extensions_per_tls_state():
    config = SmtpConfig()
    assert config.extensions(tls=False) == ["SIZE 20971520", "8BITMIME", "STARTTLS", "ENHANCEDSTATUSCODES",
                                            "PIPELINING", "SMTPUTF8"]
    assert config.extensions(tls=True) == ["SIZE 20971520", "8BITMIME", "AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES",
                                           "PIPELINING", "SMTPUTF8"]
    bare = SmtpConfig(size_limit=0, smtputf8=False, eightbitmime=False, enhanced_status_codes=False,
                      auth_before_tls=True, starttls=False)
    assert bare.extensions(tls=False) == ["AUTH PLAIN LOGIN", "PIPELINING"]
    exact = SmtpConfig(ehlo_tls=("AUTH XOAUTH2",), ehlo_remove=("PIPELINING",))
    assert exact.extensions(tls=True) == ["AUTH XOAUTH2"]


def test_extension_changes_undo_each_other():
    config = SmtpConfig()
    config.change_extensions(remove=["SMTPUTF8"])
    assert "SMTPUTF8" not in config.extensions(tls=True)
    config.change_extensions(add=["SMTPUTF8", "DSN"])
    assert config.extensions(tls=True)[-2:] == ["SMTPUTF8", "DSN"]


def test_configs_are_checked():
    with pytest.raises(ValueError, match="mechanism"):
        SmtpConfig(auth_mechanisms=("CRAM-MD5",))
    with pytest.raises(ValueError, match="delivery target"):
        SmtpConfig(deliver_to=("outbox",))
    with pytest.raises(ValueError, match="texts.auth_failed"):
        SmtpConfig(texts=SmtpTexts(auth_failed="Username and Password not accepted"))
    assert reply_error("535-5.7.8 first\n535 5.7.8 second") is None
    assert reply_error("535-5.7.8 first\n534 5.7.8 second") is not None


def test_multi_line_texts_become_continuation_lines():
    assert reply_lines("535 5.7.8 one\n535 5.7.8 two\n535 5.7.8 three") == [
        "535-5.7.8 one", "535-5.7.8 two", "535 5.7.8 three"]
    assert reply_lines("220 {hostname} ready", hostname="h.test") == ["220 h.test ready"]
    assert split_code("535-5.7.8 one") == ("535", "5.7.8")
    assert split_code("250 OK") == ("250", None)


# -- the session ----------------------------------------------------------------------------


def session(tls: bool = False, **options) -> tuple[SmtpSession, list]:
    store = MailStore()
    store.add_account("alice@example.test", "pw", app_passwords=("app-pw",))
    store.add_account("jürgen@example.test", "pässwort")
    config = SmtpConfig(**options)
    submitted: list = []

    def on_submission(submission) -> int:
        submitted.append(submission._asdict())
        return len(submitted) - 1

    return SmtpSession(store, config, SubmissionPolicy(config), tls=tls, on_submission=on_submission), submitted


def lines(outputs: list) -> list[str]:
    return [line for out in outputs if isinstance(out, Reply) for line in out.lines]


def plain(user: str, password: str) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


def test_ehlo_lists_extensions_by_tls_state():
    s, _ = session()
    assert lines(s.command(b"EHLO client.test")) == [
        "250-smtp.example.test", "250-SIZE 20971520", "250-8BITMIME", "250-STARTTLS", "250-ENHANCEDSTATUSCODES",
        "250-PIPELINING", "250 SMTPUTF8"]
    out = s.command(b"STARTTLS")
    assert lines(out) == ["220 2.0.0 Ready to start TLS"] and isinstance(out[-1], StartTLS)
    s.tls_started()
    assert lines(s.command(b"MAIL FROM:<a@x.test>")) == ["503 5.5.1 Error: send HELO/EHLO first"]
    assert "250-AUTH PLAIN LOGIN" in lines(s.command(b"EHLO client.test"))


def test_auth_before_tls_is_refused_with_538():
    s, _ = session()
    s.command(b"EHLO c")
    assert lines(s.command(b"AUTH PLAIN " + plain("alice@example.test", "pw"))) == [
        "538 5.7.11 Encryption required for requested authentication mechanism"]
    assert s.username is None


def test_auth_plain_login_and_app_passwords():
    s, _ = session(tls=True, auth_mechanisms=("PLAIN", "LOGIN"))
    s.command(b"EHLO c")
    assert lines(s.command(b"AUTH LOGIN")) == ["334 VXNlcm5hbWU6"] and s.wants == "line"
    assert lines(s.line(base64.b64encode(b"alice@example.test"))) == ["334 UGFzc3dvcmQ6"]
    assert lines(s.line(base64.b64encode(b"app-pw"))) == ["235 2.7.0 Accepted"]
    assert s.state == "authenticated"
    assert lines(s.command(b"AUTH PLAIN " + plain("alice@example.test", "pw")))[0].startswith("503")


def test_utf8_usernames_are_compared_exactly():
    s, _ = session(tls=True)
    s.command(b"EHLO c")
    assert lines(s.command(b"AUTH PLAIN " + base64.b64encode("\0jurgen@example.test\0pässwort".encode())))[0] == (
        "535 5.7.8 Username and Password not accepted")
    assert lines(s.command(b"AUTH PLAIN " + plain("jürgen@example.test", "pässwort"))) == ["235 2.7.0 Accepted"]


def test_xoauth2_failure_is_an_error_challenge_then_535():
    s, _ = session(tls=True, auth_mechanisms=("XOAUTH2",))
    s.command(b"EHLO c")
    bad = base64.b64encode(b"user=alice@example.test\x01auth=Bearer nope\x01\x01")
    challenge = lines(s.command(b"AUTH XOAUTH2 " + bad))
    assert challenge[0].startswith("334 ") and b'"status":"401"' in base64.b64decode(challenge[0][4:])
    assert lines(s.line(b"")) == ["535 5.7.8 Username and Password not accepted"]


def test_xoauth2_refuses_an_expired_issued_token_as_gmail_and_notes_why():
    s, _ = session(tls=True, auth_mechanisms=("XOAUTH2",))
    s.store.account("alice@example.test").register_token("issued", uses=0)  # already used up
    s.command(b"EHLO c")
    out = s.command(b"AUTH XOAUTH2 " + base64.b64encode(b"user=alice@example.test\x01auth=Bearer issued\x01\x01"))
    assert out[0].kind == "continuation" and base64.b64decode(lines(out)[0][4:]) == (
        b'{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}')
    assert s.notes == ["XOAUTH2 for alice@example.test: the access token has expired"] and s.wants == "line"
    assert lines(s.line(b"")) == ["535 5.7.8 Username and Password not accepted"] and s.username is None


def test_a_utf8_address_without_smtputf8_is_a_recorded_command_answered_553():
    s, _ = session(tls=True)
    s.command(b"EHLO c")
    s.command(b"AUTH PLAIN " + plain("alice@example.test", "pw"))
    assert lines(s.command("MAIL FROM:<jürgen@example.test>".encode())) == [
        "553 5.6.7 SMTPUTF8 is required for this address"]


def test_a_transaction_end_to_end_delivers_into_sent(tmp_path):
    s, submitted = session(tls=True, deliver_to=("sent", "inbox"))
    s.command(b"EHLO c")
    s.command(b"AUTH PLAIN " + plain("alice@example.test", "pw"))
    assert lines(s.command(b"MAIL FROM:<alice@example.test> SIZE=20")) == ["250 2.1.0 OK"]
    assert lines(s.command("RCPT TO:<jürgen@example.test>".encode())) == ["553 5.6.7 SMTPUTF8 is required for this address"]
    assert lines(s.command(b"RCPT TO:<alice@example.test>")) == ["250 2.1.5 OK"]
    assert lines(s.command(b"DATA")) == ["354 End data with <CR><LF>.<CR><LF>"] and s.wants == "data"
    out = s.message(b"Subject: x\r\n\r\nhi\r\n", size=17)
    assert lines(out) == ["250 2.0.0 OK"] and out[0].submission == 0
    (sub,) = submitted
    assert sub["accepted"] and sub["rcpt_tos"] == ("alice@example.test",)
    assert sub["refused_rcpts"] == ("jürgen@example.test",)
    assert sub["rcpt_replies"] == ("553 5.6.7 SMTPUTF8 is required for this address",)
    account = s.store.account("alice@example.test")
    assert [m.raw for m in account.folder("Sent").messages] == [b"Subject: x\r\n\r\nhi\r\n"]
    assert [m.raw for m in account.folder("INBOX").messages] == [b"Subject: x\r\n\r\nhi\r\n"]


def test_a_421_text_closes_the_session():
    s, _ = session(tls=True, max_auth_failures=1, texts=SmtpTexts(too_many_attempts="421 4.7.0 Go away"))
    s.command(b"EHLO c")
    out = s.command(b"AUTH PLAIN " + plain("alice@example.test", "wrong"))
    assert lines(out) == ["421 4.7.0 Go away"] and isinstance(out[-1], Close)


def test_too_many_errors_end_the_session():
    s, _ = session()
    for _ in range(19):
        assert not isinstance(s.command(b"XYZZY")[-1], Close)
    out = s.command(b"XYZZY")
    assert lines(out)[0].startswith("421 4.7.0") and isinstance(out[-1], Close)


def test_enhanced_codes_are_stripped_when_not_advertised():
    s, _ = session(enhanced_status_codes=False)
    assert lines(s.command(b"NOOP")) == ["250 OK"]
    assert "ENHANCEDSTATUSCODES" not in " ".join(lines(s.command(b"EHLO c")))


def test_redaction_of_auth_lines():
    assert describe_command("AUTH", b"AUTH PLAIN AGFAYg==\r\n") == ("AUTH PLAIN ***", True)
    assert describe_command("AUTH", b"AUTH LOGIN\r\n") == ("AUTH LOGIN", False)
    assert describe_command("MAIL", b"MAIL FROM:<a@x>\r\n") == ("MAIL FROM:<a@x>", False)
