"""``resolve_to_fakes``: a scenario's names reach the fakes from an in-process client, every
other name fails to resolve, and ``socket`` is restored afterwards, whatever happened."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from fake_servers.discovery import connect_to_entries, resolve_to_fakes

from .discovery_support import make_env  # noqa: F401  (fixture)
from .netutil import twisted_errors  # noqa: F401

MAP = {("autodiscover.example.test", 443): ("127.0.0.1", 40443),
       ("autodiscover.example.test", 80): ("127.0.0.1", 40080)}


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """The fakes must not log errors."""


def test_mapped_pairs_resolve_to_the_fakes():
    with resolve_to_fakes(MAP) as resolver:
        infos = socket.getaddrinfo("autodiscover.example.test", 443, type=socket.SOCK_STREAM)
        assert {info[4] for info in infos} == {("127.0.0.1", 40443)}
        assert socket.getaddrinfo("AUTODISCOVER.example.test.", "http")[0][4] == ("127.0.0.1", 40080)
        # a known name on a port the map does not list: 127.0.0.1 on that port, as the fake DNS says
        assert socket.getaddrinfo("autodiscover.example.test", 993)[0][4] == ("127.0.0.1", 993)
        assert socket.gethostbyname("autodiscover.example.test") == "127.0.0.1"
    assert resolver.looked_up[:2] == [("autodiscover.example.test", 443), ("autodiscover.example.test", 80)]


def test_every_other_name_raises_gaierror():
    with resolve_to_fakes(MAP):
        for name in ("example.com", "www.example.test", "8.8.8.8"):
            with pytest.raises(socket.gaierror):
                socket.getaddrinfo(name, 443)
        with pytest.raises(socket.gaierror):
            socket.gethostbyname("example.com")
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("autodiscover.example.test", 443, socket.AF_INET6)
        # loopback still works (the mail fakes are often addressed as 127.0.0.1)
        assert socket.getaddrinfo("127.0.0.1", 143)[0][4] == ("127.0.0.1", 143)
        assert socket.getaddrinfo("localhost", 143)


def test_socket_is_restored_on_exit_and_on_error():
    originals = (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)
    with resolve_to_fakes(MAP):
        assert socket.getaddrinfo is not originals[0]
        with resolve_to_fakes({("other.test", 443): ("127.0.0.1", 1)}):  # nested: the inner map answers
            assert socket.getaddrinfo("other.test", 443)[0][4] == ("127.0.0.1", 1)
            with pytest.raises(socket.gaierror):
                socket.getaddrinfo("autodiscover.example.test", 443)
        assert socket.getaddrinfo("autodiscover.example.test", 443)[0][4] == ("127.0.0.1", 40443)
    assert (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex) == originals
    with pytest.raises(RuntimeError):
        with resolve_to_fakes(MAP):
            raise RuntimeError("client crashed")
    assert (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex) == originals


def test_nested_blocks_both_record_the_lookups():
    with resolve_to_fakes(MAP) as outer:
        with resolve_to_fakes({("other.test", 443): ("127.0.0.1", 1)}) as inner:
            socket.getaddrinfo("other.test", 443)
        socket.getaddrinfo("autodiscover.example.test", 443)
    assert inner.looked_up == [("other.test", 443)]
    assert outer.looked_up == [("other.test", 443), ("autodiscover.example.test", 443)]


def test_one_client_run_in_another_thread():
    """The harness runs a python client in a worker thread; the patch is process-wide."""
    seen = []

    def client():
        seen.append(socket.getaddrinfo("autodiscover.example.test", 443)[0][4])

    with resolve_to_fakes(MAP):
        worker = threading.Thread(target=client)
        worker.start()
        worker.join(5)
    assert seen == [("127.0.0.1", 40443)]


def test_http_client_reaches_the_fakes_by_name(make_env):
    env = make_env({"autodiscover": {"http": "http_redirect"}})
    with resolve_to_fakes(env.discovery.connect_to):
        conn = http.client.HTTPConnection("autodiscover.example.test", 80, timeout=5)
        conn.request("GET", "/autodiscover/autodiscover.xml")
        response = conn.getresponse()
        assert response.status == 302
        conn.close()
        tls = http.client.HTTPSConnection("autoconfig.example.test", timeout=5, context=env.context())
        tls.request("GET", "/mail/config-v1.1.xml")
        assert tls.getresponse().status == 404  # no autoconfig in this scenario, but TLS verified the name
        tls.close()


def test_connect_to_entries_syntax():
    assert connect_to_entries(MAP) == ["autodiscover.example.test:80:127.0.0.1:40080",
                                       "autodiscover.example.test:443:127.0.0.1:40443"]
