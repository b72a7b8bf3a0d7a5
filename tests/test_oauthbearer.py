"""OAUTHBEARER (RFC 7628) on the IMAP and SMTP fakes, driven by imaplib, smtplib and raw sockets.

Real sockets on 127.0.0.1 over implicit TLS verified against the run's CA. Covers: offering the
mechanism only where configured, static and issued tokens (an issued one expires after its
uses), the §3.2.2 error challenge and the client's ^A answer, SASL-IR / initial response and the
continuation form, malformed GS2 headers and key/value pairs, a token used for someone else,
a GS2 header without ``a=`` (the token's owner logs in), and what the wire record shows.
"""

from __future__ import annotations

import base64
import imaplib
import json
import smtplib

import pytest

from fake_servers.imap import sasl
from fake_servers.imap.config import ImapConfig
from fake_servers.provider_config import ConfigError, from_mapping
from fake_servers.smtp import SmtpConfig

from .conftest import PASSWORD, USER
from .netutil import RawClient, client_context, twisted_errors  # noqa: F401  (fixture)
from .smtputil import TIMEOUT, implicit, raw, server_errors, smtp_connections  # noqa: F401  (fixture)

OWNER = "oauth@example.test"
STATIC = "ya29.static-token"
ERROR_JSON = {"status": "invalid_token", "scope": "https://mail.example.test/"}


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors, server_errors):
    """An exception inside a fake would reach the client as a timeout; fail on it instead."""


@pytest.fixture
def provider(make_provider):
    provider = make_provider(imap=ImapConfig(mechanisms=("PLAIN", "XOAUTH2", "OAUTHBEARER")),
                             smtp=SmtpConfig(auth_mechanisms=("PLAIN", "OAUTHBEARER")), messages=None)
    provider.add_account(OWNER, "unused", oauth_tokens=(STATIC,))
    return provider


def bearer(token: str, user: str | None = OWNER, *, host: str = "127.0.0.1", port: int = 993) -> bytes:
    """The RFC 7628 §3.1 client response (``a=`` left out when ``user`` is None)."""
    authzid = "" if user is None else "a=" + user.replace("=", "=3D").replace(",", "=2C")
    return f"n,{authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def issue(provider, token: str, **options) -> None:
    provider.call(lambda: provider.store.account(OWNER).register_token(token, **options))


# -- IMAP -------------------------------------------------------------------------------------


def imap(provider) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL(provider.host, provider.imaps_port, ssl_context=client_context(provider),
                             timeout=TIMEOUT)


class Responder:
    """An imaplib/smtplib authobject: the client response first, ^A to an error challenge."""

    def __init__(self, response: bytes, *, text: bool = False) -> None:
        self.response, self.text = response, text
        self.challenges: list[bytes] = []

    def __call__(self, challenge: bytes | None = None):
        if challenge:  # imaplib passes b"" for the empty first challenge; smtplib None for the IR
            self.challenges.append(challenge)
            answer = sasl.OAUTHBEARER_ACK
        else:
            answer = self.response
        return answer.decode() if self.text else answer


def imap_connections(provider, count: int = 1) -> list:
    conns = provider.wire.wait_for_connections(count, TIMEOUT, protocol="imap")
    assert len(conns) >= count, provider.wire.transcripts()
    for conn in conns[:count]:
        assert conn.wait_closed(TIMEOUT), conn.transcript()
    return conns[:count]


def raw_imap(provider) -> RawClient:
    client = RawClient(provider.imaps_port, tls=client_context(provider))
    client.line()  # greeting
    return client


def test_imap_offers_oauthbearer_only_where_configured(provider, make_provider):
    client = imap(provider)
    assert "AUTH=OAUTHBEARER" in client.capabilities
    client.logout()
    plain = make_provider(messages=None)  # mechanisms = PLAIN, LOGIN
    plain.add_account(OWNER, "unused", oauth_tokens=(STATIC,))
    client = raw_imap(plain)
    assert client.command("a1", f"AUTHENTICATE OAUTHBEARER {b64(bearer(STATIC))}")[-1] == (
        b"a1 NO Unsupported authentication mechanism.\r\n")
    client.close()


def test_imaplib_logs_in_with_a_static_token_in_the_continuation_form(provider):
    client = imap(provider)
    responder = Responder(bearer(STATIC))
    typ, data = client.authenticate("OAUTHBEARER", responder)
    assert typ == "OK" and responder.challenges == []
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    (conn,) = imap_connections(provider)
    assert conn.user == OWNER
    auth = [c for c in conn.commands if c.name in ("AUTHENTICATE", "CONTINUATION")]
    assert [(c.name, c.redacted.split(" ", 1)[-1], c.credentials) for c in auth] == [
        ("AUTHENTICATE", "AUTHENTICATE OAUTHBEARER", False), ("CONTINUATION", "***", True)]
    assert STATIC not in conn.transcript() and b64(bearer(STATIC)) not in conn.transcript()


def test_imap_sasl_ir_and_an_escaped_authzid(provider):
    odd = "a,b=c@example.test"
    provider.add_account(odd, "unused", oauth_tokens=("odd-token",))
    client = raw_imap(provider)
    ok = client.command("a1", f"AUTHENTICATE OAUTHBEARER {b64(bearer('odd-token', odd))}")[-1]
    assert ok.startswith(b"a1 OK [CAPABILITY ")
    client.command("a2", "LOGOUT")
    client.close()
    (conn,) = imap_connections(provider)
    assert conn.user == odd
    (cmd,) = [c for c in conn.commands if c.name == "AUTHENTICATE"]
    assert cmd.redacted == "a1 AUTHENTICATE OAUTHBEARER ***" and cmd.credentials


def test_imap_without_authzid_logs_in_as_the_tokens_owner(provider):
    client = imap(provider)
    assert client.authenticate("OAUTHBEARER", Responder(bearer(STATIC, None)))[0] == "OK"
    client.logout()
    assert imap_connections(provider)[0].user == OWNER


def test_imap_issued_token_expires_after_its_uses_then_error_challenge_and_ack(provider):
    issue(provider, "mc-at-twice", uses=2)
    for _ in range(2):
        client = imap(provider)
        assert client.authenticate("OAUTHBEARER", Responder(bearer("mc-at-twice")))[0] == "OK"
        client.logout()
    client = imap(provider)
    responder = Responder(bearer("mc-at-twice"))
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
        client.authenticate("OAUTHBEARER", responder)
    (challenge,) = responder.challenges
    assert json.loads(challenge) == ERROR_JSON
    assert client.authenticate("OAUTHBEARER", Responder(bearer(STATIC)))[0] == "OK"  # static: never expires
    client.logout()
    assert provider.call(lambda: provider.store.account(OWNER).issued_tokens["mc-at-twice"].uses) == 2
    conn = imap_connections(provider, 3)[2]
    continuations = [(c.redacted, c.credentials) for c in conn.commands if c.name == "CONTINUATION"]
    assert continuations == [("***", True), ("AQ==", False), ("***", True)]  # the ^A is no secret


def test_imap_error_challenge_on_the_wire_then_no(provider):
    issue(provider, "revoked", lifetime=3600)
    provider.call(lambda: provider.store.account(OWNER).expire_token("revoked"))
    provider.add_account("bob@example.test", "unused")
    client = raw_imap(provider)
    # expired, unknown, someone else's, unknown without a=: the same challenge, then NO
    for token, user in (("revoked", OWNER), ("unknown", OWNER), (STATIC, "bob@example.test"), ("unknown", None)):
        client.send(f"a1 AUTHENTICATE OAUTHBEARER {b64(bearer(token, user))}\r\n".encode())
        line = client.line()
        assert line.startswith(b"+ ") and json.loads(base64.b64decode(line[2:])) == ERROR_JSON, line
        client.send(b"AQ==\r\n")
        assert client.line() == b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    client.send(f"a2 AUTHENTICATE OAUTHBEARER {b64(bearer('unknown'))}\r\n".encode())
    assert client.line().startswith(b"+ ")
    client.send(b"*\r\n")  # RFC 7628 §3.2.2 allows an abort instead of ^A
    assert client.line() == b"a2 BAD Authentication aborted by client.\r\n"
    assert client.command("a3", f"AUTHENTICATE OAUTHBEARER {b64(bearer(STATIC))}")[-1].startswith(b"a3 OK")
    client.close()


MALFORMED = [
    b"a=oauth@example.test,\x01auth=Bearer TOKEN\x01\x01",  # no channel-binding flag
    b"n,a=oauth@example.test\x01auth=Bearer TOKEN\x01\x01",  # header without its closing comma
    b"p=tls-unique,a=oauth@example.test,\x01auth=Bearer TOKEN\x01\x01",  # channel binding
    b"n,u=oauth@example.test,\x01auth=Bearer TOKEN\x01\x01",  # not a=
    b"n,a=oauth=40example.test,\x01auth=Bearer TOKEN\x01\x01",  # = escapes only =2C and =3D
    b"n,a=,\x01auth=Bearer TOKEN\x01\x01",  # empty authzid
    b"n,a=oauth@example.test,\x01auth=Bearer TOKEN\x01",  # one ^A at the end
    b"n,a=oauth@example.test,\x01host=h\x01\x01",  # no auth=
    b"n,a=oauth@example.test,\x01auth=Basic dXNlcjpwdw==\x01\x01",  # not Bearer
    b"n,a=oauth@example.test,\x01auth=Bearer\x01\x01",  # no token
    b"n,a=oauth@example.test,\x01port=imaps\x01auth=Bearer TOKEN\x01\x01",  # port not a number
    b"n,a=oauth@example.test,\x01auth=Bearer TOKEN\x01auth=Bearer TOKEN\x01\x01",  # auth= twice
    b"n,a=oauth@example.test,\x01host\x01auth=Bearer TOKEN\x01\x01",  # not key=value
    b"n,a=j\xfcrgen@example.test,\x01auth=Bearer TOKEN\x01\x01",  # Latin-1 authzid
    b"user=oauth@example.test\x01auth=Bearer TOKEN\x01\x01",  # an XOAUTH2 response
    b"\x01",  # a bare ^A, before any error challenge
    b"",
]


@pytest.mark.parametrize("response", MALFORMED, ids=range(len(MALFORMED)))
def test_imap_malformed_responses_fail_without_crashing(provider, response):
    response = response.replace(b"TOKEN", STATIC.encode())
    client = raw_imap(provider)
    client.send(b"a1 AUTHENTICATE OAUTHBEARER\r\n")
    assert client.line() == b"+ \r\n"
    client.send((b64(response) or "=").encode() + b"\r\n")
    assert client.line() == b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    assert client.command("a2", "NOOP")[-1] == b"a2 OK NOOP completed.\r\n"
    client.close()


def test_imap_undecodable_base64_is_bad(provider):
    client = raw_imap(provider)
    assert client.command("a1", "AUTHENTICATE OAUTHBEARER !!!!")[-1].startswith(b"a1 BAD Invalid authentication data")
    client.close()


# -- SMTP -------------------------------------------------------------------------------------


def test_smtp_ehlo_offers_oauthbearer_and_smtplib_logs_in(provider):
    client = implicit(provider)
    assert client.esmtp_features["auth"].split() == ["PLAIN", "OAUTHBEARER"]
    assert client.auth("OAUTHBEARER", Responder(bearer(STATIC, port=465), text=True))[0] == 235  # AUTH … <IR>
    client.quit()
    client = implicit(provider)
    responder = Responder(bearer(STATIC, None, port=465), text=True)
    assert client.auth("OAUTHBEARER", responder, initial_response_ok=False)[0] == 235  # AUTH, 334, response
    assert responder.challenges == []
    client.quit()
    first, second = smtp_connections(provider, 2)
    assert first.user == second.user == OWNER
    assert [(c.redacted, c.credentials) for c in first.commands if c.name == "AUTH"] == [
        ("AUTH OAUTHBEARER ***", True)]
    assert [(c.name, c.redacted, c.credentials) for c in second.commands if c.name in ("AUTH", "CONTINUATION")] == [
        ("AUTH", "AUTH OAUTHBEARER", False), ("CONTINUATION", "***", True)]
    for conn in (first, second):
        assert STATIC not in conn.transcript()


def test_smtp_issued_token_expires_after_one_use(provider):
    issue(provider, "mc-at-once", uses=1)
    client = implicit(provider)
    assert client.auth("OAUTHBEARER", Responder(bearer("mc-at-once"), text=True))[0] == 235
    client.quit()
    client = implicit(provider)
    responder = Responder(bearer("mc-at-once"), text=True)
    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        client.auth("OAUTHBEARER", responder)
    assert (info.value.smtp_code, info.value.smtp_error) == (535, b"5.7.8 Username and Password not accepted")
    (challenge,) = responder.challenges
    assert json.loads(challenge) == ERROR_JSON
    client.quit()
    _, refused = smtp_connections(provider, 2)
    assert f"OAUTHBEARER for {OWNER}: the access token has expired" in refused.transcript()
    assert [(c.name, c.redacted, c.credentials) for c in refused.commands if c.name in ("AUTH", "CONTINUATION")] == [
        ("AUTH", "AUTH OAUTHBEARER ***", True), ("CONTINUATION", "AQ==", False)]
    assert [(r.status, r.kind) for r in refused.responses if r.status in ("334", "535")] == [
        ("334", "continuation"), ("535", "reply")]
    assert "mc-at-once" not in refused.transcript()


def test_smtp_wrong_user_and_answers_to_the_error_challenge(provider):
    provider.add_account("bob@example.test", "unused")
    client = raw(provider, implicit=True)
    client.cmd("EHLO client.test")
    (challenge,) = client.cmd(f"AUTH OAUTHBEARER {b64(bearer(STATIC, 'bob@example.test'))}")
    assert challenge.startswith(b"334 ") and json.loads(base64.b64decode(challenge[4:])) == ERROR_JSON
    assert client.cmd("AQ==") == [b"535 5.7.8 Username and Password not accepted\r\n"]
    assert client.cmd(f"AUTH OAUTHBEARER {b64(bearer('unknown'))}")[0].startswith(b"334 ")
    assert client.cmd("") == [b"535 5.7.8 Username and Password not accepted\r\n"]  # not ^A: noted
    assert client.cmd(f"AUTH OAUTHBEARER {b64(bearer('unknown'))}")[0].startswith(b"334 ")
    assert client.cmd("*") == [b"501 5.7.0 Authentication aborted\r\n"]
    assert client.code(f"AUTH OAUTHBEARER {b64(bearer(STATIC))}") == 235
    client.cmd("QUIT")
    (conn,) = smtp_connections(provider)
    assert conn.user == OWNER
    transcript = conn.transcript()
    assert transcript.count("answered the error challenge with something other than ^A") == 1
    assert STATIC not in transcript


@pytest.mark.parametrize("response", MALFORMED[:-2], ids=range(len(MALFORMED) - 2))
def test_smtp_malformed_responses_are_501(provider, response):
    client = raw(provider, implicit=True)
    client.cmd("EHLO client.test")
    (reply,) = client.cmd(f"AUTH OAUTHBEARER {b64(response.replace(b'TOKEN', STATIC.encode()))}")
    assert reply.startswith(b"501 5.5.2 OAUTHBEARER")
    assert STATIC.encode() not in reply
    assert client.code("NOOP") == 250
    client.cmd("QUIT")


def test_smtp_continuation_form_with_a_bare_ack_or_nothing_is_501(provider):
    client = raw(provider, implicit=True)
    client.cmd("EHLO client.test")
    for response in ("AQ==", "="):
        assert client.cmd("AUTH OAUTHBEARER") == [b"334 \r\n"]
        assert client.cmd(response)[0].startswith(b"501 5.5.2 OAUTHBEARER")
    client.cmd("QUIT")


def test_config_accepts_oauthbearer():
    spec = from_mapping({"smtp": {"auth_mechanisms": ["PLAIN", "oauthbearer"]},
                         "imap": {"mechanisms": ["PLAIN", "OAUTHBEARER"]}})
    provider = spec.build()
    assert provider.smtp_config.auth_mechanisms == ("PLAIN", "OAUTHBEARER")
    assert "AUTH=OAUTHBEARER" in provider.imap_config.capabilities(tls=True, authenticated=False)
    with pytest.raises(ConfigError, match="did you mean 'OAUTHBEARER'"):
        from_mapping({"smtp": {"auth_mechanisms": ["OAUTHBEARR"]}})
    assert SmtpConfig(auth_mechanisms=("OAUTHBEARER",)).extensions(tls=True)[2] == "AUTH OAUTHBEARER"


def test_password_still_works_next_to_oauthbearer(provider):
    provider.add_account(USER, PASSWORD)
    client = imap(provider)
    assert client.login(USER, PASSWORD)[0] == "OK"
    client.logout()
