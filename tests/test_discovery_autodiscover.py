"""Exchange POX Autodiscover fake: each answer kind, as real clients (urllib inside
``resolve_to_fakes``, curl with ``--connect-to``) receive it, and how each request is recorded."""

from __future__ import annotations

import base64
import socket
import ssl
import time
import xml.etree.ElementTree as ET

import pytest

from fake_servers.discovery import recorded_request

from .discovery_support import OUTLOOK_NS, PASSWORD, USER, make_env, pox_body  # noqa: F401  (fixture)
from .netutil import twisted_errors  # noqa: F401

RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
O = f"{{{OUTLOOK_NS}}}"
AD = "autodiscover.example.test"


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """Whatever a client sends, the fake must not log an error."""


def account(reply) -> ET.Element:
    assert reply.status == 200, reply
    root = ET.fromstring(reply.body)
    assert root.tag == f"{{{RESPONSE_NS}}}Autodiscover"
    return root.find(f"{O}Response/{O}Account")


def protocols(reply) -> dict[str, dict[str, str]]:
    return {p.findtext(f"{O}Type"): {child.tag.split("}")[1]: child.text for child in p}
            for p in account(reply).findall(f"{O}Protocol")}


# -- answers ---------------------------------------------------------------------------------


def test_success_lists_imap_and_smtp_with_the_fakes_ports(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "success"}}})
    reply = env.pox(AD)
    assert reply.headers["Content-Type"].startswith("text/xml")
    found = protocols(reply)
    assert found["IMAP"] == {"Type": "IMAP", "Server": "imap.example.test", "Port": str(env.provider.imaps_port),
                             "LoginName": USER, "DomainRequired": "off", "SPA": "off", "SSL": "on",
                             "Encryption": "SSL", "AuthRequired": "on"}
    assert found["SMTP"]["Server"] == "smtp.example.test"
    assert found["SMTP"]["Port"] == str(env.discovery.endpoints["smtps"])
    assert account(reply).findtext(f"{O}Action") == "settings"


def test_success_with_starttls_and_another_login_name(make_env):
    env = make_env({"autodiscover": {"root": {
        "answer": "success",
        "imap": {"host": "mail.example.test", "security": "starttls", "login_name": "EXAMPLE\\alice"},
        "smtp": {"security": "none", "port": 2525}}}})
    found = protocols(env.pox("example.test"))
    assert (found["IMAP"]["Server"], found["IMAP"]["Port"], found["IMAP"]["SSL"], found["IMAP"]["Encryption"]) == \
        ("mail.example.test", str(env.provider.imap_port), "on", "TLS")
    assert found["IMAP"]["LoginName"] == "EXAMPLE\\alice"
    assert (found["SMTP"]["Port"], found["SMTP"]["SSL"], found["SMTP"]["Encryption"]) == ("2525", "off", "None")


def test_endpoints_answer_independently(make_env):
    env = make_env({"autodiscover": {"root": "not_found", "autodiscover": "success"}})
    assert env.pox("example.test").status == 404
    assert env.pox(AD).status == 200
    assert env.pox("mail.example.test").status == 404  # a host without an answer


def test_redirect_addr_and_redirect_url(make_env):
    env = make_env({"autodiscover": {
        "autodiscover": {"answer": "redirect_addr", "address": "alice@other.test"},
        "root": {"answer": "redirect_url", "url": "https://autodiscover.other.test/autodiscover/autodiscover.xml"},
        "autodiscover.other.test": "success"}})
    acct = account(env.pox(AD))
    assert (acct.findtext(f"{O}Action"), acct.findtext(f"{O}RedirectAddr")) == ("redirectAddr", "alice@other.test")
    acct = account(env.pox("example.test"))
    assert (acct.findtext(f"{O}Action"), acct.findtext(f"{O}RedirectUrl")) == \
        ("redirectUrl", "https://autodiscover.other.test/autodiscover/autodiscover.xml")
    assert protocols(env.pox("autodiscover.other.test", "alice@other.test"))["IMAP"]["LoginName"] == \
        "alice@other.test"
    assert "autodiscover.other.test" in env.discovery.names and "other.test" in env.discovery.names


def test_error_answer(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "error", "code": 600, "message": "Invalid Request"}}})
    reply = env.pox(AD)
    root = ET.fromstring(reply.body)
    error = root.find(f"{{{RESPONSE_NS}}}Response/{{{RESPONSE_NS}}}Error")
    assert error.findtext(f"{{{RESPONSE_NS}}}ErrorCode") == "600"
    assert error.findtext(f"{{{RESPONSE_NS}}}Message") == "Invalid Request"


def test_loop_redirects_forever_between_its_hosts(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "loop",
                                                      "hosts": ["a.loop.test", "b.loop.test"]}}})
    host, seen = AD, []
    for _ in range(12):  # more than a conformant client's limit of 10
        acct = account(env.pox(host))
        assert acct.findtext(f"{O}Action") == "redirectUrl"
        url = acct.findtext(f"{O}RedirectUrl")
        seen.append(url)
        host = url.split("/")[2]
    assert seen[:3] == ["https://a.loop.test/autodiscover/autodiscover.xml",
                        "https://b.loop.test/autodiscover/autodiscover.xml",
                        "https://a.loop.test/autodiscover/autodiscover.xml"]
    assert len(env.http_records()) == 12


def test_loop_without_hosts_redirects_to_itself(make_env):
    env = make_env({"autodiscover": {"autodiscover": "loop"}})
    assert account(env.pox(AD)).findtext(f"{O}RedirectUrl") == f"https://{AD}/autodiscover/autodiscover.xml"


@pytest.mark.parametrize("cloud, host", [("china", "autodiscover-s.partner.outlook.cn"),
                                         ("usgov", "autodiscover-s.office365.us")])
def test_national_cloud_redirect_and_its_endpoint(make_env, cloud, host):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "national_cloud", "cloud": cloud}}})
    acct = account(env.pox(AD))
    assert acct.findtext(f"{O}RedirectUrl") == f"https://{host}/autodiscover/autodiscover.xml"
    followed = env.pox(host)  # a client that follows meets a cloud that wants its own Azure AD token
    assert followed.status == 401
    assert followed.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_not_found(make_env):
    env = make_env()
    assert env.pox(AD).status == 404
    assert env.pox("example.test").status == 404


def test_unauthorized_until_valid_basic_credentials(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "unauthorized"}}})
    reply = env.pox(AD)
    assert reply.status == 401 and reply.headers["WWW-Authenticate"] == f'Basic realm="{AD}"'
    wrong = base64.b64encode(f"{USER}:nope".encode()).decode()
    assert env.pox(AD, headers={"Authorization": f"Basic {wrong}"}).status == 401
    good = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    reply = env.pox(AD, headers={"Authorization": f"Basic {good}"})
    assert protocols(reply)["IMAP"]["Server"] == "imap.example.test"
    (c1, anonymous), (_, bad), (c3, basic) = env.http_records()
    assert not anonymous.credentials
    assert bad.credentials and basic.credentials and basic.tls
    assert "Authorization: Basic ***" in basic.redacted and PASSWORD not in basic.redacted
    assert good not in basic.redacted
    assert c3.user == USER


def test_stall_never_answers_and_stop_drops_the_connection(make_env):
    env = make_env({"autodiscover": {"autodiscover": "stall"}})
    sock = socket.create_connection(("127.0.0.1", env.discovery.https_port), timeout=5)
    tls = env.context().wrap_socket(sock, server_hostname=AD)
    body = pox_body()
    tls.sendall(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: " + AD.encode() +
                b"\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    tls.settimeout(0.3)
    with pytest.raises(TimeoutError):
        tls.recv(100)  # the client's timeout is what ends this
    [record] = env.wire.select(protocol="http")
    assert record.open and record.commands[0].name == "POST"
    assert any("stalls" in n.text for n in record.notes)
    env.discovery.stop()
    assert record.wait_closed(5)
    tls.settimeout(5)
    try:
        assert tls.recv(100) == b""
    except (ConnectionResetError, ssl.SSLError):
        pass
    tls.close()


def test_delay_holds_the_answer_back(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "success", "delay": 0.3}}})
    began = time.monotonic()
    assert env.pox(AD).status == 200
    assert time.monotonic() - began >= 0.3


def test_http_step_redirects_to_https_and_is_recorded_without_tls(make_env):
    env = make_env({"autodiscover": {"http": {"answer": "http_redirect",
                                              "location": "https://autodiscover.other.test/autodiscover/autodiscover.xml"},
                                     "autodiscover.other.test": "success"}})
    result = env.curl("-i", f"http://{AD}/autodiscover/autodiscover.xml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP/1.1 302 Found")
    assert "Location: https://autodiscover.other.test/autodiscover/autodiscover.xml" in result.stdout
    [(conn, cmd)] = env.http_records()
    assert (conn.server, conn.protocol, cmd.tls, cmd.credentials, cmd.name) == ("http", "http", False, False, "GET")
    assert conn.responses[0].status == "302"
    assert conn.responses[0].line == ("HTTP/1.1 302 Found Location: "
                                      "https://autodiscover.other.test/autodiscover/autodiscover.xml")
    request = recorded_request(cmd.raw)
    assert (request.method, request.host, request.path) == ("GET", AD, "/autodiscover/autodiscover.xml")


def test_credentials_sent_over_http_are_on_the_record(make_env):
    """The violation the checks look for: an Authorization header on the plain-http step."""
    env = make_env({"autodiscover": {"http": "http_redirect"}})
    result = env.curl("-u", f"{USER}:{PASSWORD}", "-o", "/dev/null", "-w", "%{http_code}",
                      f"http://{AD}/autodiscover/autodiscover.xml")
    assert result.stdout == "302"
    [(conn, cmd)] = env.http_records()
    assert cmd.credentials and not cmd.tls and conn.server == "http"
    assert "Authorization: Basic ***" in cmd.redacted
    assert env.wire.credentials_before_tls(protocol="http")


def test_302_to_another_host_on_the_https_endpoint(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "http_redirect",
                                                      "location": "https://mail.elsewhere.test/autodiscover/autodiscover.xml"},
                                     "mail.elsewhere.test": "success"}})
    reply = env.pox(AD)
    assert reply.status == 302
    assert reply.headers["Location"] == "https://mail.elsewhere.test/autodiscover/autodiscover.xml"
    followed = env.pox(AD, redirects=True)  # urllib turns the POST into a GET: the endpoint says 405
    assert followed.status == 405
    assert [recorded_request(cmd.raw).host for _, cmd in env.http_records()] == [AD, AD, "mail.elsewhere.test"]


def test_curl_posts_over_https_with_connect_to(make_env):
    env = make_env({"autodiscover": {"root": "success"}})
    result = env.curl("-H", "Content-Type: text/xml", "--data-binary", pox_body().decode(),
                      "https://example.test/autodiscover/autodiscover.xml")
    assert result.returncode == 0, result.stderr
    assert "<Type>IMAP</Type>" in result.stdout
    [(conn, cmd)] = env.http_records()
    assert conn.server == "https" and conn.tls and cmd.tls and not cmd.credentials
    assert recorded_request(cmd.raw).host == "example.test"
    assert b"<EMailAddress>alice@example.test</EMailAddress>" in cmd.raw


# -- malformed requests ---------------------------------------------------------------------


@pytest.fixture
def served(make_env):
    return make_env({"autodiscover": {"autodiscover": "success"}})


def post(env, body: bytes, content_type: str | None = "text/xml", method: str = "POST"):
    headers = {"Content-Type": content_type} if content_type else {}
    return env.request(f"https://{AD}/autodiscover/autodiscover.xml", data=body, headers=headers, method=method)


@pytest.mark.parametrize("body, content_type, method, status", [
    (b"<Autodiscover><Request>", "text/xml", "POST", 400),  # does not parse
    (b"not xml at all \x00\xff", "text/xml", "POST", 400),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "text/xml", "POST", 400),
    (b"<Autodiscover><Request><EMailAddress>a@b</EMailAddress></Request></Autodiscover>", "text/xml", "POST", 400),
    (pox_body(), "application/json", "POST", 415),
    (pox_body(), None, "POST", 415),
    (b"<" + b"a" * 200_000 + b"/>", "text/xml", "POST", 413),
    (None, None, "GET", 405),
    (pox_body(), "text/xml", "PUT", 405),
], ids=["unparsable", "binary", "dtd", "no-namespace", "json", "no-content-type", "huge", "get", "put"])
def test_malformed_requests_get_4xx_and_the_fake_keeps_serving(served, body, content_type, method, status):
    reply = post(served, body, content_type, method)
    assert reply.status == status
    assert served.pox(AD).status == 200  # still serving, on a new connection
    cmd = served.http_records()[0][1]
    assert len(cmd.raw) < 8 * 1024  # a huge body is not kept whole


def test_unacceptable_response_schema_is_a_pox_error(served):
    body = pox_body(schema="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006")
    reply = post(served, body)
    assert b"<ErrorCode>601</ErrorCode>" in reply.body


def test_garbage_bytes_and_an_unknown_host(served):
    sock = socket.create_connection(("127.0.0.1", served.discovery.https_port), timeout=5)
    tls = served.context().wrap_socket(sock, server_hostname=AD)
    tls.sendall(b"\x16\x03 this is not HTTP\r\n\r\n")
    assert tls.recv(100).startswith(b"HTTP/1.1 400")
    tls.close()
    assert served.request("https://example.test/anything").status == 404
    sock = socket.create_connection(("127.0.0.1", served.discovery.https_port), timeout=5)
    tls = served.context().wrap_socket(sock, server_hostname=AD)
    tls.sendall(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
    assert tls.recv(100).startswith(b"HTTP/1.1 421")
    tls.close()
    assert served.pox(AD).status == 200


# -- certificates and names -------------------------------------------------------------------


def test_the_certificate_covers_every_name_of_the_scenario(served):
    for name in served.discovery.names:
        result = served.curl("-o", "/dev/null", "-w", "%{http_code}", f"https://{name}/nothing-here")
        assert result.returncode == 0 and result.stdout == "404", (name, result.stderr)


def test_a_host_can_be_given_another_certificate(make_env):
    """SNI: one port, a certificate per host, so "follows it over https with a valid
    certificate" can be tested against an endpoint whose certificate is not valid."""
    env = make_env({"autodiscover": {"mail.example.test": "success", "autodiscover": "success"},
                    "certs": {"mail.example.test": "untrusted"}})
    bad = env.curl("-o", "/dev/null", "https://mail.example.test/autodiscover/autodiscover.xml")
    assert bad.returncode == 60, bad.stderr  # curl: peer certificate cannot be authenticated
    assert env.pox(AD).status == 200
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        env.pox("mail.example.test")


def test_connect_to_map_and_entries(served):
    d = served.discovery
    assert d.connect_to[(AD, 443)] == ("127.0.0.1", d.https_port)
    assert d.connect_to[(AD, 80)] == ("127.0.0.1", d.http_port)
    assert d.connect_to[("imap.example.test", served.provider.imaps_port)] == ("127.0.0.1", served.provider.imaps_port)
    assert f"{AD}:443:127.0.0.1:{d.https_port}" in d.connect_to_entries
    assert f"example.test:80:127.0.0.1:{d.http_port}" in d.connect_to_env.split(",")
    assert {name for name, _ in d.connect_to} == set(d.names)


def test_reset_drops_the_connection_without_an_answer(make_env):
    env = make_env({"autodiscover": {"autodiscover": "reset", "root": "success"}})
    with pytest.raises(http_client_errors()):
        env.pox(AD)
    [record] = env.wire.select(protocol="http")
    assert record.wait_closed(5) and record.responses == []
    assert any("resets" in n.text for n in record.notes)
    assert env.pox("example.test").status == 200


def http_client_errors():
    import http.client
    import urllib.error

    return (http.client.RemoteDisconnected, urllib.error.URLError, ssl.SSLError, ConnectionError)  # any "it broke"
