"""Mozilla autoconfig fake: config-v1.1.xml at autoconfig.<domain> (https and http) and at
<domain>/.well-known/autoconfig/, with the entries the scenario chose."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from fake_servers.discovery import recorded_request

from .discovery_support import USER, make_env  # noqa: F401  (fixture)
from .netutil import twisted_errors  # noqa: F401

AUTOCONFIG = "https://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=alice%40example.test"
WELL_KNOWN = "https://example.test/.well-known/autoconfig/mail/config-v1.1.xml"


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """Whatever a client sends, the fake must not log an error."""


def servers(body: bytes) -> list[tuple[str, str, str, str, str]]:
    provider = ET.fromstring(body).find("emailProvider")
    return [(s.tag, s.get("type"), s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"))
            for s in provider if s.tag in ("incomingServer", "outgoingServer")]


def test_default_entries_are_the_tls_listeners(make_env):
    env = make_env({"autoconfig": {}})
    reply = env.request(AUTOCONFIG)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/xml")
    assert servers(reply.body) == [
        ("incomingServer", "imap", "imap.example.test", str(env.provider.imaps_port), "SSL"),
        ("outgoingServer", "smtp", "smtp.example.test", str(env.discovery.endpoints["smtps"]), "SSL")]
    provider = ET.fromstring(reply.body).find("emailProvider")
    assert provider.get("id") == "example.test" and provider.findtext("domain") == "example.test"
    assert provider.find("incomingServer").findtext("username") == "%EMAILADDRESS%"


def test_all_three_urls_serve_the_same_document(make_env):
    env = make_env({"autoconfig": {}})
    https = env.request(AUTOCONFIG).body
    assert env.request(AUTOCONFIG.replace("https:", "http:")).body == https
    assert env.request(WELL_KNOWN).body == https
    assert env.request(WELL_KNOWN.replace("https:", "http:")).status == 404  # well-known is https only
    servers_and_tls = [(conn.server, cmd.tls, recorded_request(cmd.raw).path) for conn, cmd in env.http_records()]
    assert servers_and_tls == [("https", True, "/mail/config-v1.1.xml"), ("http", False, "/mail/config-v1.1.xml"),
                               ("https", True, "/.well-known/autoconfig/mail/config-v1.1.xml"),
                               ("http", False, "/.well-known/autoconfig/mail/config-v1.1.xml")]


def test_entries_the_scenario_chooses_in_order_including_plaintext_only(make_env):
    env = make_env({"autoconfig": {
        "display_name": "Example Mail",
        "incoming": [{"hostname": "imap.example.test", "port": "imap", "socket": "plain"},
                     {"type": "pop3", "hostname": "pop.example.test", "port": 110, "socket": "plain",
                      "username": "%EMAILLOCALPART%", "authentication": "password-encrypted"}],
        "outgoing": [{"hostname": "smtp.example.test", "port": 25, "socket": "STARTTLS"}]}})
    body = env.request(AUTOCONFIG).body
    assert servers(body) == [
        ("incomingServer", "imap", "imap.example.test", str(env.provider.imap_port), "plain"),
        ("incomingServer", "pop3", "pop.example.test", "110", "plain"),
        ("outgoingServer", "smtp", "smtp.example.test", "25", "STARTTLS")]
    pop = ET.fromstring(body).find("emailProvider").findall("incomingServer")[1]
    assert (pop.findtext("username"), pop.findtext("authentication")) == ("%EMAILLOCALPART%", "password-encrypted")
    assert ET.fromstring(body).find("emailProvider").findtext("displayName") == "Example Mail"
    assert "pop.example.test" in env.discovery.names


def test_endpoint_answers_are_chosen_per_url(make_env):
    env = make_env({"autoconfig": {"autoconfig": "not_found", "autoconfig_http": "error",
                                   "well_known": {"answer": "http_redirect",
                                                  "location": "https://autoconfig.other.test/mail/config-v1.1.xml"}}})
    assert env.request(AUTOCONFIG).status == 404
    assert env.request(AUTOCONFIG.replace("https:", "http:")).status == 500
    reply = env.request(WELL_KNOWN)
    assert reply.status == 302 and reply.headers["Location"] == "https://autoconfig.other.test/mail/config-v1.1.xml"


def test_without_an_autoconfig_table_every_url_is_404(make_env):
    env = make_env()
    assert env.request(AUTOCONFIG).status == 404
    assert env.request(WELL_KNOWN).status == 404


def test_post_is_refused_and_curl_gets_the_document(make_env):
    env = make_env({"autoconfig": {}})
    assert env.request(AUTOCONFIG, data=b"x=1").status == 405
    result = env.curl(f"https://autoconfig.example.test/mail/config-v1.1.xml?emailaddress={USER}")
    assert result.returncode == 0, result.stderr
    assert "<socketType>SSL</socketType>" in result.stdout


def test_stall_and_reset(make_env):
    import socket

    env = make_env({"autoconfig": {"autoconfig": "stall", "well_known": "reset"}})
    with pytest.raises(OSError):
        env.request(WELL_KNOWN)
    sock = socket.create_connection(("127.0.0.1", env.discovery.https_port), timeout=5)
    tls = env.context().wrap_socket(sock, server_hostname="autoconfig.example.test")
    tls.sendall(b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.test\r\n\r\n")
    tls.settimeout(0.2)
    with pytest.raises(TimeoutError):
        tls.recv(10)
    tls.close()
    stalled = env.wire.select(protocol="http")[-1]
    assert stalled.wait_closed(5)  # the client gave up; the fake saw it
    assert any("stalls" in n.text for n in stalled.notes)
