"""Hostile and broken clients on raw sockets: the SMTP fake answers each with a proper SMTP
error or a clean close, keeps serving the next client, and still stops on demand.

Bad commands, NUL bytes, binary junk, invalid UTF-8, an endless line, DATA far over SIZE, a
bare-LF "end of data" (SMTP smuggling), a client that never says QUIT and one that vanishes
in the middle of DATA.
"""

from __future__ import annotations

import random
import socket

import pytest

from fake_servers.smtp import SmtpConfig

from .conftest import USER
from .smtputil import TIMEOUT, logged_in_raw, plaintext, raw, server_errors, smtp_connections  # noqa: F401


@pytest.fixture(autouse=True)
def _no_server_errors(server_errors):
    """Garbage must never become an exception inside the fake."""


def still_serving(provider) -> None:
    """A well-behaved client right after the bad one gets a normal session."""
    client = plaintext(provider)
    assert client.noop()[0] == 250
    client.quit()


def codes(replies: list[list[bytes]]) -> list[int]:
    return [int(r[-1][:3]) for r in replies]


def test_unknown_and_malformed_commands_get_5xx(provider):
    client = raw(provider)
    assert client.cmd("XYZZY")[-1].startswith(b"500 5.5.2")
    assert client.cmd("")[-1].startswith(b"500 5.5.2")
    assert client.code("EHLO") == 501
    assert client.code("ehlo client.test") == 250  # verbs are case-insensitive
    assert client.code("MAIL TO:<a@example.test>") == 501
    assert client.code("MAIL FROM:<a@example.test") == 501
    assert client.code("MAIL FROM:<>") == 530  # the null sender parses; authentication is still needed
    client.close()
    conn = smtp_connections(provider)[0]
    assert [c.name for c in conn.commands][:3] == ["XYZZY", "(empty)", "EHLO"]
    still_serving(provider)


def test_nul_bytes_and_invalid_utf8(provider):
    client = raw(provider)
    assert client.cmd(b"NO\0OP")[-1].startswith(b"500 5.5.2")
    assert client.cmd(b"MAIL FROM:<a\0b@example.test>")[-1].startswith(b"500 5.5.2")
    assert client.cmd(b"EHLO \xff\xfe")[-1] == b"500 5.5.2 Error: bad UTF-8 syntax\r\n"
    assert client.cmd(b"\xc3\x28VERB")[-1].startswith(b"500 5.5.2")
    assert client.code("NOOP") == 250
    client.close()
    still_serving(provider)


def test_binary_junk_ends_in_421_and_a_clean_close(provider):
    junk = random.Random(7).randbytes(20_000)
    client = raw(provider)
    client.send(junk + b"\r\n")
    data = client.read_to_end()
    client.close()
    assert data.endswith(b"421 4.7.0 smtp.example.test Error: too many errors\r\n")
    assert all(line[:1] in (b"4", b"5") for line in data.split(b"\r\n") if line)
    conn = smtp_connections(provider)[0]
    assert "server closes: too many errors" in conn.transcript()
    still_serving(provider)


def test_a_long_line_is_refused_and_the_session_goes_on(provider):
    client = raw(provider)
    assert client.cmd(b"NOOP " + b"x" * 20_000)[-1] == b"500 5.5.2 Error: line too long\r\n"
    assert client.code("NOOP") == 250
    client.close()
    conn = smtp_connections(provider)[0]
    assert conn.commands[0].name == "(too long)" and conn.commands[0].redacted == "<line too long: 20007 bytes>"


def test_an_endless_line_is_cut_off(provider):
    client = raw(provider)
    client.send(b"A" * (200 * 1024))  # no CRLF, ever
    data = client.read_to_end()
    client.close()
    assert data == b"500 5.5.2 Error: line too long\r\n"
    smtp_connections(provider)
    still_serving(provider)


def test_data_far_over_size_is_refused_after_the_dot_and_not_kept(make_provider):
    provider = make_provider(smtp=SmtpConfig(size_limit=64 * 1024))
    client = logged_in_raw(provider)
    client.cmd(f"MAIL FROM:<{USER}>")
    client.cmd("RCPT TO:<bob@example.test>")
    assert client.code("DATA") == 354
    line = b"y" * 998 + b"\r\n"
    for _ in range(2048):  # 2 MB
        client.send(line)
    client.send(b".\r\n")
    assert client.reply() == [b"552 5.3.4 Message size exceeds fixed limit\r\n"]
    assert client.code("NOOP") == 250
    client.close()
    (sub,) = provider.submissions()
    assert not sub.accepted and sub.size == 2048 * 1000
    assert len(sub.data) < 200 * 1024  # what went far over the limit was not kept
    still_serving(provider)


def test_a_bare_lf_dot_does_not_end_data(provider):
    """SMTP smuggling: only CRLF "." CRLF ends the message."""
    client = logged_in_raw(provider)
    client.cmd(f"MAIL FROM:<{USER}>")
    client.cmd("RCPT TO:<bob@example.test>")
    client.cmd("DATA")
    client.send(b"Subject: a\r\n\r\nfirst\n.\nMAIL FROM:<evil@example.test>\r\n.\r\n")
    assert client.reply()[0].startswith(b"250 2.0.0")
    client.close()
    (sub,) = provider.submissions()
    assert sub.data == b"Subject: a\r\n\r\nfirst\n.\nMAIL FROM:<evil@example.test>\r\n"


def test_bad_sasl_data(provider):
    client = raw(provider, implicit=True)
    client.cmd("EHLO c")
    assert client.cmd("AUTH PLAIN !!notbase64!!")[-1].startswith(b"501 5.5.2")
    assert client.cmd("AUTH PLAIN AAAA")[-1].startswith(b"501 5.5.2")  # not authzid NUL user NUL password
    assert client.cmd("AUTH PLAIN")[-1] == b"334 \r\n"
    assert client.cmd(b"\xff\xff")[-1].startswith(b"501 5.5.2")
    assert client.code("AUTH") == 501
    assert client.code("AUTH PLAIN a b c") == 501
    assert client.code("NOOP") == 250
    client.close()


def test_a_client_that_never_says_quit_does_not_hold_up_stop(make_provider):
    provider = make_provider()
    idle = raw(provider)
    idle.cmd("EHLO c")
    mid_data = logged_in_raw(provider)
    mid_data.cmd(f"MAIL FROM:<{USER}>")
    mid_data.cmd("RCPT TO:<bob@example.test>")
    mid_data.cmd("DATA")
    mid_data.send(b"Subject: never finished\r\n")
    handshaking = socket.create_connection(("127.0.0.1", provider.smtps_port), timeout=TIMEOUT)  # no ClientHello
    provider.wire.wait_for_connections(3, TIMEOUT, protocol="smtp")
    provider.stop()
    assert all(not c.open for c in provider.wire.select(protocol="smtp"))
    assert provider.submissions() == []
    for sock in (idle.sock, mid_data.sock, handshaking):
        try:
            assert sock.recv(4096) == b""
        except ConnectionResetError:
            pass  # the fake resets what it drops
        sock.close()


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_that_vanishes_mid_data(provider, how):
    client = logged_in_raw(provider)
    client.cmd(f"MAIL FROM:<{USER}>")
    client.cmd("RCPT TO:<bob@example.test>")
    client.cmd("DATA")
    client.send(b"Subject: half\r\n\r\nhalf a mess")
    getattr(client, how)()
    conn = smtp_connections(provider)[0]
    assert "the client vanished in the middle of DATA" in conn.transcript()
    assert provider.submissions() == []
    assert provider.mailboxes(USER)["Sent"] == []
    still_serving(provider)


def test_half_close_still_gets_its_replies(provider):
    client = raw(provider)
    client.send(b"NOOP\r\nQUIT\r\n")
    client.sock.shutdown(socket.SHUT_WR)
    assert client.read_to_end() == b"250 2.0.0 OK\r\n221 2.0.0 Bye\r\n"


def test_plaintext_on_the_tls_port_and_tls_on_the_plaintext_port(provider):
    client = raw(provider, implicit=False, greeting=False)
    client.greeting = client.reply()
    hello = bytes.fromhex("16030100") + random.Random(1).randbytes(300)
    client.send(hello + b"\r\n")
    assert client.reply()[-1][:1] == b"5"
    client.close()
    sock = socket.create_connection(("127.0.0.1", provider.smtps_port), timeout=TIMEOUT)
    sock.sendall(b"EHLO plaintext.test\r\n")
    assert sock.recv(4096) == b""  # the handshake fails; the fake closes
    sock.close()
    conns = smtp_connections(provider, 2)
    assert any(n.text.startswith("TLS handshake failed") for n in conns[1].notes)
    still_serving(provider)
