"""The OAuth 2.0 token endpoint fake and the IMAP fake's XOAUTH2 against the tokens it issues:
grants, deterministic expiry (authentications, runs, seconds), refresh, and an identity that
differs from the address that started (seed 001, "Office 365 OAuth 403")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import urllib.parse

import imapclient
import pytest
from imapclient.exceptions import LoginError

from fake_servers.discovery import HS256_TEST_KEY, read_jwt
from fake_servers.imap.config import ImapConfig
from fake_servers.mailstore import Account, AuthResult

from .discovery_support import PASSWORD, TIMEOUT, USER, make_env  # noqa: F401  (fixture)
from .netutil import twisted_errors  # noqa: F401

XOAUTH2 = ImapConfig(mechanisms=("PLAIN", "LOGIN", "XOAUTH2"))
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """Whatever a client sends, the fakes must not log an error."""


def token(env, **fields) -> tuple[int, dict]:
    reply = env.request(env.discovery.token_url, data=urllib.parse.urlencode(fields).encode(),
                        headers={**FORM, **fields.pop("_headers", {})})
    return reply.status, json.loads(reply.body)


def password_grant(env, username=USER, password=PASSWORD) -> dict:
    status, body = token(env, grant_type="password", username=username, password=password)
    assert status == 200, body
    return body


def imap_login(env, user: str, access_token: str) -> imapclient.IMAPClient:
    context = ssl.create_default_context(cafile=env.ca_file)
    client = imapclient.IMAPClient("127.0.0.1", port=env.provider.imaps_port, ssl=True, ssl_context=context,
                                   timeout=TIMEOUT)
    try:
        client.oauth2_login(user, access_token)
    except Exception:
        client.shutdown()
        raise
    return client


def refused(env, user: str, access_token: str) -> str:
    with pytest.raises(LoginError) as info:
        imap_login(env, user, access_token)
    return str(info.value)


# -- grants ------------------------------------------------------------------------------------


def test_password_grant_issues_a_bearer_token_that_logs_in(make_env):
    env = make_env({"oauth": {"lifetime": 300}}, imap=XOAUTH2)
    assert env.discovery.token_url == f"https://login.example.test:{env.discovery.https_port}/oauth2/token"
    body = password_grant(env)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["access_token"] and body["refresh_token"] and body["scope"]
    claims = read_jwt(body["id_token"])
    assert claims["email"] == claims["preferred_username"] == USER
    assert body["id_token"].endswith(".")  # alg none: unsigned
    client = imap_login(env, USER, body["access_token"])
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()


def test_the_request_is_recorded_with_the_password_redacted(make_env):
    env = make_env({"oauth": {}})
    password_grant(env)
    [(conn, cmd)] = env.http_records()
    assert conn.server == "https" and cmd.tls and cmd.credentials and cmd.name == "POST"
    assert "password=***" in cmd.redacted and PASSWORD.replace(" ", "+") not in cmd.redacted
    assert any("password grant issued a token" in n.text for n in conn.notes)


def test_token_valid_for_one_authentication_then_refresh(make_env):
    env = make_env({"oauth": {"uses": 1}}, imap=XOAUTH2)
    first = password_grant(env)
    imap_login(env, USER, first["access_token"]).logout()
    text = refused(env, USER, first["access_token"])
    assert "[AUTHENTICATIONFAILED]" in text
    # Gmail's shape: an error challenge carrying the JSON status, then NO
    [conn] = [c for c in env.wire.select(protocol="imap")][-1:]
    challenge = next(r.line for r in conn.responses if r.kind == "continuation" and r.line.startswith("+ ey"))
    assert json.loads(base64.b64decode(challenge[2:]))["status"] == "401"
    status, renewed = token(env, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert status == 200 and renewed["access_token"] != first["access_token"]
    imap_login(env, USER, renewed["access_token"]).logout()
    assert [(g.grant_type, g.identity) for g in env.discovery.oauth_grants()] == \
        [("password", USER), ("refresh_token", USER)]


def test_token_valid_until_a_run_then_refresh_works_in_the_next(make_env):
    env = make_env({"oauth": {"until_run": 1}}, imap=XOAUTH2)
    first = password_grant(env)
    imap_login(env, USER, first["access_token"]).logout()
    imap_login(env, USER, first["access_token"]).logout()  # any number of times within run 1
    env.provider.next_run()
    refused(env, USER, first["access_token"])
    status, renewed = token(env, grant_type="refresh_token", refresh_token=first["refresh_token"])
    imap_login(env, USER, renewed["access_token"]).logout()
    assert env.discovery.oauth_grants()[-1].run == 2


def test_issued_tokens_expire_by_the_clock_and_static_ones_never():
    now = [100.0]
    account = Account("a@example.test", "pw", oauth_tokens=("static",))
    account.register_token("t", lifetime=60, clock=lambda: now[0])
    assert account.check_token("t") is AuthResult.OK
    now[0] = 159.9
    assert account.check_token("t") is AuthResult.OK
    now[0] = 160.0
    assert account.check_token("t") is AuthResult.EXPIRED
    assert account.check_token("static") is AuthResult.OK
    assert account.check_token("unknown") is AuthResult.INVALID
    account.register_token("u")
    account.expire_token("u")
    assert account.check_token("u") is AuthResult.EXPIRED


def test_identity_mismatch_names_another_address_and_logs_in_as_it(make_env):
    env = make_env({"oauth": {"identity": "mallory@example.test"}}, imap=XOAUTH2)
    body = password_grant(env)
    claims = read_jwt(body["id_token"])
    assert claims["email"] == claims["preferred_username"] == "mallory@example.test"
    refused(env, USER, body["access_token"])  # not alice's token
    client = imap_login(env, "mallory@example.test", body["access_token"])  # a client that accepted the identity
    client.logout()
    [grant] = env.discovery.oauth_grants()
    assert (grant.requested_by, grant.identity) == (USER, "mallory@example.test")
    assert any(c.user == "mallory@example.test" for c in env.wire.select(protocol="imap"))


def test_hs256_id_token_verifies_with_the_documented_test_key(make_env):
    env = make_env({"oauth": {"signing": "HS256"}})
    id_token = password_grant(env)["id_token"]
    head, body, signature = id_token.split(".")
    assert json.loads(base64.urlsafe_b64decode(head + "==="))["alg"] == "HS256"
    expected = hmac.new(HS256_TEST_KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "===") == expected


def test_client_credentials_for_the_scenario_account(make_env):
    env = make_env({"oauth": {"client_id": "app", "client_secret": "s3cret"}}, imap=XOAUTH2)
    status, body = token(env, grant_type="client_credentials", client_id="app", client_secret="s3cret")
    assert status == 200 and "refresh_token" not in body
    imap_login(env, USER, body["access_token"]).logout()
    basic = base64.b64encode(b"app:s3cret").decode()
    status, body = token(env, grant_type="client_credentials", _headers={"Authorization": f"Basic {basic}"})
    assert status == 200
    status, body = token(env, grant_type="client_credentials", client_id="app", client_secret="wrong")
    assert (status, body["error"]) == (401, "invalid_client")
    status, body = token(env, grant_type="password", username=USER, password=PASSWORD)
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("fields, status, error", [
    ({"grant_type": "password", "username": USER, "password": "wrong"}, 400, "invalid_grant"),
    ({"grant_type": "password", "username": "nobody@example.test", "password": PASSWORD}, 400, "invalid_grant"),
    ({"grant_type": "refresh_token", "refresh_token": "mc-rt-made-up"}, 400, "invalid_grant"),
    ({"grant_type": "authorization_code", "code": "x"}, 400, "unsupported_grant_type"),
    ({}, 400, "unsupported_grant_type"),
])
def test_refused_grants(make_env, fields, status, error):
    env = make_env({"oauth": {}})
    got_status, body = token(env, **fields)
    assert (got_status, body["error"]) == (status, error)


def test_malformed_token_requests(make_env):
    env = make_env({"oauth": {"refresh": False}})
    url = env.discovery.token_url
    assert env.request(url).status == 405
    reply = env.request(url, data=b'{"grant_type": "password"}', headers={"Content-Type": "application/json"})
    assert (reply.status, json.loads(reply.body)["error"]) == (400, "invalid_request")
    assert env.request(url, data=b"grant_type=password&" + b"x" * 100_000, headers=FORM).status == 413
    assert env.request(url.replace("https:", "http:").replace(str(env.discovery.https_port),
                                                             str(env.discovery.http_port)),
                       data=b"grant_type=password", headers=FORM).status == 404
    body = password_grant(env)
    assert "refresh_token" not in body
    status, error = token(env, grant_type="refresh_token", refresh_token="anything")
    assert status == 400
