"""The shared runtime: one asyncio loop in one thread for Twisted and aiosmtpd, and clean stops.

Shutdown is checked from the operating system's side (this process's sockets in
/proc/net/tcp) as well as from Twisted's (delayed calls) and Python's (threads).
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import threading

import pytest

from fake_servers import FakeProvider
from fake_servers.imap.config import ImapConfig
from fake_servers.runtime import LoopUnavailable, runtime
from fake_servers.twisted_io import innermost, raw_socket

from .conftest import PASSWORD, USER
from .netutil import client_context, imaps, logged_in, plain_client, twisted_errors  # noqa: F401

LISTEN, ESTABLISHED = "0A", "01"


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """Nothing here may make the fake log an error."""


def own_tcp_sockets() -> list[tuple[int, str]]:
    """(local port, state) of every TCP socket this process holds open, from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                found.append((int(fields[1].rsplit(":", 1)[1], 16), fields[3]))
    return found


# -- one loop ------------------------------------------------------------------------------------


def test_the_reactor_is_asyncio_based_and_runs_on_the_runtime_thread():
    rt = runtime()
    assert runtime() is rt
    assert type(rt.reactor).__name__ == "AsyncioSelectorReactor"
    assert rt.reactor._asyncioEventloop is rt.loop
    ran_on = rt.call(lambda: (threading.current_thread(), asyncio.get_running_loop()))
    assert ran_on == (rt.thread, rt.loop)


def test_connections_are_served_on_the_runtime_thread(make_provider):
    provider = make_provider()
    threads = set()
    provider.wire.listener = lambda conn, line: threads.add(threading.current_thread())
    imaps(provider).logout()
    assert threads == {runtime().thread}


def test_runtime_call_returns_raises_and_waits():
    from twisted.internet.defer import Deferred

    rt = runtime()
    assert rt.call(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(KeyError):
        rt.call(lambda: {}["missing"])

    def later():
        d = Deferred()
        rt.reactor.callLater(0.01, d.callback, "deferred")
        return d

    assert rt.call(later) == "deferred"

    async def coro():
        await asyncio.sleep(0.01)
        return "coroutine"

    assert rt.call(coro) == "coroutine"
    assert rt.run(coro()) == "coroutine"


def test_runtime_call_from_the_loop_thread_is_refused_not_deadlocked():
    rt = runtime()

    def nested():
        with pytest.raises(LoopUnavailable):
            rt.call(lambda: None)
        return "refused"

    assert rt.call(nested) == "refused"


def test_aiosmtpd_on_the_same_loop_works_alongside_imap(make_provider):
    """An SMTP server started with loop.create_server on the runtime loop delivers straight into
    the store (same thread, no locks), and an idling IMAP client hears about it at once."""
    from aiosmtpd.smtp import SMTP

    provider = make_provider()
    rt = runtime()
    handled_on = []

    class Deliver:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            handled_on.append(threading.current_thread())
            provider.store.account(USER).folder("INBOX").append(envelope.content)
            return "250 2.0.0 Delivered"

    async def start():
        return await asyncio.get_running_loop().create_server(lambda: SMTP(Deliver()), "127.0.0.1", 0)

    server = rt.run(start())
    try:
        port = server.sockets[0].getsockname()[1]
        with logged_in(provider) as raw:
            raw.command("s", "SELECT INBOX")
            raw.send(b"i IDLE\r\n")
            assert raw.line() == b"+ idling\r\n"
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                smtp.sendmail("bob@example.test", [USER], b"Subject: via SMTP\r\n\r\nhello\r\n")
            assert raw.line() == b"* 6 EXISTS\r\n"
            raw.send(b"DONE\r\n")
            raw.until_tagged("i")
            body = raw.command("f", "UID FETCH 6 BODY.PEEK[]")[0]
        assert b"Subject: via SMTP" in body
        assert handled_on == [rt.thread]
    finally:
        async def stop():
            server.close()
            await server.wait_closed()

        rt.run(stop())


# -- clean shutdown ------------------------------------------------------------------------------


def _fake_delayed_calls():
    """Pending Twisted delayed calls scheduled by fake_servers code."""
    def scan():
        return [d for d in runtime().reactor.getDelayedCalls()
                if getattr(getattr(d.func, "__self__", None), "__module__", "").startswith("fake_servers")
                or getattr(d.func, "__module__", "").startswith("fake_servers")]

    return runtime().call(scan)


def test_stop_leaves_nothing_behind(make_provider):
    runtime()
    threads_before = set(threading.enumerate())
    provider = FakeProvider(imap=ImapConfig(login_disabled=False),
                            faults=[{"on": "command", "command": "NOOP", "action": "latency", "seconds": 30},
                                    {"on": "command", "command": "SELECT", "action": "stall"}])
    provider.start()
    provider.add_account(USER, PASSWORD)
    ports = {provider.imap_port, provider.imaps_port}
    assert {(p, LISTEN) for p in ports} <= set(own_tcp_sockets())

    idle = plain_client(provider)  # greeted, doing nothing
    slow = plain_client(provider)
    slow.send(b"n NOOP\r\n")  # its answer waits on a 30 s latency timer
    stalled = logged_in(provider)  # implicit TLS, then stalled
    stalled.send(b"s SELECT INBOX\r\n")
    literal = plain_client(provider)
    literal.send(b"a APPEND INBOX {100}\r\n")  # left inside a literal
    assert literal.line() == b"+ OK\r\n"
    half = socket.create_connection(("127.0.0.1", provider.imaps_port), timeout=5)  # no TLS handshake
    clients = [idle, slow, stalled, literal]
    provider.wire.wait_for_connections(5, timeout=5)
    assert _fake_delayed_calls()  # the latency timer is pending

    provider.stop()

    assert all(not conn.open for conn in provider.wire.connections)  # stop waited for every connection
    assert provider.call(lambda: [f.connections for f in provider._factories]) == [set(), set()]
    assert _fake_delayed_calls() == []
    assert not [s for s in own_tcp_sockets() if s[0] in ports and s[1] in (LISTEN, ESTABLISHED)]
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    for raw in clients:
        with pytest.raises((EOFError, ConnectionResetError, OSError)):
            raw.line()
        raw.close()
    half.close()
    assert set(threading.enumerate()) == threads_before
    provider.stop()  # twice is fine


def test_providers_do_not_leak_file_descriptors():
    def count() -> int:
        return len(os.listdir("/proc/self/fd"))

    def cycle():
        with FakeProvider() as provider:
            provider.add_account(USER, PASSWORD)
            imaps(provider).logout()
            with plain_client(provider) as raw:
                raw.command("x", "LOGOUT")

    cycle()  # first use may open lasting things (the runtime, the reactor's waker)
    before = count()
    for _ in range(5):
        cycle()
    assert count() <= before


def test_stop_without_start_is_harmless():
    provider = FakeProvider()
    provider.stop()
    assert not provider.tls.ca_file.exists()


# -- TCP_NODELAY ---------------------------------------------------------------------------------


def _server_nodelay(provider) -> list[tuple[str, int]]:
    def read():
        out = []
        for factory in provider._factories:
            for proto in factory.connections:
                sock = raw_socket(innermost(proto.transport))
                out.append((factory.name, sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        return sorted(out)

    return provider.call(read)


def test_accepted_sockets_have_tcp_nodelay(make_provider):
    """Without it each command round trip can wait ~40 ms for a delayed ACK."""
    provider = make_provider()
    with plain_client(provider) as plain, logged_in(provider) as implicit, plain_client(provider) as upgraded:
        upgraded.starttls(client_context(provider))
        upgraded.command("n", "NOOP")
        plain.command("n", "NOOP")
        implicit.command("n", "NOOP")
        assert _server_nodelay(provider) == [("imap", 1), ("imap", 1), ("imaps", 1)]
