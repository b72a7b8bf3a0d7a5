"""The SMTP submission fake as smtplib (and a raw socket, where byte order matters) drives it.

Real sockets on 127.0.0.1, TLS verified against the run's CA: STARTTLS and implicit TLS, EHLO
per TLS state, AUTH PLAIN/LOGIN/XOAUTH2, app passwords, SIZE, SMTPUTF8 and 8BITMIME when
absent, recipient caps, daily quotas, greylisting, every fault at every stage, delivery into
the MailStore (read back over IMAP), and what the submission and wire records say.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl

import imapclient
import pytest

from fake_servers.provider_config import ConfigError, from_mapping
from fake_servers.smtp import SmtpConfig

from .conftest import PASSWORD, USER
from .smtputil import (MESSAGE, TIMEOUT, context, implicit, logged_in_raw, plain_b64, plaintext, raw,  # noqa: F401
                       server_errors, smtp_connections, starttls)

JUERGEN, JUERGEN_PW = "jürgen.müller@example.test", "pässwort"
BOB = "bob@example.test"


@pytest.fixture(autouse=True)
def _no_server_errors(server_errors):
    """An exception inside the fake would reach the client as a timeout; fail on it instead."""


def provider_with(make_provider, faults=(), **smtp):
    return make_provider(smtp=SmtpConfig(**smtp), faults=list(faults))


def only(provider):
    (conn,) = smtp_connections(provider)
    return conn


def names(conn) -> list[str]:
    return [c.name for c in conn.commands]


# -- the happy path ---------------------------------------------------------------------------


def test_starttls_auth_and_send_is_recorded_as_a_submission(provider):
    client = starttls(provider, login=True)
    assert client.sendmail(USER, [BOB], MESSAGE) == {}
    client.quit()
    conn = only(provider)
    (sub,) = provider.submissions()
    assert (sub.run, sub.session, sub.connection, sub.server, sub.user) == (1, 1, conn.id, "smtp", USER)
    assert (sub.mail_from, sub.rcpt_tos, sub.refused_rcpts) == (USER, (BOB,), ())
    assert sub.data == MESSAGE and sub.size == len(MESSAGE) and sub.declared_size == len(MESSAGE)
    assert sub.accepted and sub.reply_sent and sub.reply == "250 2.0.0 OK"
    assert (sub.smtputf8, sub.body) == (False, None)
    assert conn.protocol == "smtp" and conn.tls_version in ("TLSv1.2", "TLSv1.3") and not conn.implicit_tls
    assert names(conn) == ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "END-OF-DATA", "QUIT"]
    assert conn.user == USER


def test_implicit_tls_port_serves_the_same_session(provider):
    client = implicit(provider, login=True)
    assert "starttls" not in client.esmtp_features and "auth" in client.esmtp_features
    client.sendmail(USER, [BOB], MESSAGE)
    client.quit()
    conn = only(provider)
    assert conn.server == "smtps" and conn.implicit_tls and conn.tls
    assert provider.submissions()[0].server == "smtps"
    assert all(r.tls for r in conn.responses) and conn.responses[0].kind == "greeting"


def test_ehlo_advertises_per_tls_state(provider):
    client = plaintext(provider)
    assert {"starttls", "size", "8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes"} <= set(
        client.esmtp_features)
    assert "auth" not in client.esmtp_features
    client.starttls(context=context(provider))
    client.ehlo()
    assert "starttls" not in client.esmtp_features
    assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    assert client.esmtp_features["size"] == "20971520"
    client.quit()


def test_ehlo_lines_can_be_scripted_exactly(make_provider):
    provider = provider_with(make_provider, ehlo_plaintext=("STARTTLS",), ehlo_tls=("AUTH PLAIN", "8BITMIME"))
    client = plaintext(provider)
    assert list(client.esmtp_features) == ["starttls"]
    client.starttls(context=context(provider))
    client.ehlo()
    assert list(client.esmtp_features) == ["auth", "8bitmime"]
    client.login(USER, PASSWORD)
    # SMTPUTF8 was not advertised, so it is refused although the setting allows it
    assert client.docmd("MAIL", "FROM:<a@example.test> SMTPUTF8")[0] == 555
    client.quit()


def test_wire_records_replies_line_by_line_with_codes(provider):
    client = starttls(provider, login=True)
    client.sendmail(USER, [BOB], MESSAGE)
    client.quit()
    conn = only(provider)
    greeting = conn.responses[0]
    assert (greeting.kind, greeting.status, greeting.tag, greeting.line) == (
        "greeting", "220", None, "220 smtp.example.test ESMTP mailconform ready")
    ehlo = [r for r in conn.responses if r.line.startswith("250-") or r.line == "250 SMTPUTF8"]
    assert ehlo[0].line == "250-smtp.example.test" and all(r.status == "250" for r in ehlo)
    auth = next(r for r in conn.responses if r.status == "235")
    assert (auth.code, auth.kind, auth.tls) == ("2.7.0", "reply", True)
    assert [c.state for c in conn.commands][-3:] == ["authenticated"] * 3
    assert conn.commands[0].state == "not-authenticated" and conn.commands[0].tag is None


def test_credentials_and_message_are_redacted(provider):
    client = starttls(provider)
    client.user, client.password = USER, PASSWORD
    client.auth("LOGIN", client.auth_login, initial_response_ok=False)
    client.sendmail(USER, [BOB], MESSAGE)
    client.quit()
    conn = only(provider)
    transcript = conn.transcript()
    assert PASSWORD not in transcript and base64.b64encode(PASSWORD.encode()).decode() not in transcript
    continuations = [c for c in conn.commands if c.name == "CONTINUATION"]
    assert [c.redacted for c in continuations] == ["***", "***"] and all(c.credentials for c in continuations)
    assert [r.kind for r in conn.responses if r.status == "334"] == ["continuation", "continuation"]
    message = next(c for c in conn.commands if c.name == "END-OF-DATA")
    assert message.mail_data and message.redacted == f"<message, {len(MESSAGE) + 3} bytes>"
    assert message.raw == MESSAGE + b".\r\n"
    assert provider.wire.credentials_before_tls((PASSWORD.encode(),)) == []


def test_auth_plain_initial_response_is_redacted(provider):
    client = implicit(provider, login=True)
    client.quit()
    (auth,) = [c for c in only(provider).commands if c.name == "AUTH"]
    assert auth.redacted == "AUTH PLAIN ***" and auth.credentials and auth.tls


# -- AUTH -------------------------------------------------------------------------------------


def test_auth_before_tls_is_neither_advertised_nor_accepted(provider):
    client = plaintext(provider)
    code, text = client.docmd("AUTH", f"PLAIN {plain_b64(USER, PASSWORD)}")
    assert (code, text) == (538, b"5.7.11 Encryption required for requested authentication mechanism")
    assert client.docmd("MAIL", "FROM:<a@example.test>")[0] == 530
    client.quit()
    conn = only(provider)
    (auth,) = [c for c in conn.commands if c.name == "AUTH"]
    assert auth.credentials and not auth.tls and auth.redacted == "AUTH PLAIN ***"
    assert provider.wire.credentials_before_tls() == [(conn, "AUTH PLAIN ***")]


def test_auth_before_tls_when_allowed(make_provider):
    provider = provider_with(make_provider, auth_before_tls=True, starttls=False)
    client = plaintext(provider)
    assert "starttls" not in client.esmtp_features and "auth" in client.esmtp_features
    client.login(USER, PASSWORD)
    assert client.sendmail(USER, [BOB], MESSAGE) == {}
    client.quit()


def test_wrong_password_gets_535(provider):
    client = starttls(provider)
    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        client.login(USER, "wrong")
    assert info.value.smtp_code == 535 and info.value.smtp_error == b"5.7.8 Username and Password not accepted"
    client.quit()


def test_utf8_username_is_compared_exactly(provider):
    provider.add_account(JUERGEN, JUERGEN_PW)
    client = starttls(provider)
    latin1 = base64.b64encode(f"\0{JUERGEN}\0{JUERGEN_PW}".encode("latin-1")).decode()
    assert client.docmd("AUTH", f"PLAIN {latin1}")[0] in (501, 535)
    assert client.docmd("AUTH", f"PLAIN {plain_b64(JUERGEN, JUERGEN_PW)}") == (235, b"2.7.0 Accepted")
    client.quit()
    assert only(provider).user == JUERGEN


def test_app_password_required(make_provider):
    provider = make_provider(messages=None)
    provider.add_account(USER, PASSWORD, app_passwords=("abcd efgh",), require_app_password=True)
    client = starttls(provider)
    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        client.login(USER, PASSWORD)
    assert info.value.smtp_code == 534 and b"5.7.9 Application-specific password required" in info.value.smtp_error
    client.login(USER, "abcd efgh")
    client.quit()


def test_too_many_failed_attempts_close_the_connection(make_provider):
    provider = provider_with(make_provider, max_auth_failures=2)
    client = starttls(provider)
    assert client.docmd("AUTH", f"PLAIN {plain_b64(USER, 'wrong')}")[0] == 535
    code, text = client.docmd("AUTH", f"PLAIN {plain_b64(USER, 'wrong again')}")
    assert code == 454 and text.startswith(b"4.7.0 Too many login attempts")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    assert "server closes: too many failed AUTH attempts" in only(provider).transcript()


def test_xoauth2_success_and_gmail_style_failure(make_provider):
    provider = provider_with(make_provider, auth_mechanisms=("XOAUTH2",))
    provider.add_account("oauth@example.test", "unused", oauth_tokens=("ya29.token",))
    client = starttls(provider)
    assert client.esmtp_features["auth"].strip() == "XOAUTH2"
    challenges = []

    def bearer(token):
        def respond(challenge=None):
            if challenge is not None:
                challenges.append(challenge)
                return ""
            return f"user=oauth@example.test\x01auth=Bearer {token}\x01\x01"
        return respond

    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        client.auth("XOAUTH2", bearer("expired"))
    assert info.value.smtp_code == 535
    assert challenges == [b'{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}']
    assert client.auth("XOAUTH2", bearer("ya29.token"))[0] == 235
    client.quit()
    conn = only(provider)
    assert [r.status for r in conn.responses if r.status in ("334", "535", "235")] == ["334", "535", "235"]
    assert all(c.credentials for c in conn.commands if c.name == "AUTH")


GMAIL_OAUTH_ERROR = b'{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}'


def xoauth2(user: str, token: str) -> str:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def test_xoauth2_checks_issued_tokens_and_answers_an_expired_one_as_gmail(make_provider):
    provider = provider_with(make_provider, auth_mechanisms=("XOAUTH2",))
    user = "oauth@example.test"
    provider.add_account(user, "unused", oauth_tokens=("static-token",))

    def issue():
        account = provider.store.account(user)
        account.register_token("once", uses=1)  # good for one login
        account.register_token("revoked", lifetime=3600)
        account.expire_token("revoked")

    provider.call(issue)
    client = raw(provider, implicit=True)
    client.cmd("EHLO client.test")
    assert client.code(f"AUTH XOAUTH2 {xoauth2(user, 'once')}") == 235
    client.cmd("QUIT")
    for token in ("once", "revoked"):  # used up, revoked: both expired
        client = raw(provider, implicit=True)
        client.cmd("EHLO client.test")
        (challenge,) = client.cmd(f"AUTH XOAUTH2 {xoauth2(user, token)}")
        assert challenge.startswith(b"334 ") and base64.b64decode(challenge[4:]) == GMAIL_OAUTH_ERROR
        assert client.cmd("") == [b"535 5.7.8 Username and Password not accepted\r\n"]
        assert client.code(f"AUTH XOAUTH2 {xoauth2(user, 'static-token')}") == 235  # static tokens never expire
        client.cmd("QUIT")
    first, *refused = smtp_connections(provider, 3)
    assert first.user == user
    for conn in refused:
        assert f"XOAUTH2 for {user}: the access token has expired" in conn.transcript()
        assert [(c.name, c.credentials) for c in conn.commands if c.name in ("AUTH", "CONTINUATION")] == [
            ("AUTH", True), ("CONTINUATION", False), ("AUTH", True)]
        assert [(r.status, r.kind) for r in conn.responses if r.status in ("334", "535", "235")] == [
            ("334", "continuation"), ("535", "reply"), ("235", "reply")]
    assert provider.call(lambda: provider.store.account(user).issued_tokens["once"].uses) == 1


def test_xoauth2_error_challenge_then_too_many_failures_closes(make_provider):
    provider = provider_with(make_provider, auth_mechanisms=("XOAUTH2",), max_auth_failures=2)
    provider.add_account("oauth@example.test", "unused")
    client = raw(provider, implicit=True)
    client.cmd("EHLO client.test")
    for expected in (b"535 5.7.8", b"454 4.7.0"):
        assert client.cmd(f"AUTH XOAUTH2 {xoauth2('oauth@example.test', 'unknown')}")[0].startswith(b"334 ")
        assert client.cmd("")[0].startswith(expected)
    assert "server closes: too many failed AUTH attempts" in only(provider).transcript()


def test_unknown_mechanism_and_cancelled_exchange(provider):
    client = starttls(provider)
    assert client.docmd("AUTH", "CRAM-MD5")[0] == 504
    assert client.docmd("AUTH", "PLAIN") == (334, b"")
    assert client.docmd("*")[0] == 501
    client.login(USER, PASSWORD)
    client.quit()


# -- MAIL, RCPT, DATA -------------------------------------------------------------------------


def test_mail_without_auth_is_refused(provider):
    client = starttls(provider)
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        client.sendmail(USER, [BOB], MESSAGE)
    assert info.value.smtp_code == 530
    client.quit()
    assert provider.submissions() == []


def test_open_submission_without_auth(make_provider):
    provider = provider_with(make_provider, require_auth=False)
    client = plaintext(provider)
    assert client.sendmail("anyone@example.test", [BOB], MESSAGE) == {}
    client.quit()
    (sub,) = provider.submissions()
    assert sub.user is None and sub.accepted


def test_declared_size_over_the_limit_is_refused_at_mail(make_provider):
    provider = provider_with(make_provider, size_limit=1000)
    client = starttls(provider, login=True)
    assert client.esmtp_features["size"] == "1000"
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        client.sendmail(USER, [BOB], MESSAGE + b"x" * 1000)
    assert (info.value.smtp_code, info.value.smtp_error) == (552, b"5.3.4 Message size exceeds fixed limit")
    client.quit()


def test_undeclared_message_over_the_limit_is_refused_after_the_dot(make_provider):
    provider = provider_with(make_provider, size_limit=1000)
    client = starttls(provider, login=True)
    client.mail(USER)
    client.rcpt(BOB)
    code, _ = client.data(MESSAGE + b"y" * 5000)
    assert code == 552
    assert client.noop()[0] == 250  # the session goes on
    client.quit()
    (sub,) = provider.submissions()
    assert not sub.accepted and sub.reply == "552 5.3.4 Message size exceeds fixed limit" and sub.size > 1000
    assert provider.mailboxes(USER)["Sent"] == []


def test_without_smtputf8_a_utf8_address_is_answered_553(make_provider):
    provider = provider_with(make_provider, smtputf8=False)
    client = starttls(provider, login=True)
    assert "smtputf8" not in client.esmtp_features
    assert client.docmd("MAIL", "FROM:<alice@example.test> SMTPUTF8")[0] == 555
    client.send(f"MAIL FROM:<{JUERGEN}>\r\n".encode())
    assert client.getreply() == (553, b"5.6.7 SMTPUTF8 is required for this address")
    client.quit()
    mail = [c for c in only(provider).commands if c.name == "MAIL"]
    assert mail[-1].raw == f"MAIL FROM:<{JUERGEN}>\r\n".encode() and mail[-1].executed


def test_with_smtputf8_a_utf8_recipient_is_accepted(provider):
    client = starttls(provider, login=True)
    client.mail(USER, ["SMTPUTF8"])
    client.send(f"RCPT TO:<{JUERGEN}>\r\n".encode())
    assert client.getreply()[0] == 250
    assert client.data(MESSAGE)[0] == 250
    client.quit()
    (sub,) = provider.submissions()
    assert sub.smtputf8 and sub.rcpt_tos == (JUERGEN,)


def test_without_8bitmime_body_8bitmime_is_refused(make_provider):
    provider = provider_with(make_provider, eightbitmime=False)
    client = starttls(provider, login=True)
    assert "8bitmime" not in client.esmtp_features
    assert client.docmd("MAIL", "FROM:<alice@example.test> BODY=8BITMIME") == (
        555, b"5.5.4 Unsupported option: BODY=8BITMIME")
    # 8-bit bytes sent anyway are taken as they are, and noted
    client.sendmail(USER, [BOB], MESSAGE.replace(b"Hello Bob.", "Grüße".encode()))
    client.quit()
    conn = only(provider)
    assert "message has 8-bit bytes but MAIL had no BODY=8BITMIME" in conn.transcript()
    assert provider.submissions()[0].body is None


def test_body_8bitmime_is_recorded(provider):
    client = starttls(provider, login=True)
    client.sendmail(USER, [BOB], MESSAGE, mail_options=["BODY=8BITMIME"])
    client.quit()
    assert provider.submissions()[0].body == "8BITMIME"


def test_recipients_per_message_cap(make_provider):
    provider = provider_with(make_provider, max_recipients=2)
    client = starttls(provider, login=True)
    refused = client.sendmail(USER, ["a@example.test", "b@example.test", "c@example.test"], MESSAGE)
    assert refused == {"c@example.test": (452, b"4.5.3 Your message has too many recipients")}
    client.quit()
    (sub,) = provider.submissions()
    assert sub.rcpt_tos == ("a@example.test", "b@example.test") and sub.refused_rcpts == ("c@example.test",)
    assert sub.rcpt_replies == ("452 4.5.3 Your message has too many recipients",)


def test_daily_message_quota_across_connections(make_provider):
    provider = provider_with(make_provider, daily_messages=1)
    client = starttls(provider, login=True)
    client.sendmail(USER, [BOB], MESSAGE)
    client.quit()
    client = implicit(provider, login=True)
    with pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail(USER, [BOB], MESSAGE)
    assert (info.value.smtp_code, info.value.smtp_error) == (550, b"5.4.5 Daily user sending quota exceeded.")
    client.quit()
    assert [s.accepted for s in provider.submissions()] == [True, False]


def test_daily_recipient_quota(make_provider):
    provider = provider_with(make_provider, daily_recipients=3)
    client = starttls(provider, login=True)
    client.sendmail(USER, ["a@example.test", "b@example.test"], MESSAGE)
    refused = client.sendmail(USER, ["c@example.test", "d@example.test"], MESSAGE)
    assert refused == {"d@example.test": (550, b"5.4.5 Daily recipient quota exceeded.")}
    client.quit()


def test_greylisting_refuses_once(make_provider):
    provider = provider_with(make_provider, greylist=True)
    client = starttls(provider, login=True)
    with pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail(USER, [BOB], MESSAGE)
    assert (info.value.smtp_code, info.value.smtp_error) == (451, b"4.7.1 Greylisted, please try again later")
    assert client.sendmail(USER, [BOB], MESSAGE) == {}
    client.quit()
    assert [s.reply for s in provider.submissions()] == ["451 4.7.1 Greylisted, please try again later",
                                                         "250 2.0.0 OK"]


def test_sequence_errors(provider):
    client = smtplib.SMTP("127.0.0.1", provider.smtp_port, timeout=TIMEOUT)
    assert client.docmd("MAIL", "FROM:<a@example.test>")[0] == 503  # before EHLO
    client.ehlo()
    assert client.docmd("RCPT", "TO:<b@example.test>")[0] == 503
    assert client.docmd("DATA")[0] == 503
    assert client.docmd("STARTTLS", "now")[0] == 501
    assert client.docmd("VRFY", "bob")[0] == 252
    assert client.docmd("HELP")[0] == 214
    assert client.docmd("RSET") == (250, b"2.0.0 OK")
    client.quit()


def test_pipelined_commands_are_answered_in_order(provider):
    client = logged_in_raw(provider)
    client.send(f"MAIL FROM:<{USER}>\r\nRCPT TO:<{BOB}>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n".encode())
    assert [client.reply()[0][:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    client.send(MESSAGE + b".\r\nQUIT\r\n")
    assert client.reply()[0].startswith(b"250 2.0.0")
    assert client.reply()[0].startswith(b"221")
    assert client.closed_by_server()
    assert provider.submissions()[0].rcpt_tos == (BOB, "c@example.test")


def test_dot_stuffing_is_undone(provider):
    client = logged_in_raw(provider)
    client.cmd(f"MAIL FROM:<{USER}>")
    client.cmd(f"RCPT TO:<{BOB}>")
    client.cmd("DATA")
    client.send(b"Subject: dots\r\n\r\n..leading dot\r\n...\r\nend\r\n.\r\n")
    assert client.reply()[0].startswith(b"250")
    client.close()
    assert provider.submissions()[0].data == b"Subject: dots\r\n\r\n.leading dot\r\n..\r\nend\r\n"


def test_empty_message(provider):
    client = logged_in_raw(provider)
    client.cmd(f"MAIL FROM:<{USER}>")
    client.cmd(f"RCPT TO:<{BOB}>")
    client.cmd("DATA")
    client.send(b".\r\n")
    assert client.reply()[0].startswith(b"250")
    client.close()
    assert provider.submissions()[0].data == b""


# -- delivery ---------------------------------------------------------------------------------


def test_delivery_into_sent_and_inbox_is_readable_over_imap(make_provider):
    provider = provider_with(make_provider, deliver_to=("sent", "inbox"))
    provider.add_account(BOB, "bob-pw")
    client = implicit(provider, login=True)
    client.sendmail(USER, [BOB, "stranger@elsewhere.test"], MESSAGE)
    client.quit()
    assert "delivered to alice@example.test:Sent, bob@example.test:INBOX" in only(provider).transcript()
    with imapclient.IMAPClient("127.0.0.1", port=provider.imaps_port, ssl=True, ssl_context=context(provider),
                               timeout=TIMEOUT) as imap:
        imap.login(BOB, "bob-pw")
        imap.select_folder("INBOX")
        (uid,) = imap.search("ALL")
        assert imap.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == MESSAGE
        imap.logout()
    with imapclient.IMAPClient("127.0.0.1", port=provider.imaps_port, ssl=True, ssl_context=context(provider),
                               timeout=TIMEOUT) as imap:
        imap.login(USER, PASSWORD)
        imap.select_folder("Sent")
        (uid,) = imap.search("ALL")
        fetched = imap.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
        assert fetched[b"BODY[]"] == MESSAGE and b"\\Seen" in fetched[b"FLAGS"]
        imap.logout()


def test_default_delivery_is_the_senders_sent_folder_only(provider):
    provider.add_account(BOB, "bob-pw")
    client = starttls(provider, login=True)
    client.sendmail(USER, [BOB], MESSAGE)
    client.quit()
    assert provider.mailboxes(USER)["Sent"] == [MESSAGE]
    assert provider.mailboxes(BOB)["INBOX"] == []


# -- runs and sessions ------------------------------------------------------------------------


def test_submissions_carry_run_and_session(provider):
    for _ in range(2):
        client = implicit(provider, login=True)
        client.sendmail(USER, [BOB], MESSAGE)
        client.quit()
    provider.next_run()
    client = starttls(provider, login=True)
    client.sendmail(USER, [BOB], MESSAGE)
    client.quit()
    subs = provider.submissions()
    assert [(s.run, s.server, s.session) for s in subs] == [(1, "smtps", 1), (1, "smtps", 2), (2, "smtp", 1)]
    assert len({s.connection for s in subs}) == 3


# -- TLS --------------------------------------------------------------------------------------


def test_a_client_that_rejects_the_certificate_leaves_a_record(make_provider):
    provider = make_provider(cert="untrusted")
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL("127.0.0.1", provider.smtps_port, context=context(provider), timeout=TIMEOUT)
    conn = only(provider)
    assert conn.server == "smtps" and not conn.tls
    assert any(n.text.startswith("TLS handshake failed: ") for n in conn.notes), conn.transcript()
    client = plaintext(provider)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(context=context(provider))
    conns = smtp_connections(provider, 2)
    assert any(n.text.startswith("TLS handshake failed: ") for n in conns[1].notes)


def test_plaintext_pipelined_behind_starttls_is_kept_but_never_executed(provider):
    client = raw(provider)
    client.cmd("EHLO client.test")
    client.send(f"STARTTLS\r\nAUTH PLAIN {plain_b64(USER, PASSWORD)}\r\n".encode())
    assert client.reply()[0].startswith(b"220")
    client.sock = context(provider).wrap_socket(client.sock, server_hostname="localhost")
    assert client.code("EHLO client.test") == 250
    assert client.code(f"MAIL FROM:<{USER}>") == 530  # the pipelined AUTH did not log in
    client.cmd("QUIT")
    client.close()
    conn = only(provider)
    dropped = [c for c in conn.commands if not c.executed]
    assert [(c.name, c.redacted, c.credentials, c.tls) for c in dropped] == [("AUTH", "AUTH PLAIN ***", True, False)]
    assert provider.wire.credentials_before_tls() == [(conn, "AUTH PLAIN ***")]


def test_starttls_twice_and_starttls_not_offered(make_provider):
    provider = provider_with(make_provider, starttls=False)
    client = plaintext(provider)
    assert "starttls" not in client.esmtp_features
    assert client.docmd("STARTTLS")[0] == 502
    client.quit()
    client = implicit(provider)
    assert client.docmd("STARTTLS")[0] == 503
    client.quit()


# -- faults -----------------------------------------------------------------------------------


def test_connect_reply_refuses_the_session_as_a_greeting(make_provider):
    provider = make_provider(faults=[dict(on="connect", protocol="smtp", action="reply", status="554",
                                          code="5.7.1", text="No SMTP service here")])
    with pytest.raises(smtplib.SMTPConnectError) as info:
        smtplib.SMTP("127.0.0.1", provider.smtp_port, timeout=TIMEOUT)
    assert info.value.smtp_code == 554
    conn = only(provider)
    assert (conn.responses[0].kind, conn.responses[0].line, conn.responses[0].injected) == (
        "greeting", "554 5.7.1 No SMTP service here", True)


def test_connect_bye_is_a_421_greeting_then_close(make_provider):
    provider = make_provider(faults=[dict(on="connect", protocol="smtp", action="bye", text="Try again later")])
    client = raw(provider, greeting=False)
    assert client.read_to_end() == b"421 4.7.0 Try again later\r\n"
    client = raw(provider, implicit=True, greeting=False)  # said once TLS is up
    assert client.read_to_end() == b"421 4.7.0 Try again later\r\n"


def test_connect_reset_and_stall(make_provider):
    provider = make_provider(faults=[dict(on="connect", protocol="smtp", session=1, action="reset"),
                                     dict(on="connect", protocol="smtp", session=2, action="stall")])
    with pytest.raises((ConnectionResetError, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP("127.0.0.1", provider.smtp_port, timeout=TIMEOUT)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP("127.0.0.1", provider.smtp_port, timeout=0.3)
    client = plaintext(provider)  # the third is served
    client.quit()


def test_greeting_reply_and_delay(make_provider):
    provider = make_provider(faults=[dict(on="greeting", protocol="smtp", action="reply", status="220",
                                          text="custom.banner.test ESMTP"),
                                     dict(on="greeting", protocol="smtp", action="delay", seconds=0.2)])
    client = raw(provider)
    assert client.greeting == [b"220 custom.banner.test ESMTP\r\n"]
    client.close()


def test_command_reply_answers_instead_of_executing(make_provider):
    provider = make_provider(faults=[dict(on="command", command="MAIL", nth=1, action="reply", status="451",
                                          code="4.3.2", text="System not accepting network messages")])
    client = starttls(provider, login=True)
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        client.sendmail(USER, [BOB], MESSAGE)
    assert (info.value.smtp_code, info.value.smtp_error) == (451, b"4.3.2 System not accepting network messages")
    client.rset()
    assert client.sendmail(USER, [BOB], MESSAGE) == {}  # the rule fired once
    client.quit()


def test_command_bye_on_rcpt_is_the_rate_limit(make_provider):
    provider = make_provider(faults=[dict(on="command", command="RCPT", action="bye", code="4.7.0",
                                          text="Try again later, closing connection.")])
    client = starttls(provider, login=True)
    with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPServerDisconnected)):
        client.sendmail(USER, [BOB], MESSAGE)
    conn = only(provider)
    assert [r.line for r in conn.responses][-1] == "421 4.7.0 Try again later, closing connection."
    assert "server closes: fault: bye" in conn.transcript()


def test_response_reply_on_data_keeps_the_message_from_following(make_provider):
    provider = make_provider(faults=[dict(on="response", command="DATA", action="reply", status="554",
                                          code="5.3.0", text="Transaction failed")])
    client = starttls(provider, login=True)
    with pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail(USER, [BOB], MESSAGE)
    assert info.value.smtp_code == 554
    assert client.noop()[0] == 250  # DATA was refused: the next line is a command again
    client.quit()
    assert provider.submissions() == []


def test_reset_after_the_final_dot_delivers_but_never_acknowledges(make_provider):
    provider = make_provider(faults=[dict(on="response", command="END-OF-DATA", action="reset")])
    client = starttls(provider, login=True)
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionResetError)):
        client.sendmail(USER, [BOB], MESSAGE)
    conn = only(provider)
    (sub,) = provider.submissions()
    assert sub.accepted and not sub.reply_sent and sub.reply == "250 2.0.0 OK"
    assert provider.mailboxes(USER)["Sent"] == [MESSAGE]
    assert not any(r.line.startswith("250 2.0.0") for r in conn.responses)


def test_response_reply_on_end_of_data_lies_about_a_delivered_message(make_provider):
    provider = make_provider(faults=[dict(on="response", command="END-OF-DATA", action="reply", status="451",
                                          code="4.4.2", text="Timeout")])
    client = starttls(provider, login=True)
    with pytest.raises(smtplib.SMTPDataError):
        client.sendmail(USER, [BOB], MESSAGE)
    client.quit()
    (sub,) = provider.submissions()
    assert sub.accepted and sub.reply_sent and sub.reply == "451 4.4.2 Timeout"
    assert provider.mailboxes(USER)["Sent"] == [MESSAGE]


def test_command_reply_on_end_of_data_refuses_without_delivering(make_provider):
    provider = make_provider(faults=[dict(on="command", command="END-OF-DATA", action="reply", status="554",
                                          code="5.7.1", text="Message rejected as spam")])
    client = starttls(provider, login=True)
    with pytest.raises(smtplib.SMTPDataError):
        client.sendmail(USER, [BOB], MESSAGE)
    client.quit()
    (sub,) = provider.submissions()
    assert not sub.accepted and sub.reply == "554 5.7.1 Message rejected as spam" and sub.reply_sent
    assert provider.mailboxes(USER)["Sent"] == []


@pytest.mark.parametrize("action", ["close", "stall"])
def test_halting_at_end_of_data_records_an_unanswered_submission(make_provider, action):
    provider = make_provider(faults=[dict(on="command", command="END-OF-DATA", action=action)])
    client = starttls(provider, login=True, timeout=0.5 if action == "stall" else TIMEOUT)
    with pytest.raises((smtplib.SMTPServerDisconnected, TimeoutError)):
        client.sendmail(USER, [BOB], MESSAGE)
    client.close()
    (sub,) = provider.submissions()
    assert not sub.accepted and not sub.reply_sent and sub.reply == ""


def test_response_injection_after_starttls_goes_out_in_plaintext(make_provider):
    injected = "250-AUTH PLAIN LOGIN"
    provider = make_provider(faults=[dict(on="response", command="STARTTLS", action="untagged", when="after",
                                          lines=[injected])])
    client = raw(provider)
    client.cmd("EHLO client.test")
    client.send(b"STARTTLS\r\n")
    assert client.line() == b"220 2.0.0 Ready to start TLS\r\n"
    # the injected line is already in the socket buffer, in plaintext, before the handshake
    assert client.line() == injected.encode() + b"\r\n"
    client.sock = context(provider).wrap_socket(client.sock, server_hostname="localhost")
    assert client.code("EHLO client.test") == 250
    client.cmd("QUIT")
    client.close()
    conn = only(provider)
    (line,) = [r for r in conn.responses if r.injected]
    assert (line.line, line.tls) == (injected, False)
    assert conn.server_bytes(tls=False).endswith(b"220 2.0.0 Ready to start TLS\r\n" + injected.encode() + b"\r\n")


def test_untagged_lines_before_a_reply(make_provider):
    provider = make_provider(faults=[dict(on="response", command="NOOP", action="untagged", lines=["250-extra"])])
    client = raw(provider)
    assert client.cmd("NOOP") == [b"250-extra\r\n", b"250 2.0.0 OK\r\n"]
    client.close()


def test_starttls_refused_by_a_fault(make_provider):
    provider = make_provider(faults=[dict(on="command", command="STARTTLS", action="reply", status="454",
                                          code="4.7.0", text="TLS not available due to temporary reason")])
    client = plaintext(provider)
    with pytest.raises(smtplib.SMTPResponseException) as info:
        client.starttls(context=context(provider))
    assert info.value.smtp_code == 454
    assert client.noop()[0] == 250  # still plaintext, still talking
    client.quit()
    assert not only(provider).tls


def test_response_reply_on_starttls_does_not_start_tls(make_provider):
    provider = make_provider(faults=[dict(on="response", command="STARTTLS", action="reply", status="454",
                                          text="4.7.0 no")])
    client = raw(provider)
    assert client.cmd("STARTTLS") == [b"454 4.7.0 no\r\n"]
    assert client.code("NOOP") == 250
    client.close()


def test_tls_event_close(make_provider):
    provider = make_provider(faults=[dict(on="tls", protocol="smtp", action="bye")])
    client = raw(provider, implicit=True, greeting=False)
    assert client.read_to_end() == b"421 4.7.0 Service not available, closing channel\r\n"


def test_reply_on_continuation_ends_the_exchange(make_provider):
    provider = make_provider(faults=[dict(on="command", command="CONTINUATION", action="reply", status="454",
                                          code="4.7.0", text="Temporary authentication failure")])
    client = raw(provider, implicit=True)
    client.cmd("EHLO c")
    assert client.cmd("AUTH LOGIN") == [b"334 VXNlcm5hbWU6\r\n"]
    assert client.cmd(base64.b64encode(USER.encode())) == [b"454 4.7.0 Temporary authentication failure\r\n"]
    assert client.code("NOOP") == 250
    client.close()


@pytest.mark.parametrize("rule", [
    dict(action="latency", seconds=0.01, jitter=0.01),
    dict(action="slice", size=3),
    dict(action="bandwidth", bytes_per_second=50_000),
])
def test_transport_shaping_keeps_the_session_working(make_provider, rule):
    provider = make_provider(faults=[dict(on="connect", protocol="smtp", **rule)])
    client = starttls(provider, login=True)
    assert client.sendmail(USER, [BOB], MESSAGE) == {}
    client.quit()


@pytest.mark.parametrize("then", ["reset", "close"])
def test_truncate_cuts_a_reply(make_provider, then):
    provider = make_provider(faults=[dict(on="command", command="EHLO", action="truncate", after_bytes=10,
                                          then=then)])
    client = raw(provider)
    client.send(b"EHLO client.test\r\n")
    got = b""
    if then == "reset":
        with pytest.raises(ConnectionResetError):
            while True:
                got += client.exactly(1)
    else:
        got = client.read_to_end()
    client.close()
    assert got == b"250-smtp.e"
    conn = only(provider)
    assert conn.server_bytes().endswith(b"\r\n250-smtp.e")


STAGES = [("connect", None), ("greeting", None), ("tls", None)] + [
    (event, command) for event in ("command", "response")
    for command in ("EHLO", "AUTH", "MAIL", "RCPT", "DATA", "END-OF-DATA")]


@pytest.mark.parametrize("action", ["close", "reset", "bye"])
@pytest.mark.parametrize(("event", "command"), STAGES)
def test_every_ending_fault_at_every_stage_leaves_the_fake_serving(make_provider, event, command, action):
    rule = dict(on=event, protocol="smtp", session=1, action=action)
    if command is not None:
        rule["command"] = command
    provider = make_provider(faults=[rule])
    client = smtplib.SMTP(timeout=TIMEOUT)
    client._host = "127.0.0.1"  # what starttls() checks the certificate against (set by a connecting constructor)
    with pytest.raises((smtplib.SMTPException, OSError)):
        try:
            client.connect("127.0.0.1", provider.smtp_port)
            client.starttls(context=context(provider))
            client.login(USER, PASSWORD)
            client.sendmail(USER, [BOB], MESSAGE)
            client.quit()
        finally:
            client.close()  # smtplib leaves the socket open after some errors (a 421 to DATA)
    conn = only(provider)
    assert any(n.text.startswith(f"fault on {event}: {action}") for n in conn.notes), conn.transcript()
    if action == "bye":
        assert conn.responses[-1].line.startswith("421 4.7.0") and conn.responses[-1].injected
    delivered = provider.mailboxes(USER)["Sent"]
    assert delivered == ([MESSAGE] if (event, command) == ("response", "END-OF-DATA") else [])
    client = starttls(provider, login=True)  # session 2 is untouched
    assert client.sendmail(USER, [BOB], MESSAGE) == {}
    client.quit()


def test_delay_holds_one_reply_back_and_keeps_order(make_provider):
    provider = make_provider(faults=[dict(on="response", command="NOOP", nth=1, action="delay", seconds=0.2)])
    client = raw(provider)
    client.send(b"NOOP\r\nRSET\r\n")
    assert [client.reply()[0][:3] for _ in range(2)] == [b"250", b"250"]
    client.close()
    conn = only(provider)
    noop, rset = [c for c in conn.commands if c.name in ("NOOP", "RSET")]
    replies = [r for r in conn.responses if r.status == "250"]
    assert replies[0].at - noop.at >= 0.2 and replies[1].at >= replies[0].at


def test_capabilities_action_changes_ehlo(make_provider):
    provider = make_provider(faults=[dict(on="command", command="EHLO", protocol="smtp", nth=1,
                                          action="capabilities", remove=["SMTPUTF8"], add=["DSN"])])
    client = plaintext(provider)
    assert "smtputf8" not in client.esmtp_features and "dsn" in client.esmtp_features
    client.quit()


def test_capabilities_at_a_run_boundary_change_ehlo_on_both_ports_and_imap_too(make_provider):
    provider = make_provider(faults=[dict(on="run", run=2, action="capabilities", remove=["STARTTLS"],
                                          add=["DSN"])])
    client = plaintext(provider)
    assert "starttls" in client.esmtp_features and "dsn" not in client.esmtp_features
    client.quit()
    provider.next_run()  # the provider stops offering STARTTLS between the runs
    client = plaintext(provider)
    assert "starttls" not in client.esmtp_features and "dsn" in client.esmtp_features
    assert client.docmd("STARTTLS")[0] == 502  # what the fake accepts follows what it advertised
    client.quit()
    client = implicit(provider)
    assert "dsn" in client.esmtp_features
    client.quit()
    imap = imapclient.IMAPClient("127.0.0.1", port=provider.imap_port, ssl=False, timeout=TIMEOUT)
    assert b"STARTTLS" not in imap.capabilities()  # the same rule, on the IMAP side
    imap.logout()
    provider.change([{"action": "capabilities", "add": ["CHUNKING"], "remove": ["DSN"]}])
    client = plaintext(provider)
    assert "chunking" in client.esmtp_features and "dsn" not in client.esmtp_features
    client.quit()
    assert provider.smtp_config.ehlo_add == ()  # the caller's config is never changed


def test_protocol_matcher_keeps_rules_to_their_fake(make_provider):
    provider = make_provider(faults=[dict(on="connect", protocol="imap", action="reset"),
                                     dict(on="command", command="NOOP", protocol="smtp", action="reply",
                                          status="250", text="smtp only")])
    client = plaintext(provider)
    assert client.noop() == (250, b"smtp only")
    client.quit()
    with pytest.raises(Exception):
        imapclient.IMAPClient("127.0.0.1", port=provider.imap_port, ssl=False, timeout=TIMEOUT).noop()


def test_an_internal_error_is_answered_451_and_the_session_goes_on(provider, monkeypatch, server_errors):
    from fake_servers.smtp.session import SmtpSession

    def broken(self, arg):
        raise RuntimeError("defect")

    monkeypatch.setattr(SmtpSession, "_vrfy", broken)
    client = plaintext(provider)
    assert client.docmd("VRFY", "bob") == (451, b"4.3.0 Internal error in the fake")
    assert client.noop()[0] == 250
    client.quit()
    assert "internal error in the fake" in only(provider).transcript()
    assert [r.getMessage() for r in server_errors.records] == [f"SMTP session failed on connection {only(provider).id}"]
    server_errors.records.clear()


# -- configuration ------------------------------------------------------------------------------


def test_smtp_table_is_strict():
    with pytest.raises(ConfigError, match="did you mean 'max_recipients'"):
        from_mapping({"smtp": {"max_recipient": 5}})
    with pytest.raises(ConfigError, match="did you mean 'auth_failed'"):
        from_mapping({"smtp": {"texts": {"auth_faild": "535 5.7.8 no"}}})
    with pytest.raises(ConfigError, match="smtp.texts.auth_failed"):
        from_mapping({"smtp": {"texts": {"auth_failed": "no"}}})
    with pytest.raises(ConfigError, match="expected bool"):
        from_mapping({"smtp": {"greylist": "yes"}})
    with pytest.raises(ConfigError, match="did you mean 'XOAUTH2'"):
        from_mapping({"smtp": {"auth_mechanisms": ["XOAUTH"]}})
    with pytest.raises(ConfigError, match="did you mean 'inbox'"):
        from_mapping({"smtp": {"deliver_to": ["inbx"]}})
    spec = from_mapping({"smtp": {"max_recipients": 5, "greylist_delay": 2, "texts": {"accepted": "250 ok {id}"}}})
    provider = spec.build()
    assert provider.smtp_config.max_recipients == 5 and provider.smtp_config.texts.accepted == "250 ok {id}"


def test_protocol_matcher_is_checked():
    from fake_servers.faults import Rule, RuleError

    with pytest.raises(RuleError, match="did you mean 'smtp'"):
        Rule.from_dict({"on": "connect", "protocol": "smpt", "action": "reset"})
    with pytest.raises(RuleError, match="never matches on 'run'"):
        Rule.from_dict({"on": "run", "protocol": "smtp", "action": "expunge"})
    rule = Rule.from_dict({"on": "response", "protocol": "smtp", "command": "end-of-data", "status": "250",
                           "actions": [{"action": "reset"}]})
    assert (rule.match.protocol, rule.match.command, rule.match.status) == ("smtp", "END-OF-DATA", "250")


def test_gmail_persona_speaks_gmail():
    from fake_servers.provider_config import load_persona

    provider = load_persona("gmail").build()
    provider.start()
    try:
        provider.add_account(USER, PASSWORD, app_passwords=("app",), require_app_password=True)
        client = starttls(provider)
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN", "XOAUTH2"]
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login(USER, PASSWORD)
        assert info.value.smtp_code == 534
        assert info.value.smtp_error.startswith(b"5.7.9 Application-specific password required. Learn more at\n")
        client.login(USER, "app")
        client.sendmail(USER, [BOB], MESSAGE)
        client.quit()
        (sub,) = provider.submissions()
        assert sub.reply.startswith("250 2.0.0 OK  ") and sub.reply.endswith(" - gsmtp")
    finally:
        provider.stop()


# -- the protocol object itself ----------------------------------------------------------------


class ScriptedTransport(asyncio.Transport):
    """Stands in for a socket transport: keeps what the fake writes, counts pauses."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False
        self.paused = self.resumed = 0

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 4242)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.out += data

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1

    def get_write_buffer_size(self) -> int:
        return 0


def test_the_protocol_sets_every_attribute_aiosmtpd_sets(provider):
    from aiosmtpd.smtp import SMTP

    from fake_servers.smtp.server import SmtpServerProtocol

    server = provider._smtp_servers["smtp"]

    def both():
        theirs = SMTP(object(), hostname="x", loop=server.loop, enable_SMTPUTF8=True, data_size_limit=None)
        return set(vars(theirs)), set(vars(SmtpServerProtocol(server)))

    theirs, ours = provider.call(both)
    # StreamReaderProtocol's references to a stream reader: this protocol reads without one
    assert theirs - ours <= {"_strong_reader", "_source_traceback"}


def test_commands_are_answered_in_the_turn_that_read_them_and_input_is_held_during_a_handshake(provider):
    from fake_servers.smtp.server import SmtpServerProtocol

    server = provider._smtp_servers["smtp"]
    transport = ScriptedTransport()
    state: dict = {}

    def start():
        proto = state["proto"] = SmtpServerProtocol(server)
        proto.connection_made(transport)
        greeting = transport.take()
        proto.data_received(b"EHLO client.test\r\nNO")
        ehlo = transport.take()
        proto.data_received(b"OP\r\n")
        noop = transport.take()
        # a STARTTLS handshake under way: input is held, then reading paused
        waiter = state["waiter"] = server.loop.create_future()
        proto._tls_waiter = waiter
        proto.data_received(b"NOOP\r\n")
        before = transport.take()
        proto.data_received(b"NOOP\r\n" * 12000)  # 72 KB
        return greeting, ehlo, noop, before, transport.take(), transport.paused

    greeting, ehlo, noop, before, held, paused = provider.call(start)
    assert greeting.startswith(b"220 ") and ehlo.startswith(b"250-smtp.example.test\r\n")
    assert noop == b"250 2.0.0 OK\r\n"
    assert before == b"" and held == b"" and paused == 1
    provider.call(lambda: state["waiter"].set_result(True))  # the pump goes on with what it holds

    def finish():
        proto = state["proto"]
        answered = transport.take()
        resumed = transport.resumed
        proto.eof_received()
        proto.connection_lost(None)
        return answered, resumed, proto._phase, proto.pipe.sink.proto

    answered, resumed, phase, sink_proto = provider.call(finish)
    assert answered == b"250 2.0.0 OK\r\n" * 12001 and resumed == 1
    assert phase == "done" and sink_proto is None  # ended, and its reference cycle undone
    (conn,) = smtp_connections(provider)
    assert names(conn)[:3] == ["EHLO", "NOOP", "NOOP"] and len(conn.commands) == 12003
    assert conn.bytes_received == len(b"EHLO client.test\r\nNOOP\r\n") + 6 * 12001


def test_a_connection_lost_during_a_handshake_ends_it(provider):
    from fake_servers.smtp.server import SmtpServerProtocol

    server = provider._smtp_servers["smtp"]
    transport = ScriptedTransport()

    def run():
        proto = SmtpServerProtocol(server)
        proto.connection_made(transport)
        waiter = proto._tls_waiter = server.loop.create_future()
        proto.data_received(b"EHLO client.test\r\n")
        held = bytes(proto.input.buffer)
        proto.connection_lost(ConnectionResetError("reset by peer"))
        return held, proto._phase, waiter.done(), proto in server.connections

    held, phase, settled, listed = provider.call(run)
    assert held == b"EHLO client.test\r\n" and phase == "done" and settled and not listed
    (conn,) = smtp_connections(provider)
    assert conn.close_reason == "reset by peer"


def test_stop_drops_open_connections(make_provider):
    provider = make_provider()
    clients = [plaintext(provider), starttls(provider, login=True), implicit(provider)]
    provider.stop()
    assert all(not c.open for c in provider.wire.select(protocol="smtp"))
    for client in clients:
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError, OSError)):
            client.noop()
    provider.stop()  # twice is fine


def test_silence_closes_the_connection_after_the_idle_limit_and_activity_postpones_it(provider):
    from fake_servers.smtp.server import SmtpServerProtocol

    server = provider._smtp_servers["smtp"]
    limit = 0.2

    async def closed_after(activity_at: float | None) -> float:
        """Seconds from the connection's start until the idle timer closed it."""
        loop = asyncio.get_running_loop()
        closed = loop.create_future()
        transport = ScriptedTransport()
        transport.close = lambda: closed.done() or closed.set_result(loop.time())  # type: ignore[method-assign]
        proto = SmtpServerProtocol(server)
        proto._idle_limit = limit
        start = loop.time()
        proto.connection_made(transport)
        if activity_at is not None:
            loop.call_later(activity_at, proto.data_received, b"NOOP\r\n")
        at = await asyncio.wait_for(closed, TIMEOUT)
        proto.connection_lost(None)
        return at - start

    assert provider.runtime.run(closed_after(None)) >= limit
    assert provider.runtime.run(closed_after(0.1)) >= 0.1 + limit
