"""The wire record, checked against what real clients sent and received.

The harness decides security verdicts from this record ("was a password sent before TLS?",
"how many connections at once?"), so it must hold byte for byte.
"""

from __future__ import annotations

import base64
import threading

import imapclient
import pytest

from fake_servers.imap.config import ImapConfig

from .conftest import PASSWORD, USER
from .netutil import RawClient, client_context, imaps, plain_client, tagged_status, twisted_errors  # noqa: F401

PLAIN_LOGIN = ImapConfig(login_disabled=False)


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """Recording must never break the fake."""


def only(provider):
    conns = provider.wire.connections
    assert len(conns) == 1, conns
    return conns[0]


# -- bytes ----------------------------------------------------------------------------------------


def _conversation(raw: RawClient) -> None:
    raw.command("a1", f'LOGIN "{USER}" "{PASSWORD}"')
    raw.command("a2", "SELECT INBOX")
    raw.command("a3", "UID FETCH 1:3 (FLAGS BODY.PEEK[])")
    raw.send(b"a4 APPEND INBOX {11+}\r\nHello there\r\n")
    raw.until_tagged("a4")
    raw.command("a5", "LOGOUT")
    assert raw.closed_by_server()


def test_both_directions_are_byte_exact_on_plaintext(make_provider):
    provider = make_provider(imap=PLAIN_LOGIN)
    with plain_client(provider) as raw:
        _conversation(raw)
    conn = only(provider)
    assert conn.wait_closed(5)
    assert conn.client_bytes() == bytes(raw.sent)
    assert conn.server_bytes() == bytes(raw.received)
    assert conn.bytes_received == len(raw.sent) and conn.bytes_sent == len(raw.received)
    assert not any(c.tls for c in conn.chunks)


def test_both_directions_are_byte_exact_under_implicit_tls(make_provider):
    """Under TLS the record holds the decrypted bytes, as the client's application saw them."""
    provider = make_provider()
    with RawClient(provider.imaps_port, tls=client_context(provider)) as raw:
        raw.line()
        _conversation(raw)
    conn = only(provider)
    assert conn.wait_closed(5)
    assert conn.client_bytes() == bytes(raw.sent)
    assert conn.server_bytes() == bytes(raw.received)
    assert all(c.tls for c in conn.chunks)
    assert conn.implicit_tls and conn.tls_version.startswith("TLSv1.")


def test_tls_state_is_kept_per_chunk_across_starttls(make_provider):
    provider = make_provider()
    with plain_client(provider) as raw:
        raw.starttls(client_context(provider), tag="s")
        plain_sent, plain_received = bytes(raw.sent), bytes(raw.received)
        _conversation(raw)
    conn = only(provider)
    assert conn.wait_closed(5)
    assert conn.client_bytes(tls=False) == plain_sent == b"s STARTTLS\r\n"
    assert conn.server_bytes(tls=False) == plain_received
    assert conn.client_bytes(tls=True) == bytes(raw.sent)[len(plain_sent):]
    assert conn.server_bytes(tls=True) == bytes(raw.received)[len(plain_received):]
    flags = [c.tls for c in conn.chunks]
    assert flags == sorted(flags)  # plaintext first, then TLS, never back
    assert not conn.implicit_tls and conn.tls_at is not None


def test_timestamps_are_ordered(make_provider):
    provider = make_provider(imap=PLAIN_LOGIN)
    with plain_client(provider) as raw:
        _conversation(raw)
    conn = only(provider)
    assert conn.wait_closed(5)
    for series in (conn.chunks, conn.commands, conn.responses, conn.notes):
        times = [item.at for item in series]
        assert times == sorted(times)
    assert conn.opened_at <= conn.chunks[0].at and conn.chunks[-1].at <= conn.closed_at
    # each tagged response is recorded after the command it answers
    commands = {c.tag: c.at for c in conn.commands}
    for response in conn.responses:
        if response.kind == "tagged":
            assert response.at >= commands[response.tag]


def test_commands_are_parsed_with_their_state(make_provider):
    provider = make_provider()
    client = imaps(provider)
    client.select_folder("INBOX")
    client.fetch([1], ["FLAGS"])
    client.logout()
    seen = [(c.name, c.state, c.tls) for c in only(provider).commands]
    assert seen == [("CAPABILITY", "not-authenticated", True), ("LOGIN", "not-authenticated", True),
                    ("SELECT", "authenticated", True), ("UID FETCH", "selected", True),
                    ("LOGOUT", "selected", True)]
    login = only(provider).commands[1]
    assert login.credentials and not login.mail_data
    assert login.raw.endswith(b"\r\n") and PASSWORD.encode() in login.raw


def test_query_helpers_select_by_run_and_name(make_provider):
    provider = make_provider()
    imaps(provider).logout()
    provider.next_run()
    imaps(provider).noop()
    assert [conn.run for conn in provider.wire.connections] == [1, 2]
    assert len(provider.wire.select(run=2)) == 1
    assert [conn.run for conn, _ in provider.wire.commands("noop")] == [2]


def test_a_command_is_dated_by_its_first_byte(make_provider):
    """A synchronizing literal's "+" answers a command still arriving: the transcript shows the
    command first."""
    provider = make_provider(imap=PLAIN_LOGIN)
    with plain_client(provider) as raw:
        raw.command("a", f'LOGIN "{USER}" "{PASSWORD}"')
        raw.send(b"b APPEND INBOX {5}\r\n")
        assert raw.line() == b"+ OK\r\n"
        raw.send(b"hello\r\n")
        raw.until_tagged("b")
    lines = only(provider).transcript().splitlines()
    append = next(i for i, line in enumerate(lines) if line.startswith("C: b APPEND"))
    assert lines[append + 1] == "S: + OK"


def test_the_record_names_the_logged_in_user(make_provider):
    provider = make_provider()
    imaps(provider).logout()
    assert only(provider).user == USER


def test_injected_lines_carry_their_status_and_code(make_provider):
    provider = make_provider(faults=[{"on": "command", "command": "NOOP", "action": "untagged",
                                      "lines": ["OK [ALERT] look", "2 EXISTS", "BYE [UNAVAILABLE] soon"]}])
    with plain_client(provider) as raw:
        raw.command("n", "NOOP")
    injected = [(r.status, r.code) for r in only(provider).responses if r.injected]
    assert injected == [("OK", "ALERT"), (None, None), ("BYE", "UNAVAILABLE")]


# -- credentials before TLS -------------------------------------------------------------------


def test_login_over_plaintext_is_a_credential_before_tls(make_provider):
    provider = make_provider(imap=PLAIN_LOGIN)
    client = imapclient.IMAPClient("127.0.0.1", port=provider.imap_port, ssl=False, timeout=5)
    client.login(USER, PASSWORD)
    client.logout()
    found = provider.wire.credentials_before_tls()
    assert len(found) == 1 and found[0][1].endswith("LOGIN alice@example.test ***")


def test_a_refused_plaintext_login_still_counts(make_provider):
    """LOGINDISABLED and a NO do not unsend the password: the client exposed it anyway."""
    provider = make_provider()
    with plain_client(provider) as raw:
        assert tagged_status(raw.command("a", f'LOGIN "{USER}" "{PASSWORD}"'), "a") == b"NO"
    assert len(provider.wire.credentials_before_tls()) == 1


@pytest.mark.parametrize("initial_response", [True, False])
def test_authenticate_plain_over_plaintext_is_a_credential_before_tls(make_provider, initial_response):
    provider = make_provider(imap=PLAIN_LOGIN)
    blob = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    with plain_client(provider) as raw:
        if initial_response:
            lines = raw.command("a", b"AUTHENTICATE PLAIN " + blob)
        else:
            raw.send(b"a AUTHENTICATE PLAIN\r\n")
            assert raw.line() == b"+ \r\n"
            raw.send(blob + b"\r\n")
            lines = raw.until_tagged("a")
        assert tagged_status(lines, "a") == b"OK"
    found = provider.wire.credentials_before_tls()
    assert len(found) == 1
    assert PASSWORD not in found[0][1] and blob.decode() not in found[0][1]


def test_imapclient_plain_login_over_plaintext_is_caught(make_provider):
    provider = make_provider(imap=PLAIN_LOGIN)
    client = imapclient.IMAPClient("127.0.0.1", port=provider.imap_port, ssl=False, timeout=5)
    client.plain_login(USER, PASSWORD)
    client.logout()
    assert len(provider.wire.credentials_before_tls()) == 1


def test_login_after_starttls_is_not_before_tls(make_provider):
    provider = make_provider()
    client = imapclient.IMAPClient("127.0.0.1", port=provider.imap_port, ssl=False, timeout=5)
    client.starttls(client_context(provider))
    client.login(USER, PASSWORD)
    client.logout()
    assert provider.wire.credentials_before_tls(secrets=(PASSWORD.encode(),)) == []
    assert any(c.credentials and c.tls for _, c in provider.wire.commands("LOGIN"))


def test_secret_bytes_in_an_unexpected_command_are_caught(make_provider):
    """A client that leaks the password outside LOGIN (here in ID) is caught by its bytes."""
    provider = make_provider()
    with plain_client(provider) as raw:
        raw.command("a", f'ID ("password" "{PASSWORD}")')
    assert provider.wire.credentials_before_tls() == []
    found = provider.wire.credentials_before_tls(secrets=(PASSWORD.encode(),))
    assert len(found) == 1 and "plaintext" in found[0][1]


# -- concurrency -------------------------------------------------------------------------------


def test_peak_concurrency_counts_simultaneous_real_connections(make_provider):
    provider = make_provider()
    clients = [plain_client(provider) for _ in range(4)]
    for raw in clients:
        raw.command("n", "NOOP")
    assert provider.wire.open_count("imap") == 4
    for raw in clients:
        raw.command("x", "LOGOUT")
        raw.close()
    for conn in provider.wire.connections:
        assert conn.wait_closed(5)
    for _ in range(3):  # one after another: never more than one at a time
        with plain_client(provider) as raw:
            raw.command("x", "LOGOUT")
            assert raw.closed_by_server()
        assert provider.wire.connections[-1].wait_closed(5)
    assert provider.wire.peak_concurrency() == 4
    assert provider.wire.open_count() == 0


def test_peak_concurrency_of_sequential_connections_is_one(make_provider):
    provider = make_provider()
    for _ in range(3):
        with plain_client(provider) as raw:
            raw.command("x", "LOGOUT")
            assert raw.closed_by_server()
        assert provider.wire.connections[-1].wait_closed(5)
    assert provider.wire.peak_concurrency() == 1


def test_wait_for_connections_wakes_on_accept(make_provider):
    provider = make_provider()
    result = []
    waiter = threading.Thread(target=lambda: result.append(provider.wire.wait_for_connections(2, timeout=5)))
    waiter.start()
    with plain_client(provider), plain_client(provider):
        waiter.join(5)
    assert len(result[0]) == 2


# -- transcripts -------------------------------------------------------------------------------

SECRET = "Tr0ub4dor&3-unique"


def _secret_provider(make_provider):
    provider = make_provider(imap=PLAIN_LOGIN)
    provider.add_account("bob@example.test", SECRET)
    return provider


def _assert_hidden(provider, *secrets: bytes) -> None:
    for conn in provider.wire.connections:
        shown = conn.transcript()
        for secret in secrets:
            assert secret.decode() not in shown, shown
    # the unredacted form still has them: the check above is not vacuous
    everything = "".join(conn.transcript(redact=False) for conn in provider.wire.connections)
    assert any(secret.decode() in everything for secret in secrets)


def test_transcript_hides_login_passwords(make_provider):
    provider = _secret_provider(make_provider)
    client = imapclient.IMAPClient("127.0.0.1", port=provider.imap_port, ssl=False, timeout=5)
    client.login("bob@example.test", SECRET)
    client.logout()
    _assert_hidden(provider, SECRET.encode())


def test_transcript_hides_a_password_sent_as_a_literal(make_provider):
    provider = _secret_provider(make_provider)
    with plain_client(provider) as raw:
        raw.send(b'a LOGIN "bob@example.test" {%d}\r\n' % len(SECRET))
        assert raw.line().startswith(b"+")
        raw.send(SECRET.encode() + b"\r\n")
        assert tagged_status(raw.until_tagged("a"), "a") == b"OK"
    _assert_hidden(provider, SECRET.encode())


@pytest.mark.parametrize("initial_response", [True, False])
def test_transcript_hides_sasl_blobs(make_provider, initial_response):
    provider = _secret_provider(make_provider)
    blob = base64.b64encode(f"\0bob@example.test\0{SECRET}".encode())
    with plain_client(provider) as raw:
        if initial_response:
            raw.command("a", b"AUTHENTICATE PLAIN " + blob)
        else:
            raw.send(b"a AUTHENTICATE PLAIN\r\n")
            raw.line()
            raw.send(blob + b"\r\n")
            raw.until_tagged("a")
    _assert_hidden(provider, blob)


def test_transcript_hides_sasl_login_steps(make_provider):
    provider = _secret_provider(make_provider)
    user, secret = base64.b64encode(b"bob@example.test"), base64.b64encode(SECRET.encode())
    with plain_client(provider) as raw:
        raw.send(b"a AUTHENTICATE LOGIN\r\n")
        raw.line()
        raw.send(user + b"\r\n")
        raw.line()
        raw.send(secret + b"\r\n")
        assert tagged_status(raw.until_tagged("a"), "a") == b"OK"
    _assert_hidden(provider, secret)


@pytest.mark.parametrize("malformed", [
    b'LOGIN bob@example.test "%s',  # unterminated quoted string
    b"LOGIN bob@example.test %s)",  # stray parenthesis
    b"login bob@example.test (%s",  # unclosed list
])
def test_transcript_hides_passwords_in_malformed_logins(make_provider, malformed):
    """A malformed LOGIN still carries the password: the parse error must not print it."""
    provider = _secret_provider(make_provider)
    with plain_client(provider) as raw:
        assert tagged_status(raw.command("a", malformed % SECRET.encode()), "a") == b"BAD"
    _assert_hidden(provider, SECRET.encode())
    assert len(provider.wire.credentials_before_tls()) == 1


def test_transcript_marks_injected_lines(make_provider):
    provider = make_provider(faults=[{"on": "command", "command": "NOOP", "action": "untagged",
                                      "lines": ["OK [ALERT] injected"]}])
    with plain_client(provider) as raw:
        raw.command("n", "NOOP")
    assert "S: * OK [ALERT] injected   [injected]" in only(provider).transcript()


# -- retention -----------------------------------------------------------------------------------


def test_keep_server_bytes_caps_what_is_kept_but_counts_everything(make_provider):
    provider = make_provider(keep_server_bytes=100)
    with plain_client(provider) as raw:
        raw.command("c", "CAPABILITY")
        raw.command("x", "LOGOUT")
        assert raw.closed_by_server()
    conn = only(provider)
    assert conn.wait_closed(5)
    assert conn.server_bytes() == bytes(raw.received)[:100]
    assert conn.bytes_sent == len(raw.received) > 100
    assert [r.line for r in conn.responses][-1] == "x OK Logout completed."  # lines are always kept
    assert conn.client_bytes() == bytes(raw.sent)  # client bytes are never capped


# -- live listener -------------------------------------------------------------------------------


def test_live_listener_sees_the_conversation_as_it_happens(make_provider):
    provider = make_provider()
    lines: list[str] = []
    logged_out = threading.Event()

    def listen(conn, line):
        lines.append(line)
        if line.startswith("S: ") and "Logout completed" in line:
            logged_out.set()

    provider.wire.listener = listen
    client = imaps(provider)
    assert any(line.startswith("S: * OK") for line in lines)  # the greeting arrived live
    client.logout()
    assert logged_out.wait(5)
    assert lines[0].startswith("-- TLS established")
    assert "C: " + next(c.redacted for c in only(provider).commands if c.name == "LOGIN") in lines
    assert PASSWORD not in "\n".join(lines)
    expected = [line for line in only(provider).transcript().splitlines()[1:]]
    assert lines[: len(expected)] == expected
