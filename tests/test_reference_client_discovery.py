"""The reference client's account discovery and XOAUTH2, against real discovery fakes.

The client runs as a real process (``python -m reference_client``) with the discovery part of
the contract (MAILCONFORM_AUTODISCOVER_EMAIL, MAILCONFORM_DNS, MAILCONFORM_CONNECT_TO, no IMAP
host or port); it is judged by what the fakes recorded (HTTP requests with and without
credentials, DNS questions, IMAP sessions, OAuth grants), the Maildir it left, its exit
status and stderr. A few parts (DNS, parsing, the time budget) are also driven in-process.
"""

from __future__ import annotations

import base64
import json

import pytest

from fake_servers.discovery import read_jwt
from fake_servers.imap.config import ImapConfig
from fake_servers.smtp.config import SmtpConfig
from reference_client.discover import Limits, discover
from reference_client.discover import autoconfig as client_autoconfig
from reference_client.discover import pox as client_pox
from reference_client.discover.dnsquery import DnsError, DnsServer
from reference_client.discover.names import Names, parse_connect_to
from reference_client.discover.settings import StepFailed
from reference_client.discover.web import Deadline, Web, WebError
from reference_client.errors import ClientError
from reference_client.oauth import claims

from .discovery_client_support import PASSWORD, USER, make_env  # noqa: F401  (fixture)
from .netutil import twisted_errors  # noqa: F401

XOAUTH2 = ImapConfig(mechanisms=("PLAIN", "LOGIN", "XOAUTH2"))
AUTOCONFIG_URL = "GET https://autoconfig.example.test/mail/config-v1.1.xml"
WELL_KNOWN_URL = "GET https://example.test/.well-known/autoconfig/mail/config-v1.1.xml"
POX_ROOT = "POST https://example.test/autodiscover/autodiscover.xml"
POX_AUTODISCOVER = "POST https://autodiscover.example.test/autodiscover/autodiscover.xml"
POX_HTTP = "GET http://autodiscover.example.test/autodiscover/autodiscover.xml"


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """Whatever the client sends, the fakes must not log an error."""


def synced(env, result) -> None:
    assert result.returncode == 0, result.stderr
    assert env.stored() == env.served() and sum(env.stored().values()) == 3


def one_line_error(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1, result.stderr
    return lines[0]


def no_credentials_over_http(env) -> None:
    assert [h for h in env.http() if h.scheme == "http" and h.credentials] == []
    for h in env.http():
        if h.scheme == "http":
            assert PASSWORD.encode() not in h.body and h.method == "GET" and not h.body


# -- Mozilla autoconfig ----------------------------------------------------------------------------


def test_autoconfig_first_url_gives_the_tls_servers(make_env):
    env = make_env({"autoconfig": {}})
    result = env.run_client()
    synced(env, result)
    assert env.urls() == [AUTOCONFIG_URL]
    assert env.http()[0].target == "/mail/config-v1.1.xml?emailaddress=alice@example.test"
    assert not env.http()[0].credentials
    assert {c.server for c in env.mail_connections()} == {"imaps"}
    assert f"discovered IMAP imap.example.test:{env.provider.imaps_port} (tls) from autoconfig" in result.stderr


def test_autoconfig_well_known_when_the_autoconfig_host_has_none(make_env):
    env = make_env({"autoconfig": {"autoconfig": "not_found"}})
    result = env.run_client()
    synced(env, result)
    assert env.urls() == [AUTOCONFIG_URL, WELL_KNOWN_URL]


def test_autoconfig_redirect_to_https_followed(make_env):
    env = make_env({"autoconfig": {"autoconfig": {"answer": "http_redirect",
                                                  "location": "https://example.test/.well-known/autoconfig/mail/"
                                                              "config-v1.1.xml"}}})
    synced(env, env.run_client())
    assert env.urls() == [AUTOCONFIG_URL, WELL_KNOWN_URL]


def test_autoconfig_plaintext_entry_skipped_for_the_starttls_one(make_env):
    env = make_env({"autoconfig": {"incoming": [
        {"hostname": "imap.example.test", "port": "imap", "socket": "plain"},
        {"hostname": "imap.example.test", "port": "imap", "socket": "STARTTLS"}]}})
    result = env.run_client()
    synced(env, result)
    [conn] = env.mail_connections()
    assert conn.server == "imap"
    auth = [cmd for cmd in conn.commands if cmd.name in ("LOGIN", "AUTHENTICATE")]
    assert auth and all(cmd.tls for cmd in auth)
    assert "not used (no TLS): IMAP imap.example.test" in result.stderr


def test_autoconfig_plaintext_only_is_refused_without_connecting(make_env):
    env = make_env({"autoconfig": {"incoming": [{"hostname": "imap.example.test", "port": "imap",
                                                 "socket": "plain"}]}})
    result = env.run_client()
    assert result.returncode == 3, result.stderr
    line = one_line_error(result)
    assert "only servers without TLS" in line and "socketType plain" in line and "imap.example.test" in line
    assert env.mail_connections() == []
    # the other methods were asked before giving up
    assert POX_AUTODISCOVER in env.urls()
    assert any("_imaps._tcp.example.test" in q for q in env.dns_questions())


# -- POX Autodiscover ------------------------------------------------------------------------------


def test_pox_success_after_the_autoconfig_and_root_steps(make_env):
    env = make_env({"autodiscover": {"root": "not_found", "autodiscover": "success"}})
    result = env.run_client()
    synced(env, result)
    assert env.urls() == [AUTOCONFIG_URL, WELL_KNOWN_URL, POX_ROOT, POX_AUTODISCOVER]
    post = env.http()[-1]
    assert b"<EMailAddress>alice@example.test</EMailAddress>" in post.body and b"responseschema/2006a" in post.body
    assert not any(h.credentials for h in env.http())
    assert "from Autodiscover at https://autodiscover.example.test/" in result.stderr


def test_pox_starttls_setting_and_smtp_for_the_outbox(make_env, tmp_path):
    env = make_env({"autodiscover": {"root": {"answer": "success", "imap": {"security": "starttls"},
                                              "smtp": {"security": "ssl"}}}})
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "1.eml").write_bytes(b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n"
                                   b"Message-ID: <o1@example.test>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\n"
                                   b"hello\r\n")
    result = env.run_client(MAILCONFORM_OUTBOX=str(outbox))
    assert result.returncode == 0, result.stderr
    assert sum(env.stored().values()) == 3  # synced first; the sent copy lands in Sent afterwards
    assert [c.server for c in env.mail_connections()] == ["imap"]
    assert [c.server for c in env.mail_connections("smtp")] == ["smtps"]
    assert not list(outbox.iterdir())
    assert len(env.provider.submissions()) == 1


def test_pox_basic_credentials_only_after_a_401_over_https(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "unauthorized", "then": "success"}}})
    synced(env, env.run_client())
    pox = [h for h in env.http() if h.path == "/autodiscover/autodiscover.xml" and h.host.startswith("autodiscover")]
    assert [(h.scheme, h.credentials) for h in pox] == [("https", False), ("https", True)]
    no_credentials_over_http(env)


def test_pox_plaintext_setting_is_refused(make_env):
    env = make_env({"autodiscover": {"root": {"answer": "success", "imap": {"security": "none"}}}})
    result = env.run_client()
    assert result.returncode == 3, result.stderr
    assert "without TLS" in one_line_error(result) and "Encryption none" in result.stderr
    assert env.mail_connections() == []


def test_pox_redirect_addr_restarts_for_the_new_address(make_env):
    env = make_env({"autodiscover": {
        "root": {"answer": "redirect_addr", "address": "alice@other.test"},
        "autodiscover.other.test": {"answer": "success", "imap": {"host": "imap.other.test"}}}})
    result = env.run_client()
    synced(env, result)
    urls = env.urls()
    assert urls[urls.index(POX_ROOT) + 1:] == ["POST https://other.test/autodiscover/autodiscover.xml",
                                              "POST https://autodiscover.other.test/autodiscover/autodiscover.xml"]
    assert b"<EMailAddress>alice@other.test</EMailAddress>" in env.http()[-1].body


def test_pox_redirect_url_followed_over_https(make_env):
    env = make_env({"autodiscover": {
        "root": {"answer": "redirect_url", "url": "https://mail.other.test/autodiscover/autodiscover.xml"},
        "mail.other.test": {"answer": "unauthorized", "then": "success"}}})
    synced(env, env.run_client())
    tail = [(h.host, h.credentials) for h in env.http()][-3:]
    # trusted: reached from the domain's own endpoint over https, so its 401 gets the credentials
    assert tail == [("example.test", False), ("mail.other.test", False), ("mail.other.test", True)]


def test_pox_redirect_url_to_http_is_not_followed(make_env):
    env = make_env({"autodiscover": {
        "root": {"answer": "redirect_url", "url": "http://autodiscover.example.test/autodiscover/autodiscover.xml"},
        "http": {"answer": "success"}}})
    result = env.run_client()
    assert result.returncode == 1
    assert "not an https URL; not followed" in result.stderr
    assert [h for h in env.http() if h.scheme == "http" and h.method == "POST"] == []
    no_credentials_over_http(env)


def test_pox_redirect_loop_stops_after_ten(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "loop",
                                                      "hosts": ["ad1.example.test", "ad2.example.test"]}}})
    result = env.run_client()
    assert result.returncode == 1
    line = one_line_error(result)
    assert "autodiscovery failed" in line and "more than 10 redirects" in line
    loop_hosts = [h for h in env.http() if h.host in ("autodiscover.example.test", "ad1.example.test",
                                                      "ad2.example.test") and h.method == "POST"]
    assert len(loop_hosts) == 11  # the first request and 10 redirects followed
    assert env.mail_connections() == []


def test_http_step_redirect_to_an_https_host_of_the_domain(make_env):
    env = make_env({"autodiscover": {
        "http": {"answer": "http_redirect", "location": "https://mail.example.test/autodiscover/autodiscover.xml"},
        "mail.example.test": {"answer": "unauthorized", "then": "success"}}})
    result = env.run_client()
    synced(env, result)
    assert env.urls()[-4:] == [POX_AUTODISCOVER, POX_HTTP,
                               "POST https://mail.example.test/autodiscover/autodiscover.xml",
                               "POST https://mail.example.test/autodiscover/autodiscover.xml"]
    assert [h.credentials for h in env.http()][-2:] == [False, True]
    no_credentials_over_http(env)


def test_http_step_redirect_outside_the_domain_gets_no_credentials(make_env):
    env = make_env({"autodiscover": {
        "http": {"answer": "http_redirect", "location": "https://autodiscover.evil.test/autodiscover/autodiscover.xml"},
        "autodiscover.evil.test": {"answer": "unauthorized", "then": "success"}}})
    result = env.run_client()
    assert result.returncode == 1
    assert "not sending them" in result.stderr
    assert not any(h.credentials for h in env.http())
    assert env.mail_connections() == []


def test_redirect_addr_from_an_untrusted_endpoint_stays_untrusted(make_env):
    env = make_env({"autodiscover": {
        "http": {"answer": "http_redirect", "location": "https://ad.evil.test/autodiscover/autodiscover.xml"},
        "ad.evil.test": {"answer": "redirect_addr", "address": "alice@evil.test"},
        "evil.test": {"answer": "unauthorized", "then": "success"}}})
    result = env.run_client()
    assert result.returncode == 1
    assert "POST https://evil.test/autodiscover/autodiscover.xml" in env.urls()
    assert not any(h.credentials for h in env.http())
    assert env.mail_connections() == []


def test_http_step_answer_naming_foreign_servers_is_not_used(make_env):
    env = make_env({"autodiscover": {
        "http": {"answer": "http_redirect", "location": "https://autodiscover.evil.test/autodiscover/autodiscover.xml"},
        "autodiscover.evil.test": {"answer": "success", "imap": {"host": "imap.elsewhere.test"}}}})
    result = env.run_client()
    assert result.returncode == 1
    assert "imap.elsewhere.test, outside example.test; an untrusted answer, not used" in result.stderr
    assert env.mail_connections() == []


def test_http_step_settings_over_http_are_ignored(make_env):
    env = make_env({"autodiscover": {"http": "success"}})
    result = env.run_client()
    assert result.returncode == 1
    assert "only a redirect to https is used from http" in result.stderr
    assert env.mail_connections() == []
    no_credentials_over_http(env)


def test_autodiscover_srv_record_followed_over_https(make_env):
    env = make_env({"srv": [{"service": "_autodiscover._tcp", "target": "mail.example.test", "port": "https"}],
                    "autodiscover": {"mail.example.test": "success"}})
    synced(env, env.run_client())
    assert "SRV _autodiscover._tcp.example.test" in env.dns_questions()
    assert env.urls()[-1] == "POST https://mail.example.test/autodiscover/autodiscover.xml"


def test_autodiscover_srv_target_with_a_bad_certificate_is_refused(make_env):
    env = make_env({"srv": [{"service": "_autodiscover._tcp", "target": "mail.example.test", "port": "https"}],
                    "autodiscover": {"mail.example.test": "success"}, "certs": {"mail.example.test": "untrusted"}})
    result = env.run_client()
    assert result.returncode == 1
    assert "invalid certificate from https://mail.example.test" in result.stderr
    assert env.mail_connections() == []


def test_national_cloud_reported_as_unsupported(make_env):
    env = make_env({"autodiscover": {"autodiscover": {"answer": "national_cloud", "cloud": "usgov"}}})
    result = env.run_client()
    assert result.returncode == 1
    line = one_line_error(result)
    assert "national cloud" in line and "not support" in line and "autodiscover-s.office365.us" in line
    assert not any(h.host == "autodiscover-s.office365.us" for h in env.http())
    assert env.mail_connections() == []


def test_http_step_redirect_to_a_national_cloud_stops_discovery(make_env):
    env = make_env({"autodiscover": {"http": {"answer": "http_redirect", "location":
                                              "https://autodiscover-s.office365.us/autodiscover/autodiscover.xml"}}})
    result = env.run_client()
    assert result.returncode == 1
    assert "US Government" in one_line_error(result)
    assert env.urls()[-1] == POX_HTTP  # neither the cloud's endpoint nor the SRV steps were asked
    assert not any("_imaps._tcp" in q for q in env.dns_questions())


def test_authentication_error_names_the_discovered_server(make_env):
    env = make_env({"autoconfig": {}})
    result = env.run_client(MAILCONFORM_PASSWORD="wrong password")
    assert result.returncode == 4
    line = one_line_error(result)
    assert f"(at imap.example.test:{env.provider.imaps_port}, the IMAP server discovered from autoconfig" in line


# -- RFC 6186 ----------------------------------------------------------------------------------------


def test_srv_not_available_target_respected(make_env):
    env = make_env({"srv": [{"service": "_imaps._tcp", "target": "."},
                            {"service": "_imap._tcp", "target": "imap.example.test", "port": "imap"},
                            {"service": "_submissions._tcp", "target": "smtp.example.test", "port": "smtps"}]})
    result = env.run_client()
    synced(env, result)
    assert [c.server for c in env.mail_connections()] == ["imap"]  # STARTTLS; the "." imaps not tried
    assert all(cmd.tls for cmd in env.mail_connections()[0].commands if cmd.name in ("AUTHENTICATE", "LOGIN"))
    assert "from RFC 6186 SRV records of example.test" in result.stderr
    questions = env.dns_questions()
    assert questions.index("SRV _imaps._tcp.example.test") < questions.index("SRV _imap._tcp.example.test")


def test_srv_prefers_implicit_tls(make_env):
    env = make_env({"srv": [{"service": "_imap._tcp", "target": "imap.example.test", "port": "imap"},
                            {"service": "_imaps._tcp", "target": "imap.example.test", "port": "imaps"}]})
    synced(env, env.run_client())
    assert [c.server for c in env.mail_connections()] == ["imaps"]


def test_srv_everything_not_available_fails(make_env):
    env = make_env({"srv": [{"service": "_imaps._tcp", "target": "."}, {"service": "_imap._tcp", "target": "."}]})
    result = env.run_client()
    assert result.returncode == 1
    assert '"." (not available)' in one_line_error(result)
    assert env.mail_connections() == []


def test_all_fail_reports_autodiscovery_failed(make_env):
    env = make_env({})
    result = env.run_client()
    assert result.returncode == 1
    line = one_line_error(result)
    assert "autodiscovery failed for alice@example.test" in line
    for step in ("autoconfig https://autoconfig.example.test", "https://example.test/autodiscover",
                 "_autodiscover._tcp.example.test", "_imaps._tcp.example.test"):
        assert step in line
    assert env.mail_connections() == []
    no_credentials_over_http(env)


# -- in-process: bounded time, DNS, parsing ------------------------------------------------------------


def _discover(env, limits: Limits, clock=None):
    names = Names(parse_connect_to(env.discovery.connect_to_env), DnsServer("127.0.0.1", env.discovery.dns_port))
    options = {"clock": clock} if clock else {}
    return discover(USER, names=names, ca_file=str(env.provider.ca_file), username=USER, password=PASSWORD,
                    limits=limits, **options)


def test_stalling_endpoints_fail_within_the_budget(make_env):
    env = make_env({"autoconfig": {"autoconfig": "stall", "well_known": "stall"},
                    "autodiscover": {"root": "stall", "autodiscover": "stall"}})
    import time

    started = time.monotonic()
    with pytest.raises(ClientError) as info:
        _discover(env, Limits(total=1.0, request=0.3, dns=0.3))
    assert time.monotonic() - started < 3.0
    assert "autodiscovery failed" in str(info.value) and "no answer within 0.3 s" in str(info.value)


def test_budget_spent_stops_before_the_next_step(make_env):
    env = make_env({})
    # the clock jumps past the budget once the first request has been answered
    with pytest.raises(ClientError) as info:
        _discover(env, Limits(total=10.0), clock=lambda: 100.0 if env.http() else 0.0)
    assert "out of time before" in str(info.value)
    assert len(env.http()) == 1


def test_dns_client_reads_srv_records_and_nxdomain(make_env):
    env = make_env({"srv": [{"service": "_imaps._tcp", "target": "imap.example.test", "port": 993, "priority": 5},
                            {"service": "_imaps._tcp", "target": "mail.example.test", "port": 994, "priority": 1},
                            {"service": "_imap._tcp", "target": "."}]})
    dns = DnsServer.parse(env.discovery.dns_address)
    records = dns.srv("_imaps._tcp.example.test")
    assert [(r.target, r.port) for r in records] == [("mail.example.test", 994), ("imap.example.test", 993)]
    [gone] = dns.srv("_imap._tcp.example.test")
    assert not gone.available
    assert dns.srv("_imaps._tcp.nowhere.test") == []
    assert dns.addresses("imap.example.test") == ["127.0.0.1"]
    with pytest.raises(DnsError, match="NXDOMAIN"):
        dns.addresses("nowhere.test")


def test_dns_client_times_out_on_a_silent_server():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(DnsError, match="no answer"):
            DnsServer("127.0.0.1", silent.getsockname()[1]).srv("_imaps._tcp.example.test", timeout=0.2)


def test_connect_to_and_dns_settings_are_checked():
    assert parse_connect_to("a.test:443:127.0.0.1:4000, b.test:80:[::1]:81") == {
        ("a.test", 443): ("127.0.0.1", 4000), ("b.test", 80): ("::1", 81)}
    for bad in ("a.test:443:127.0.0.1", "a.test:x:127.0.0.1:1", "a.test:443:127.0.0.1:0"):
        with pytest.raises(ClientError):
            parse_connect_to(bad)
    assert DnsServer.parse("127.0.0.1:5353") == DnsServer("127.0.0.1", 5353)
    assert DnsServer.parse("[::1]:53") == DnsServer("::1", 53)
    with pytest.raises(ClientError):
        DnsServer.parse("127.0.0.1:dns")


def test_no_credentials_over_http_even_if_asked():
    web = Web(Names(), None, deadline=Deadline(5))
    with pytest.raises(WebError, match="refusing to send credentials over http"):
        web.request("POST", "http://autodiscover.example.test/x", headers={"Authorization": "Basic eA=="})
    with pytest.raises(WebError, match="refusing to send credentials over http"):
        web.request("POST", "http://login.example.test/token", body=b"password=x", secret=True)


def test_pox_answers_parsed():
    doc = (b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">'
           b'<Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">'
           b"<Account><Action>settings</Action>"
           b"<Protocol><Type>IMAP</Type><Server>IMAP.Example.test</Server><Port>993</Port><SSL>on</SSL></Protocol>"
           b"<Protocol><Type>SMTP</Type><Server>smtp.example.test</Server><Port>587</Port><SSL>on</SSL>"
           b"<Encryption>TLS</Encryption></Protocol></Account></Response></Autodiscover>")
    settings = client_pox.parse_answer(doc, "x")
    assert (settings.imap.host, settings.imap.port, settings.imap.security) == ("imap.example.test", 993, "tls")
    assert settings.smtp.security == "starttls"
    plain = doc.replace(b"<SSL>on</SSL></Protocol>", b"<SSL>off</SSL></Protocol>", 1)
    assert client_pox.parse_answer(plain, "x").imap is None
    with pytest.raises(StepFailed, match="DTD"):
        client_pox.parse_answer(b'<!DOCTYPE x [<!ENTITY a "b">]><Autodiscover/>', "x")
    error = (b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">'
             b"<Response><Error><ErrorCode>600</ErrorCode><Message>Invalid Request</Message></Error></Response>"
             b"</Autodiscover>")
    with pytest.raises(StepFailed, match="error 600: Invalid Request"):
        client_pox.parse_answer(error, "x")
    assert client_pox.national_cloud("autodiscover-s.partner.outlook.cn").startswith("China")
    assert client_pox.national_cloud("autodiscover-s.outlook.com") is None


def test_autoconfig_placeholders_and_pop3_entries():
    doc = (b'<clientConfig version="1.1"><emailProvider id="example.test">'
           b'<incomingServer type="pop3"><hostname>pop.example.test</hostname><port>995</port>'
           b"<socketType>SSL</socketType></incomingServer>"
           b'<incomingServer type="imap"><hostname>imap.%EMAILDOMAIN%</hostname><port>993</port>'
           b"<socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>")
    found = client_autoconfig.parse(doc, "x", "example.test")
    assert (found.imap.host, found.imap.port, found.smtp) == ("imap.example.test", 993, None)


# -- OAuth -----------------------------------------------------------------------------------------------


def oauth_logins(env) -> list[tuple[int, str, bool]]:
    """(run, token, accepted) for every AUTHENTICATE XOAUTH2 the IMAP fake received."""
    out = []
    for conn in env.mail_connections():
        cmds = list(conn.commands)
        for i, cmd in enumerate(cmds):
            if cmd.name == "AUTHENTICATE" and b"XOAUTH2" in cmd.raw.upper():
                answer = base64.b64decode(cmds[i + 1].raw.strip()).decode()
                token = answer.split("auth=Bearer ", 1)[1].split("\x01", 1)[0]
                ok = any(r.tag == cmd.tag and r.status == "OK" for r in conn.responses)
                out.append((conn.run, token, ok))
    return out


def test_xoauth2_token_refreshed_when_refused_as_expired(make_env):
    env = make_env({"autoconfig": {}, "oauth": {"uses": 1}}, imap=XOAUTH2)
    first = env.run_client()
    synced(env, first)
    env.provider.next_run()
    second = env.run_client()
    synced(env, second)
    grants = env.discovery.oauth_grants()
    assert [(g.grant_type, g.run) for g in grants] == [("password", 1), ("refresh_token", 2)]
    assert oauth_logins(env) == [(1, grants[0].access_token, True), (2, grants[0].access_token, False),
                                 (2, grants[1].access_token, True)]
    assert "renewing the access token" in second.stderr
    assert "AUTHENTICATE XOAUTH2 (token renewed)" in second.stdout
    token_requests = [h for h in env.http() if h.host == "login.example.test"]
    assert all(h.scheme == "https" and h.method == "POST" for h in token_requests)


def test_smtp_xoauth2_renews_the_token_the_imap_login_used_up(make_env, tmp_path):
    env = make_env({"autoconfig": {}, "oauth": {"uses": 1}}, imap=XOAUTH2,
                   smtp=SmtpConfig(auth_mechanisms=("PLAIN", "LOGIN", "XOAUTH2")))
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "1.eml").write_bytes(b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n"
                                   b"Message-ID: <x1@example.test>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
                                   b"\r\nhello\r\n")
    result = env.run_client(MAILCONFORM_OUTBOX=str(outbox))
    assert result.returncode == 0, result.stderr
    assert "sent 1 message(s) over SMTP with AUTH XOAUTH2" in result.stdout
    first, renewed = env.discovery.oauth_grants()
    assert (first.grant_type, renewed.grant_type) == ("password", "refresh_token")
    [smtp] = env.mail_connections("smtp")
    auths = [cmd.redacted for cmd in smtp.commands if cmd.name == "AUTH"]
    assert len(auths) == 2 and all("XOAUTH2" in a for a in auths)
    assert all(first.access_token.encode() not in cmd.raw or cmd.tls for cmd in smtp.commands)
    assert len(env.provider.submissions()) == 1 and not list(outbox.iterdir())


def test_xoauth2_only_server_token_expires_with_the_run(make_env):
    env = make_env({"oauth": {"until_run": 1}}, imap=ImapConfig(mechanisms=("XOAUTH2",)))
    given = dict(MAILCONFORM_AUTODISCOVER_EMAIL=None, MAILCONFORM_IMAP_HOST="127.0.0.1",
                 MAILCONFORM_IMAP_PORT=str(env.provider.imaps_port), MAILCONFORM_IMAP_SECURITY="tls")
    synced(env, env.run_client(**given))
    env.provider.next_run()
    synced(env, env.run_client(**given))
    assert [(run, ok) for run, _, ok in oauth_logins(env)] == [(1, True), (2, False), (2, True)]
    assert [g.grant_type for g in env.discovery.oauth_grants()] == ["password", "refresh_token"]


def test_identity_mismatch_refuses_the_account(make_env):
    env = make_env({"autoconfig": {}, "oauth": {"identity": "mallory@example.test"}}, imap=XOAUTH2)
    result = env.run_client()
    assert result.returncode == 4
    line = one_line_error(result)
    assert "mallory@example.test" in line and "alice@example.test" in line and "identity mismatch" in line
    [grant] = env.discovery.oauth_grants()
    assert grant.identity == "mallory@example.test"
    assert env.mail_connections() == []  # refused at setup: no mail server contacted
    assert not (env.home / "state" / "oauth-token.json").exists()


def test_tokens_kept_between_runs_privately(make_env):
    env = make_env({"oauth": {"uses": 1}}, imap=XOAUTH2)
    imap = dict(MAILCONFORM_AUTODISCOVER_EMAIL=None, MAILCONFORM_IMAP_HOST="127.0.0.1",
                MAILCONFORM_IMAP_PORT=str(env.provider.imaps_port), MAILCONFORM_IMAP_SECURITY="tls")
    synced(env, env.run_client(**imap))
    kept = json.loads((env.home / "state" / "oauth-token.json").read_text())
    assert kept["access_token"] == env.discovery.oauth_grants()[0].access_token
    assert oct((env.home / "state" / "oauth-token.json").stat().st_mode & 0o777) == "0o600"


def test_id_token_payload_read_without_verifying():
    token = "e30." + base64.urlsafe_b64encode(json.dumps({"email": "a@b.test"}).encode()).decode().rstrip("=") + "."
    assert claims(token) == {"email": "a@b.test"} == read_jwt(token)
    assert claims("not a jwt") == {}
