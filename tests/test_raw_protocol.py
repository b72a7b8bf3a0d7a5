"""The fake under raw bytes: pipelining, literals, fragmentation, malformed and hostile input.

Real clients pipeline, split writes anywhere and disconnect at any moment; fuzzers and broken
clients send garbage. The fake must answer what deserves an answer, never execute what it
must not, and keep serving the connection (where the protocol allows) and every other one.
"""

from __future__ import annotations

import socket
import ssl
import struct

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from fake_servers import FakeProvider
from fake_servers.imap.config import ImapConfig

from .conftest import PASSWORD, USER, populate
from .netutil import client_context, plain_client, tagged_status, twisted_errors  # noqa: F401

PLAIN_LOGIN = ImapConfig(login_disabled=False)
LOGIN = f'LOGIN "{USER}" "{PASSWORD}"'.encode()


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """Whatever the client does, no exception may escape into the fake."""


@pytest.fixture
def provider(make_provider):
    return make_provider(imap=PLAIN_LOGIN)


@pytest.fixture(scope="module")
def shared():
    """One provider for the fuzz tests (starting one per example would dominate the run time)."""
    with FakeProvider(imap=PLAIN_LOGIN) as provider:
        populate(provider)
        yield provider


def still_serves(provider) -> None:
    """A new connection logs in and lists the mailbox."""
    with plain_client(provider) as raw:
        assert tagged_status(raw.command("h1", LOGIN), "h1") == b"OK"
        assert tagged_status(raw.command("h2", "SELECT INBOX"), "h2") == b"OK"


def tags_of(lines: list[bytes]) -> list[bytes]:
    return [line.split(b" ", 1)[0] for line in lines if not line.startswith((b"*", b"+"))]


# -- pipelining and fragmentation ----------------------------------------------------------------


def test_pipelined_commands_in_one_write_are_answered_in_order(provider):
    with plain_client(provider) as raw:
        raw.send(b"a CAPABILITY\r\nb " + LOGIN + b"\r\nc SELECT INBOX\r\nd UID FETCH 1:2 FLAGS\r\ne NOOP\r\n")
        lines = raw.until_tagged("e")
    assert tags_of(lines) == [b"a", b"b", b"c", b"d", b"e"]
    assert all(line.split(b" ")[1] == b"OK" for line in lines if not line.startswith(b"*"))


def test_one_byte_writes_from_the_client(provider):
    script = (b"a " + LOGIN + b"\r\nb SELECT INBOX\r\nc UID FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n"
              b"d APPEND INBOX {9+}\r\nbyte-wise\r\ne UID FETCH 6 BODY.PEEK[]\r\n")
    with plain_client(provider) as raw:
        for byte in script:
            raw.send(bytes([byte]))
        lines = raw.until_tagged("e")
    assert tags_of(lines) == [b"a", b"b", b"c", b"d", b"e"]
    assert b"Subject: Message 2\r\n" in b"".join(lines)
    assert b"BODY[] {9}\r\nbyte-wise)" in b"".join(lines)
    conn = provider.wire.connections[0]
    assert conn.client_bytes() == script
    assert [c.name for c in conn.commands] == ["LOGIN", "SELECT", "UID FETCH", "APPEND", "UID FETCH"]


def test_bare_lf_line_ends_are_accepted(provider):
    with plain_client(provider) as raw:
        raw.send(b"a " + LOGIN + b"\nb NOOP\n")
        assert tags_of(raw.until_tagged("b")) == [b"a", b"b"]


def test_commands_pipelined_after_logout_are_not_executed(provider):
    with plain_client(provider) as raw:
        raw.send(b"a " + LOGIN + b"\r\nb LOGOUT\r\nc CREATE After\r\n")
        lines = raw.until_tagged("b")
        assert raw.closed_by_server()
    assert tags_of(lines) == [b"a", b"b"]
    assert provider.call(lambda: provider.store.account(USER).folder("After")) is None


# -- literals --------------------------------------------------------------------------------------


def test_synchronizing_literals_wait_for_the_continuation(provider):
    with plain_client(provider) as raw:
        raw.send(b'a LOGIN {%d}\r\n' % len(USER))
        assert raw.line() == b"+ OK\r\n"
        raw.send(USER.encode() + b" {%d}\r\n" % len(PASSWORD))
        assert raw.line() == b"+ OK\r\n"
        raw.send(PASSWORD.encode() + b"\r\n")
        assert tagged_status(raw.until_tagged("a"), "a") == b"OK"


def test_non_synchronizing_literals_need_no_continuation(provider):
    message = b"Subject: plus\r\n\r\nliteral+\r\n"
    with plain_client(provider) as raw:
        raw.send(b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(USER), USER.encode(), len(PASSWORD), PASSWORD.encode()))
        raw.send(b"b APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(message), message))
        lines = raw.until_tagged("b")
    assert not any(line.startswith(b"+") for line in lines)
    assert tags_of(lines) == [b"a", b"b"] and tagged_status(lines, "b") == b"OK"
    stored = provider.call(lambda: provider.store.account(USER).folder("INBOX").messages[-1].raw)
    assert stored == message


def test_a_literal_holding_crlf_and_braces_is_data(provider):
    message = b"Subject: tricky\r\n\r\nb NOOP\r\n{5}\r\n"
    with plain_client(provider) as raw:
        raw.command("a", LOGIN)
        raw.send(b"c APPEND INBOX {%d}\r\n" % len(message))
        assert raw.line() == b"+ OK\r\n"
        raw.send(message + b"\r\n")
        assert tags_of(raw.until_tagged("c")) == [b"c"]


# -- malformed input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"\r\n", b"* BAD Error in IMAP command received by server: Empty command line\r\n"),
        (b"(x) NOOP\r\n", b"* BAD Error in IMAP command received by server: Invalid tag\r\n"),
        (b"a\r\n", b"a BAD Error in IMAP command: Missing command\r\n"),
        (b"a FROBNICATE\r\n", b"a BAD Error in IMAP command FROBNICATE: Unknown command.\r\n"),  # parsed fine
        (b'a SELECT "INBOX\r\n', b"a BAD Error in IMAP command: Unterminated quoted string\r\n"),
        (b"a SELECT (INBOX\r\n", b"a BAD Error in IMAP command: Missing ')'\r\n"),
        (b"a SELECT INBOX)\r\n", b"a BAD Error in IMAP command: Unexpected ')'\r\n"),
        (b"a NOOP\rb NOOP\r\n", b"a BAD Error in IMAP command: Bare CR in command line\r\n"),
        (b"a APPEND INBOX {x}\r\n", b"a BAD Error in IMAP command: Invalid literal size\r\n"),
    ],
)
def test_malformed_commands_get_bad_with_a_reason(provider, line, expected):
    with plain_client(provider) as raw:
        raw.send(line)
        assert raw.line() == expected
        assert tagged_status(raw.command("z", "NOOP"), "z") == b"OK"  # the connection goes on
    first = provider.wire.connections[0].commands[0]
    assert first.name == ("FROBNICATE" if b"FROB" in line else "(unparsable)")


def test_an_over_long_line_gets_bad_and_the_connection_goes_on(provider):
    with plain_client(provider) as raw, plain_client(provider) as other:
        raw.send(b"a SELECT " + b"x" * 100_000 + b"\r\n")
        assert raw.line().startswith(b"a BAD Error in IMAP command: Line too long")
        assert tagged_status(raw.command("b", "NOOP"), "b") == b"OK"
        assert tagged_status(other.command("c", "NOOP"), "c") == b"OK"


def test_a_huge_synchronizing_literal_is_refused_before_any_byte_is_sent(provider):
    with plain_client(provider) as raw:
        raw.command("a", LOGIN)
        raw.send(b"b APPEND INBOX {999999999999}\r\n")
        assert raw.line().startswith(b"b BAD Error in IMAP command: Literal too large")
        assert tagged_status(raw.command("c", "NOOP"), "c") == b"OK"
    still_serves(provider)


def test_an_oversized_non_synchronizing_literal_is_refused_and_skipped(make_provider):
    """The client sends LITERAL+ bytes without waiting; the fake answers BAD and reads past them
    so the next command is understood."""
    provider = make_provider(imap=ImapConfig(login_disabled=False, max_append_size=1000))
    with plain_client(provider) as raw:
        raw.command("a", LOGIN)
        raw.send(b"b APPEND INBOX {2000+}\r\n" + b"b NOOP\r\n" * 250 + b"\r\nc NOOP\r\n")
        lines = raw.until_tagged("c")
    assert lines[0].startswith(b"b BAD Error in IMAP command: Literal too large")
    assert tags_of(lines) == [b"b", b"c"]


# -- disconnects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("where", ["mid-literal", "mid-command", "mid-literal-plus", "mid-sasl"])
def test_a_client_that_vanishes_never_crashes_the_fake(provider, where, how):
    raw = plain_client(provider)
    if where != "mid-sasl":
        raw.command("a", LOGIN)
    if where == "mid-literal":
        raw.send(b"b APPEND INBOX {100}\r\n")
        assert raw.line() == b"+ OK\r\n"
        raw.send(b"only ten b")
    elif where == "mid-literal-plus":
        raw.send(b"b APPEND INBOX {100+}\r\nonly ten b")
    elif where == "mid-command":
        raw.send(b"b UID FETCH 1:* (FLAGS BODY.PEEK[HEAD")
    else:
        raw.send(b"b AUTHENTICATE PLAIN\r\n")
        assert raw.line() == b"+ \r\n"
        raw.send(b"AGFsaWNl")
    getattr(raw, how)()
    conn = provider.wire.connections[0]
    assert conn.wait_closed(5)
    still_serves(provider)


def test_plaintext_pipelined_after_starttls_is_never_executed(provider):
    """RFC 3501 §6.2.1 / CVE-2011-0411 style command injection: bytes the client sent behind
    STARTTLS, before the handshake, must be thrown away."""
    with plain_client(provider) as raw:
        raw.send(b"s STARTTLS\r\nx " + LOGIN + b"\r\ny CREATE Injected\r\n")
        assert raw.line() == b"s OK Begin TLS negotiation now.\r\n"
        assert raw.buffer == b""
        raw.sock = client_context(provider).wrap_socket(raw.sock, server_hostname="localhost")
        lines = raw.command("z", "NOOP")
        assert lines == [b"z OK NOOP completed.\r\n"]
        assert tagged_status(raw.command("w", "SELECT INBOX"), "w") == b"BAD"  # x's LOGIN never ran
    conn = provider.wire.connections[0]
    assert [(c.name, c.executed) for c in conn.commands] == [
        ("STARTTLS", True), ("LOGIN", False), ("CREATE", False), ("NOOP", True), ("SELECT", True)]
    assert provider.call(lambda: provider.store.account(USER).folder("Injected")) is None
    # the password crossed the wire in the clear all the same: that is a finding
    assert [text for _, text in provider.wire.credentials_before_tls()] == [f'x LOGIN "{USER}" ***']
    assert "[not executed]" in conn.transcript() and PASSWORD not in conn.transcript()


def test_plaintext_sent_between_starttls_ok_and_the_handshake_is_never_executed(provider):
    with plain_client(provider) as raw:
        raw.command("s", "STARTTLS")
        raw.send(b"y CREATE Injected\r\n")  # arrives where the ClientHello should
        with pytest.raises((ssl.SSLError, OSError)):
            client_context(provider).wrap_socket(raw.sock, server_hostname="localhost")
    conn = provider.wire.connections[0]
    assert conn.wait_closed(5)
    assert provider.call(lambda: provider.store.account(USER).folder("Injected")) is None
    assert [c.name for c in conn.commands] == ["STARTTLS"]  # the TLS layer took the bytes as a bad handshake
    assert conn.tls_at is None
    still_serves(provider)


# -- fuzzing ---------------------------------------------------------------------------------------


@seed(20240611)
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=300).map(lambda b: b.replace(b"\n", b" ").replace(b"{", b"(")))
def test_a_garbage_line_gets_an_answer_and_the_connection_goes_on(shared, garbage):
    with plain_client(shared) as raw:
        raw.command("a", LOGIN)
        raw.send(b"g " + garbage + b"\r\n")
        lines = raw.until_tagged("g")
        assert lines[-1].split(b" ")[1] in (b"OK", b"NO", b"BAD")
        assert tagged_status(raw.command("z", "NOOP"), "z") == b"OK"


@seed(20240612)
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=200),
                          st.sampled_from([b"\r\n", b"\n", b"{5}\r\n", b"{3+}\r\n", b"a NOOP", b"(", b")",
                                           b'"', b"\\", b"[", b"]", b"\x00", b"\xff", b"UID ", b"~{2}\r\n"])),
                max_size=12).map(b"".join))
def test_arbitrary_bytes_never_break_the_fake(shared, garbage):
    with plain_client(shared) as raw:
        raw.send(garbage)
    with plain_client(shared) as other:
        assert tagged_status(other.command("z", "NOOP"), "z") == b"OK"


def test_many_connections_dropped_at_once_leave_the_fake_healthy(provider):
    clients = [plain_client(provider) for _ in range(20)]
    for i, raw in enumerate(clients):
        raw.send(b"a APPEND INBOX {50}\r\n" if i % 2 else b"a LOGI")
    for raw in clients:
        raw.reset() if clients.index(raw) % 3 else raw.close()
    for conn in provider.wire.wait_for_connections(20, timeout=5):
        assert conn.wait_closed(5)
    still_serves(provider)


def test_a_reset_under_tls_mid_handshake_is_harmless(provider):
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", provider.imaps_port), timeout=5)
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    still_serves(provider)

