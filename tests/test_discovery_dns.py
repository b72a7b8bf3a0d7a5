"""The fake DNS: the scenario's names over UDP and TCP, SRV with the fakes' real ports, the
RFC 6186 "." target, MX, NXDOMAIN outside the zone, and every query on the wire."""

from __future__ import annotations

import pytest
from twisted.names import dns

from fake_servers.discovery.zone import Zone
from fake_servers.runtime import runtime

from .discovery_support import dns_query, make_env  # noqa: F401  (fixture)
from .netutil import twisted_errors  # noqa: F401

SRV = [{"service": "_imaps._tcp", "target": "imap.example.test", "port": "imaps"},
       {"service": "_submission._tcp", "target": "smtp.example.test", "port": 2525, "priority": 5, "weight": 3},
       {"service": "_imap._tcp", "target": "."},
       {"service": "_autodiscover._tcp", "target": "mail.example.test", "port": "https"}]


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """A defect in the fake would reach the client as a timeout; fail on it instead."""


@pytest.fixture
def env(make_env):
    return make_env({"srv": SRV, "names": ["extra.example.test"]})


# -- the zone on its own ------------------------------------------------------------------


def test_zone_answers_known_names_and_nxdomain_for_the_rest():
    zone = Zone(["example.test"], srv=[("_imaps._tcp.example.test", "imap.example.test", 993, 0, 1)],
                mx=[("example.test", 10, "mail.example.test")])
    assert zone.answer("Example.Test.", "A").records[0].data == ("127.0.0.1",)
    assert zone.answer("example.test", "AAAA").rcode == "NOERROR"
    assert zone.answer("example.test", "AAAA").records == ()  # NODATA unless asked for
    assert zone.answer("_imaps._tcp.example.test", "SRV").records[0].text() == \
        "SRV _imaps._tcp.example.test 0 1 993 imap.example.test"
    assert zone.answer("_imap._tcp.example.test", "SRV").rcode == "NXDOMAIN"
    assert zone.answer("other.test", "A").rcode == "NXDOMAIN"
    assert [r.type for r in zone.answer("example.test", "ANY").records] == ["A", "MX"]


# -- over real sockets ----------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_records_for_every_name_of_the_scenario(env, tcp):
    for name in ("example.test", "autodiscover.example.test", "autoconfig.example.test", "extra.example.test",
                 "IMAP.example.test."):
        reply = dns_query(env.discovery.dns_port, name, "A", tcp=tcp)
        assert reply.rCode == dns.OK and reply.auth
        assert [a.payload.dottedQuad() for a in reply.answers] == ["127.0.0.1"]


def test_udp_and_tcp_share_one_port(env):
    host, port = env.discovery.dns_address.split(":")
    assert host == "127.0.0.1" and int(port) == env.discovery.dns_port
    assert dns_query(int(port), "example.test", "A", tcp=True).answers


def test_srv_records_carry_the_fakes_real_ports(env):
    port = env.discovery.dns_port
    imaps = dns_query(port, "_imaps._tcp.example.test", "SRV").answers[0].payload
    assert (imaps.port, imaps.target.name) == (env.provider.imaps_port, b"imap.example.test")
    submission = dns_query(port, "_submission._tcp.example.test", "SRV").answers[0].payload
    assert (submission.priority, submission.weight, submission.port) == (5, 3, 2525)
    autodiscover = dns_query(port, "_autodiscover._tcp.example.test", "SRV", tcp=True).answers[0].payload
    assert (autodiscover.port, autodiscover.target.name) == (env.discovery.https_port, b"mail.example.test")


def test_srv_dot_target_means_not_available(env):
    """RFC 6186 §3.4: target "." — the service is decidedly not available at this domain."""
    reply = dns_query(env.discovery.dns_port, "_imap._tcp.example.test", "SRV")
    assert reply.rCode == dns.OK
    payload = reply.answers[0].payload
    assert payload.target.name == b"" and payload.port == 0


def test_names_outside_the_zone_are_nxdomain(env):
    for name, qtype in (("example.com", "A"), ("www.example.test", "A"), ("_pop3s._tcp.example.test", "SRV"),
                        ("autodiscover.other.test", "AAAA")):
        reply = dns_query(env.discovery.dns_port, name, qtype)
        assert reply.rCode == dns.ENAME and not reply.answers, name


def test_known_name_without_such_records_is_an_empty_answer(env):
    reply = dns_query(env.discovery.dns_port, "imap.example.test", "AAAA")
    assert reply.rCode == dns.OK and reply.answers == []
    reply = dns_query(env.discovery.dns_port, "imap.example.test", "MX")
    assert reply.rCode == dns.OK and reply.answers == []


def test_aaaa_only_when_the_scenario_asks(make_env):
    env = make_env({"aaaa": True})
    reply = dns_query(env.discovery.dns_port, "example.test", "AAAA")
    assert [a.payload._address for a in reply.answers] == ["::1"]


def test_mx_default_and_configured(env, make_env):
    reply = dns_query(env.discovery.dns_port, "example.test", "MX")
    assert [(a.payload.preference, a.payload.name.name) for a in reply.answers] == [(10, b"mail.example.test")]
    other = make_env({"mx": [{"host": "mx1.example.test", "preference": 5}, "mx2.example.test"]})
    reply = dns_query(other.discovery.dns_port, "example.test", "MX")
    assert sorted((a.payload.preference, a.payload.name.name) for a in reply.answers) == \
        [(5, b"mx1.example.test"), (10, b"mx2.example.test")]
    assert dns_query(other.discovery.dns_port, "mx1.example.test", "A").answers


def test_every_query_is_recorded_on_the_wire(env):
    port = env.discovery.dns_port
    dns_query(port, "_imaps._tcp.example.test", "SRV")
    dns_query(port, "nowhere.test", "A", tcp=True)
    dns_query(port, "_imap._tcp.example.test", "SRV")
    records = env.wire.select(protocol="dns")
    assert len(records) == 3 and all(r.wait_closed(5) for r in records)  # TCP: once the fake saw the close
    commands = [(cmd.name, cmd.redacted) for _, cmd in env.wire.commands(protocol="dns")]
    assert commands == [("SRV", "SRV _imaps._tcp.example.test"), ("A", "A nowhere.test"),
                        ("SRV", "SRV _imap._tcp.example.test")]
    srv, nx, dot = records
    assert [(r.status, r.line) for r in srv.responses] == \
        [("NOERROR", f"SRV _imaps._tcp.example.test 0 0 {env.provider.imaps_port} imap.example.test")]
    assert nx.responses[0].status == "NXDOMAIN"
    assert dot.responses[0].line == "SRV _imap._tcp.example.test 0 0 0 ."
    assert srv.server == "dns" and srv.bytes_received > 0 and srv.bytes_sent > 0


def test_tcp_connection_is_one_record_for_many_queries(env):
    import socket
    import struct

    with socket.create_connection(("127.0.0.1", env.discovery.dns_port), timeout=5) as sock:
        for n, name in enumerate(("example.test", "imap.example.test")):
            message = dns.Message(id=n, recDes=1)
            message.addQuery(name.encode(), dns.A)
            data = message.toStr()
            sock.sendall(struct.pack("!H", len(data)) + data)
            size = struct.unpack("!H", sock.recv(2))[0]
            while size:
                size -= len(sock.recv(size))
    [record] = env.wire.wait_for_connections(1, timeout=5, protocol="dns")
    assert record.wait_closed(5)
    assert [cmd.redacted for cmd in record.commands] == ["A example.test", "A imap.example.test"]


def test_twisted_names_client_resolves_srv(env):
    """A real resolver (twisted.names' client, on the shared loop) pointed at MAILCONFORM_DNS."""
    from twisted.names import client

    host, port = env.discovery.dns_address.split(":")

    def lookup():
        resolver = client.Resolver(servers=[(host, int(port))])
        return resolver.lookupService("_imaps._tcp.example.test")

    answers, _, _ = runtime().call(lookup)
    assert answers[0].payload.port == env.provider.imaps_port
