"""Fault rules, observed from real clients on real sockets: every action and every matcher.

Each test states a rule as a scenario file would, drives a real client (imapclient, or a raw
socket where byte order or timing matters) and checks what the client saw and what the wire
record says the fake did on purpose.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
import time

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError, LoginError

from fake_servers import FakeProvider
from fake_servers.faults import OutboundPipe, Rule, RuleError
from fake_servers.imap.config import ImapConfig
from fake_servers.provider_config import ConfigError, build_provider

from .conftest import PASSWORD, USER
from .netutil import RawClient, client_context, imaps, logged_in, plain_client, tagged_status, twisted_errors  # noqa: F401

PLAIN_LOGIN = ImapConfig(login_disabled=False)


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """A fault must never become an exception inside the fake."""


def rule(**data) -> dict:
    return data


def only_connection(provider):
    (conn,) = provider.wire.connections
    return conn


def responses_to(provider, name: str) -> list:
    """The tagged responses the fake sent to commands called ``name``, in order."""
    out = []
    for conn in provider.wire.connections:
        tags = {c.tag for c in conn.commands if c.name == name}
        out += [r for r in conn.responses if r.kind == "tagged" and r.tag in tags]
    return out


# -- strict loading ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (rule(on="comand", action="close"), "'command'"),
        (rule(on="command", action="rset"), "'reset'"),
        (rule(on="command", nht=2, action="close"), "'nth'"),
        (rule(on="command", command="NOOP", nht=2, actions=[{"action": "close"}]), "'nth'"),
        (rule(on="command", action="delay", secs=1), "'seconds'"),
        (rule(on="command", action="truncate", after_byte=3), "'after_bytes'"),
        (rule(on="command", state="authenticatd", action="close"), "'authenticated'"),
        (rule(on="command", action="uidvalidity", mode="renumbr"), "'renumber'"),
    ],
)
def test_unknown_words_name_the_closest_valid_one(data, named):
    """A typo must fail loudly and point at the fix, never silently disable the fault."""
    with pytest.raises(RuleError) as err:
        Rule.from_dict(data)
    assert named in str(err.value)


@pytest.mark.parametrize(
    "data",
    [
        rule(on="command", nth="2", action="close"),
        rule(on="command", nth=True, action="close"),
        rule(on="command", tls="yes", action="close"),
        rule(on="command", probability="0.5", action="close"),
        rule(on="command", action="delay", seconds="1"),
        rule(on="command", action="slice", size=1.5),
        rule(on="command", action="untagged", lines="OK hi"),
        rule(on="command", action="capabilities", add="IDLE"),
        rule(on="command", command=["NOOP"], action="close"),
    ],
)
def test_wrong_types_are_errors(data):
    with pytest.raises(RuleError, match="must be"):
        Rule.from_dict(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (rule(on="command", probability=1.5, action="close"), "between 0 and 1"),
        (rule(on="command", nth=0, action="close"), "nth"),
        (rule(on="command", times=-1, action="close"), "times"),
        (rule(on="command", action="slice", size=0), "size"),
        (rule(on="command", action="delay", seconds=-1), "seconds"),
        (rule(on="command", action="bandwidth", bytes_per_second=0), "bytes_per_second"),
        (rule(on="command", action="reply"), "status"),
        (rule(on="command", action="truncate", after_bytes=3, then="explode"), "then"),
        (rule(on="command"), "action"),
        (rule(action="close"), "on"),
    ],
)
def test_out_of_range_or_missing_values_are_errors(data, why):
    with pytest.raises(RuleError, match=why):
        Rule.from_dict(data)


@pytest.mark.parametrize(
    "data",
    [
        rule(on="connect", command="LOGIN", action="close"),  # no command at connect: would never fire
        rule(on="command", status="NO", action="close"),  # the status is only known for "response"
        rule(on="run", session=2, action="new_mail"),  # a run boundary has no session
        rule(on="run", action="reset"),  # no connection to reset at a run boundary
        rule(on="tls", action="reply", status="NO"),  # nothing to reply to
    ],
)
def test_rules_that_could_never_take_effect_are_refused(data):
    """A matcher or action that means nothing for its event would make the rule silently inert."""
    with pytest.raises(RuleError):
        Rule.from_dict(data)


def test_provider_names_the_faulty_rule():
    with pytest.raises(RuleError, match=r"faults\[1\]"):
        FakeProvider(faults=[rule(on="connect", action="close"), rule(on="connect", action="clsoe")])


def test_provider_files_report_bad_faults_as_config_errors():
    """Scenario files load faults through the provider config; the error must keep its key."""
    with pytest.raises(ConfigError) as err:
        build_provider({"faults": [{"on": "command", "nht": 2, "action": "close"}]}, "scenario", None, dry_run=True)
    assert "'nth'" in str(err.value)
    assert err.value.key == "nht"


def test_rules_load_from_their_documented_data_form():
    r = Rule.from_dict({"on": "command", "command": "uid fetch", "nth": 1, "action": "reply", "status": "no",
                        "code": "UNAVAILABLE", "text": "later",
                        "actions": [{"action": "untagged", "lines": ["OK [ALERT] x"]}]})
    assert r.match.command == "UID FETCH" and r.match.nth == 1
    assert [a.name for a in r.actions] == ["reply", "untagged"]


def test_status_belongs_to_the_flat_reply_and_to_the_matcher_in_the_list_form():
    flat = Rule.from_dict(rule(on="response", action="reply", status="NO"))
    assert flat.match.status is None and flat.actions[0].get("status") == "NO"
    listed = Rule.from_dict(rule(on="response", status="no", actions=[{"action": "reply", "status": "OK"}]))
    assert listed.match.status == "NO" and listed.actions[0].get("status") == "OK"


# -- reply -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [("NO", "UNAVAILABLE", "Temporary authentication failure"),
     ("NO", "AUTHENTICATIONFAILED", "Invalid credentials (Failure)"),
     ("BAD", None, "User is authenticated but not connected.")],
)
def test_reply_answers_login_instead_of_executing_it(make_provider, status, code, text):
    provider = make_provider(faults=[rule(on="command", command="LOGIN", nth=1, action="reply",
                                          status=status, **({"code": code} if code else {}), text=text)])
    client = imaps(provider, login=False)
    with pytest.raises((LoginError, IMAPClientError)) as err:
        client.login(USER, PASSWORD)
    expected = f"[{code}] {text}" if code else text
    assert expected in str(err.value)
    client.login(USER, PASSWORD)  # nth=1: the retry is executed
    client.logout()
    first, second = responses_to(provider, "LOGIN")
    assert first.injected and first.status == status and first.code == code
    assert not second.injected and second.status == "OK"


def test_reply_replaces_execution(make_provider):
    """A replied command does not run: CREATE answered OK leaves no folder behind."""
    provider = make_provider(faults=[rule(on="command", command="CREATE", action="reply", status="OK",
                                          text="Sure.")])
    client = imaps(provider)
    client.create_folder("Ghost")
    assert not client.folder_exists("Ghost")
    assert provider.call(lambda: provider.store.account(USER).folder("Ghost")) is None


def test_reply_on_response_runs_the_command_then_lies_about_it(make_provider):
    """``on: response`` replies after execution: the folder exists although the client saw NO."""
    provider = make_provider(faults=[rule(on="response", command="CREATE", action="reply", status="NO",
                                          code="SERVERBUG", text="Internal error")])
    client = imaps(provider)
    with pytest.raises(IMAPClientError, match="SERVERBUG"):
        client.create_folder("Real")
    assert client.folder_exists("Real")


def test_greeting_reply_refuses_the_connection(make_provider):
    provider = make_provider(faults=[rule(on="greeting", action="reply", status="BYE", code="UNAVAILABLE",
                                          text="Server busy")])
    with plain_client(provider) as raw:
        assert raw.greeting == b"* BYE [UNAVAILABLE] Server busy\r\n"
        assert raw.closed_by_server()


def test_preauth_greeting_logs_the_client_in_without_credentials(make_provider):
    """imap.tls.preauth-plaintext: a STARTTLS-configured client must not carry on from here."""
    provider = make_provider(faults=[rule(on="greeting", action="reply", status="PREAUTH", text="Welcome back")])
    with plain_client(provider) as raw:
        assert raw.greeting == b"* PREAUTH Welcome back\r\n"
        assert tagged_status(raw.command("l", 'LIST "" INBOX'), "l") == b"OK"
    assert only_connection(provider).user == USER


# -- untagged ----------------------------------------------------------------------------------


def test_untagged_lines_go_before_the_response_by_default(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", action="untagged",
                                          lines=["OK [ALERT] Maintenance at noon", "3 RECENT"])])
    with logged_in(provider) as raw:
        assert raw.command("a", "NOOP") == [b"* OK [ALERT] Maintenance at noon\r\n", b"* 3 RECENT\r\n",
                                            b"a OK NOOP completed.\r\n"]
    injected = [r for r in provider.wire.connections[0].responses if r.injected]
    assert [r.line for r in injected] == ["* OK [ALERT] Maintenance at noon", "* 3 RECENT"]


def test_untagged_lines_after_the_response_follow_it(make_provider):
    provider = make_provider(faults=[rule(on="response", command="NOOP", action="untagged", when="after",
                                          lines=["OK late"])])
    with logged_in(provider) as raw:
        assert raw.command("a", "NOOP") == [b"a OK NOOP completed.\r\n"]
        assert raw.line() == b"* OK late\r\n"


def test_plaintext_injected_after_starttls_ok_reaches_the_client_before_the_handshake(make_provider):
    """imap.tls.response-injection: the lines arrive in plaintext, and are recorded as injected."""
    provider = make_provider(faults=[rule(on="response", command="STARTTLS", action="untagged", when="after",
                                          lines=["CAPABILITY IMAP4rev1 AUTH=PLAIN", "OK [ALERT] spoofed"])])
    with plain_client(provider) as raw:
        raw.send(b"s STARTTLS\r\n")
        assert raw.line() == b"s OK Begin TLS negotiation now.\r\n"
        assert raw.line() == b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
        assert raw.line() == b"* OK [ALERT] spoofed\r\n"
        assert raw.buffer == b""
        raw.sock = client_context(provider).wrap_socket(raw.sock, server_hostname="localhost")
        assert tagged_status(raw.command("a", "NOOP"), "a") == b"OK"
    conn = provider.wire.connections[0]
    injected = [r for r in conn.responses if r.injected]
    assert [r.line for r in injected] == ["* CAPABILITY IMAP4rev1 AUTH=PLAIN", "* OK [ALERT] spoofed"]
    assert not any(r.tls for r in injected)
    assert b"* OK [ALERT] spoofed\r\n" in conn.server_bytes(tls=False)


# -- ending the connection -----------------------------------------------------------------------


def test_bye_sends_bye_and_closes_without_executing(make_provider):
    provider = make_provider(faults=[rule(on="command", command="SELECT", action="bye", code="OVERQUOTA",
                                          text="Account exceeded command or bandwidth limits.")])
    with logged_in(provider) as raw:
        raw.send(b"a SELECT INBOX\r\n")
        assert raw.line() == b"* BYE [OVERQUOTA] Account exceeded command or bandwidth limits.\r\n"
        assert raw.closed_by_server()
    assert provider.wire.connections[0].commands[-1].name == "SELECT"


def test_close_closes_without_a_response(make_provider):
    provider = make_provider(faults=[rule(on="command", command="SELECT", action="close")])
    with logged_in(provider) as raw:
        raw.send(b"a SELECT INBOX\r\n")
        assert raw.closed_by_server()
        assert raw.buffer == b""


def test_reset_gives_the_client_econnreset(make_provider):
    provider = make_provider(imap=PLAIN_LOGIN, faults=[rule(on="command", command="SELECT", action="reset")])
    with logged_in(provider, tls=False) as raw:
        raw.send(b"a SELECT INBOX\r\n")
        with pytest.raises(ConnectionResetError):
            raw.line()


def test_reset_under_tls_is_not_a_clean_tls_close(make_provider):
    """No close_notify: a TLS client sees the stream cut, not an orderly end.

    (CPython's ssl module reports a reset under TLS as an unexpected EOF, so the RST itself
    is checked on plaintext above.)
    """
    provider = make_provider(faults=[rule(on="command", command="SELECT", action="reset")])
    ctx = client_context(provider)
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", provider.imaps_port), timeout=5),
                           server_hostname="localhost", suppress_ragged_eofs=False)
    with sock:
        sock.recv(4096)
        sock.sendall(b"a SELECT INBOX\r\n")
        with pytest.raises((ssl.SSLEOFError, ConnectionResetError)):
            sock.recv(4096)


def test_reset_at_connect_is_seen_by_imapclient(make_provider):
    provider = make_provider(faults=[rule(on="connect", action="reset")])
    with pytest.raises((ConnectionResetError, imaplib.IMAP4.abort)):
        imapclient.IMAPClient("127.0.0.1", port=provider.imap_port, ssl=False, timeout=5)


def test_reset_on_response_drops_the_response_from_the_record(make_provider):
    """The record holds what the client got: a response reset away was never sent."""
    provider = make_provider(imap=PLAIN_LOGIN, faults=[rule(on="response", command="NOOP", action="reset")])
    with logged_in(provider, tls=False) as raw:
        raw.send(b"a NOOP\r\n")
        with pytest.raises(ConnectionResetError):
            raw.line()
    conn = provider.wire.connections[0]
    assert conn.wait_closed(5)
    assert not any(r.tag == "a" for r in conn.responses)
    assert b"a OK" not in conn.server_bytes()


@pytest.mark.parametrize("action", ["bye", "close", "reset", "stall"])
def test_commands_pipelined_behind_an_ending_fault_are_never_executed(make_provider, action):
    """A server that said BYE, closed, reset or hung does not go on changing the mailbox."""
    provider = make_provider(imap=PLAIN_LOGIN, faults=[rule(on="command", command="SELECT", action=action)])
    with logged_in(provider, tls=False) as raw:
        raw.send(b"a SELECT INBOX\r\nb CREATE Ghost\r\nc STORE 1 +FLAGS (\\Deleted)\r\n")
        if action == "stall":
            raw.send(b"d LOGOUT\r\n")
            with pytest.raises((socket.timeout, TimeoutError)):
                raw.sock.settimeout(0.3)
                raw.line()
        else:
            with pytest.raises((EOFError, ConnectionResetError)):
                while True:
                    raw.line()
    conn = provider.wire.connections[0]
    if action != "stall":
        assert conn.wait_closed(5)
    assert [c.name for c in conn.commands][-1] == "SELECT"
    assert provider.call(lambda: provider.store.account(USER).folder("Ghost")) is None


def test_commands_pipelined_behind_a_truncation_are_never_executed(make_provider):
    provider = make_provider(imap=PLAIN_LOGIN, faults=[rule(on="response", command="NOOP", action="truncate",
                                                            after_bytes=3, then="close")])
    with logged_in(provider, tls=False) as raw:
        raw.send(b"a NOOP\r\nb CREATE Ghost\r\n")
        assert raw.read_to_end() == b"a O"
    assert provider.call(lambda: provider.store.account(USER).folder("Ghost")) is None


# -- time --------------------------------------------------------------------------------------


def _round_trip(raw: RawClient, tag: str, text: str) -> float:
    start = time.monotonic()
    raw.command(tag, text)
    return time.monotonic() - start


def test_delay_holds_one_response_back_and_keeps_order(make_provider):
    provider = make_provider(faults=[rule(on="response", command="NOOP", nth=1, action="delay", seconds=0.3)])
    with logged_in(provider) as raw:
        start = time.monotonic()
        raw.send(b"a NOOP\r\nb CAPABILITY\r\n")
        first = raw.line()
        elapsed = time.monotonic() - start
        assert first == b"a OK NOOP completed.\r\n"  # b was answered at once but waits its turn
        assert raw.until_tagged("b")[-1].startswith(b"b OK")
        assert elapsed >= 0.25
    responses = provider.wire.connections[0].responses
    a = next(r for r in responses if r.tag == "a")
    commands = provider.wire.connections[0].commands
    assert a.at - next(c for c in commands if c.tag == "a").at >= 0.25  # recorded when it was sent


def test_latency_delays_every_later_write(make_provider):
    provider = make_provider(faults=[rule(on="tls", action="latency", seconds=0.1)])
    with logged_in(provider) as raw:  # implicit TLS: latency from the greeting on
        times = [_round_trip(raw, f"n{i}", "NOOP") for i in range(3)]
        raw.send(b"p1 NOOP\r\np2 CAPABILITY\r\np3 NOOP\r\n")
        tags = [line.split(b" ")[0] for line in raw.until_tagged("p3") if not line.startswith(b"*")]
    assert min(times) >= 0.09
    assert tags == [b"p1", b"p2", b"p3"]


class FakeClock:
    """Monotonic time that only moves when a timer runs."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class RecordingSink:
    """A sink on a fake clock: it records the waits the pipe asks for and runs them at once."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.written: list[bytes] = []
        self.delays: list[float] = []
        self.pending: list = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        pass

    def abort(self, flush: bool = False) -> None:
        pass

    def call_later(self, delay: float, fn):
        self.delays.append(delay)
        self.pending.append((delay, fn))

    def run_timers(self) -> None:
        while self.pending:
            delay, fn = self.pending.pop(0)
            self.clock.now += delay
            fn()


def _jitter_delays(monkeypatch, seed: int) -> list[float]:
    from fake_servers.faults import transport

    clock = FakeClock()
    monkeypatch.setattr(transport, "time", clock)
    sink = RecordingSink(clock)
    pipe = OutboundPipe(sink, seed=seed)
    pipe.shaping.latency, pipe.shaping.jitter = 0.05, 1.0
    for i in range(6):
        pipe.write(b"line %d\r\n" % i)
        sink.run_timers()
    assert sink.written == [b"line %d\r\n" % i for i in range(6)]
    return sink.delays


def test_latency_jitter_is_seeded(monkeypatch):
    """Same seed, same jitter draws (so a failing run can be replayed); another seed differs."""
    first, second, other = (_jitter_delays(monkeypatch, seed) for seed in (3, 3, 4))
    assert first == second
    assert first != other
    assert all(0.05 <= d <= 1.05 for d in first) and len(set(first)) == len(first)


def test_stall_times_out_the_client_and_spares_other_connections(make_provider):
    provider = make_provider(faults=[rule(on="command", command="SELECT", session=1, action="stall")])
    stalled = imaps(provider, timeout=0.5)
    with pytest.raises((socket.timeout, TimeoutError)):
        stalled.select_folder("INBOX")
    healthy = imaps(provider)
    assert healthy.select_folder("INBOX")[b"EXISTS"] == 5
    healthy.logout()
    first = provider.wire.connections[0]
    assert first.open  # the fake keeps the stalled connection open until the client gives up
    stalled.shutdown()
    assert first.wait_closed(5)


def test_stall_at_connect_is_a_blackhole(make_provider):
    """imap.conn.blackhole: accepted, never greeted; the client's own timeout must fire."""
    provider = make_provider(faults=[rule(on="connect", session=1, action="stall")])
    with pytest.raises((socket.timeout, TimeoutError)):
        imapclient.IMAPClient("127.0.0.1", port=provider.imap_port, ssl=False, timeout=0.3)
    with plain_client(provider) as raw:  # session 2 is greeted
        assert raw.greeting.startswith(b"* OK")


def test_delay_at_connect_holds_the_greeting_back(make_provider):
    provider = make_provider(faults=[rule(on="connect", action="delay", seconds=0.3)])
    start = time.monotonic()
    with plain_client(provider) as raw:
        assert raw.greeting.startswith(b"* OK")
    assert time.monotonic() - start >= 0.25


# -- shaping -----------------------------------------------------------------------------------


def test_slice_one_byte_writes_still_parse(make_provider):
    provider = make_provider(messages=2, faults=[rule(on="command", command="UID FETCH", action="slice", size=1)])
    client = imaps(provider)
    client.select_folder("INBOX")
    fetched = client.fetch([1, 2], ["BODY.PEEK[]", "FLAGS"])
    assert fetched[2][b"BODY[]"] == provider.call(lambda: provider.store.account(USER).folder("INBOX").by_uid(2).raw)
    client.logout()
    conn = provider.wire.connections[0]
    fetch_at = next(c.at for c in conn.commands if c.name == "UID FETCH")
    after = [c for c in conn.chunks if c.sender == "server" and c.at > fetch_at]
    assert len(after) > 100 and all(len(c.data) == 1 for c in after)


def _fetch_line(uid: int, raw_message: bytes) -> bytes:
    return b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (uid, uid, len(raw_message))


@pytest.mark.parametrize("then", ["reset", "close"])
def test_truncate_inside_a_fetch_literal(make_provider, then):
    """imap.net.reset-mid-fetch: exactly N bytes of the response arrive, then the connection ends."""
    provider = make_provider(messages=1, imap=PLAIN_LOGIN,
                             faults=[rule(on="response", command="UID FETCH", action="truncate", after_bytes=60,
                                          then=then)])
    message = provider.call(lambda: provider.store.account(USER).folder("INBOX").by_uid(1).raw)
    with logged_in(provider, tls=False) as raw:
        raw.command("s", "SELECT INBOX")
        raw.send(b"f UID FETCH 1 BODY.PEEK[]\r\n")
        got = b""
        if then == "reset":
            with pytest.raises(ConnectionResetError):
                while True:
                    got += raw.exactly(1)
        else:
            got = raw.read_to_end()
    head = _fetch_line(1, message)
    assert len(head) < 60 < len(head) + len(message)  # the cut is inside the literal
    assert got == (head + message)[:60]


def test_truncate_makes_imapclient_fail_rather_than_return_a_short_message(make_provider):
    provider = make_provider(messages=1, faults=[rule(on="response", command="UID FETCH", action="truncate",
                                                      after_bytes=60)])
    client = imaps(provider)
    client.select_folder("INBOX")
    with pytest.raises((ConnectionResetError, imaplib.IMAP4.abort, ssl.SSLError)):
        client.fetch([1], ["BODY.PEEK[]"])


def test_bandwidth_cap_slows_a_large_response(make_provider):
    provider = make_provider(messages=0, faults=[rule(on="command", command="UID FETCH", action="bandwidth",
                                                      bytes_per_second=4000)])
    big = b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n"
    provider.call(lambda: provider.store.account(USER).folder("INBOX").append(big))
    client = imaps(provider)
    client.select_folder("INBOX")
    start = time.monotonic()
    fetched = client.fetch([1], ["BODY.PEEK[]"])
    elapsed = time.monotonic() - start
    assert fetched[1][b"BODY[]"] == big
    assert elapsed >= 0.5  # ~3,050 bytes at 4,000 B/s, less the first piece
    conn = provider.wire.connections[0]
    fetch_at = next(c.at for c in conn.commands if c.name == "UID FETCH")
    pieces = [c for c in conn.chunks if c.sender == "server" and c.at > fetch_at]
    assert max(len(c.data) for c in pieces) <= 4000 // 20


# -- state changes -----------------------------------------------------------------------------


def test_uidvalidity_change_at_a_run_boundary(make_provider):
    provider = make_provider(faults=[rule(on="run", run=2, action="uidvalidity", mode="renumber")])
    client = imaps(provider)
    before = client.select_folder("INBOX")[b"UIDVALIDITY"]
    client.logout()
    assert provider.next_run() == 2
    client = imaps(provider)
    after = client.select_folder("INBOX")[b"UIDVALIDITY"]
    assert after != before
    assert client.search(["ALL"]) == [1, 2, 3, 4, 5]
    assert provider.next_run() == 3  # run=2 only: no third epoch
    assert imaps(provider).select_folder("INBOX")[b"UIDVALIDITY"] == after


def test_uidvalidity_change_while_selected_ends_the_session(make_provider):
    """imap.uidvalidity.while-selected: the change lands before NOOP runs, which must say BYE."""
    provider = make_provider(faults=[rule(on="command", command="NOOP", action="uidvalidity", mode="keep")])
    with logged_in(provider) as raw:
        raw.command("s", "SELECT INBOX")
        raw.send(b"n NOOP\r\n")
        assert raw.line().startswith(b"* BYE [UNAVAILABLE]")
        assert raw.closed_by_server()


def test_expunge_action_is_reported_to_the_selected_client(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", nth=1, action="expunge", count=2)])
    client = imaps(provider)
    client.select_folder("INBOX")
    _, untagged = client.noop()
    assert (1, b"EXPUNGE") in untagged
    assert client.search(["ALL"]) == [3, 4, 5]


def test_expunge_action_by_uid(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", action="expunge", uids=[2, 4])])
    client = imaps(provider)
    client.select_folder("INBOX")
    client.noop()
    assert client.search(["ALL"]) == [1, 3, 5]


def test_new_mail_action_shows_up_on_the_next_poll(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", nth=1, action="new_mail", count=2)])
    client = imaps(provider)
    client.select_folder("INBOX")
    _, untagged = client.noop()
    assert (7, b"EXISTS") in untagged
    assert client.search(["ALL"]) == [1, 2, 3, 4, 5, 6, 7]


def test_new_mail_is_pushed_during_idle(make_provider):
    """imap.idle.new-mail: an ``idle`` rule delivers mail while the client idles."""
    provider = make_provider(faults=[rule(on="idle", action="new_mail", raw="Subject: pushed\r\n\r\nhi\r\n")])
    with logged_in(provider) as raw:
        raw.command("s", "SELECT INBOX")
        raw.send(b"i IDLE\r\n")
        assert raw.line() == b"+ idling\r\n"
        assert raw.line() == b"* 6 EXISTS\r\n"
        raw.send(b"DONE\r\n")
        assert raw.until_tagged("i") == [b"i OK Idle completed.\r\n"]
        fetched = raw.command("f", "UID FETCH 6 BODY.PEEK[]")
    assert fetched[0] == b"* 6 FETCH (UID 6 BODY[] {23}\r\nSubject: pushed\r\n\r\nhi\r\n)\r\n"


def test_bye_during_idle(make_provider):
    """imap.idle.server-timeout: the server ends the idle connection."""
    provider = make_provider(faults=[rule(on="idle", action="bye", text="Disconnected for inactivity.")])
    with logged_in(provider) as raw:
        raw.command("s", "SELECT INBOX")
        raw.send(b"i IDLE\r\n")
        assert raw.line() == b"+ idling\r\n"
        assert raw.line() == b"* BYE Disconnected for inactivity.\r\n"
        assert raw.closed_by_server()


def test_capabilities_added_and_removed(make_provider):
    provider = make_provider(faults=[rule(on="connect", nth=1, action="capabilities", add=["XYZZY"],
                                          remove=["IDLE"])])
    client = imaps(provider)
    caps = client.capabilities()
    assert b"XYZZY" in caps and b"IDLE" not in caps
    client.logout()
    with plain_client(provider) as raw:  # "from now on", on every server of the provider
        caps = raw.command("c", "CAPABILITY")[0]
        assert b" XYZZY" in caps and b" IDLE" not in caps


def test_capability_removed_then_added_back(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", nth=1, action="capabilities",
                                          remove=["IDLE"]),
                                     rule(on="command", command="NOOP", nth=2, action="capabilities", add=["IDLE"])])
    with logged_in(provider) as raw:
        raw.command("n1", "NOOP")
        assert b" IDLE" not in raw.command("c1", "CAPABILITY")[0]
        raw.command("n2", "NOOP")
        assert b" IDLE" in raw.command("c2", "CAPABILITY")[0]


def test_capabilities_change_at_a_run_boundary(make_provider):
    provider = make_provider(faults=[rule(on="run", action="capabilities", remove=["IDLE"])])
    assert b"IDLE" in imaps(provider).capabilities()
    provider.next_run()
    assert b"IDLE" not in imaps(provider).capabilities()


def test_capability_changes_stay_with_their_provider():
    """A rule changes its own provider's capabilities, never the config object it was given."""
    config = ImapConfig()
    rules = [rule(on="connect", action="capabilities", remove=["IDLE"])]
    with FakeProvider(imap=config, faults=rules) as first:
        first.add_account(USER, PASSWORD)
        assert b"IDLE" not in imaps(first).capabilities()
    assert config.capabilities_remove == ()


# -- matchers ----------------------------------------------------------------------------------


def test_connections_over_refuses_the_extra_connection(make_provider):
    """imap.limit.too-many-connections: the third simultaneous connection is refused."""
    provider = make_provider(faults=[rule(on="connect", connections_over=2, action="reply", status="BYE",
                                          code="UNAVAILABLE", text="Maximum number of connections")])
    one, two = plain_client(provider), plain_client(provider)
    with plain_client(provider) as three:
        assert three.greeting == b"* BYE [UNAVAILABLE] Maximum number of connections\r\n"
        assert three.closed_by_server()
    assert one.greeting.startswith(b"* OK") and two.greeting.startswith(b"* OK")
    one.command("x", "LOGOUT")
    assert one.closed_by_server()
    assert provider.wire.connections[0].wait_closed(5)
    with plain_client(provider) as four:
        assert four.greeting.startswith(b"* OK")
    two.close()


def _noop_statuses(raw: RawClient, count: int, prefix: str = "n") -> list[bytes]:
    return [tagged_status(raw.command(f"{prefix}{i}", "NOOP"), f"{prefix}{i}") for i in range(count)]


def test_nth_fires_on_that_occurrence_only(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", nth=3, action="reply", status="NO")])
    with logged_in(provider) as raw:
        assert _noop_statuses(raw, 5) == [b"OK", b"OK", b"NO", b"OK", b"OK"]


def test_after_fires_past_the_first_k(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", after=2, action="reply", status="NO")])
    with logged_in(provider) as raw:
        assert _noop_statuses(raw, 4) == [b"OK", b"OK", b"NO", b"NO"]


def test_times_caps_the_firings(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", times=2, action="reply", status="NO")])
    with logged_in(provider) as raw:
        assert _noop_statuses(raw, 4) == [b"NO", b"NO", b"OK", b"OK"]


def test_after_and_times_compose(make_provider):
    """imap.throttle.bye-with-backoff style: after K commands, once."""
    provider = make_provider(faults=[rule(on="command", command="*", state="selected", after=1, times=1,
                                          action="reply", status="BAD",
                                          text="Request is throttled. Suggested Backoff Time: 2000 milliseconds")])
    with logged_in(provider) as raw:
        raw.command("s", "SELECT INBOX")
        assert _noop_statuses(raw, 4) == [b"OK", b"BAD", b"OK", b"OK"]


def test_session_picks_the_connection(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", session=2, action="reply", status="NO")])
    statuses = []
    for _ in range(3):
        with logged_in(provider) as raw:
            statuses.append(_noop_statuses(raw, 1)[0])
    assert statuses == [b"OK", b"NO", b"OK"]


def test_run_picks_the_run(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", run=2, action="reply", status="NO")])
    statuses = []
    for _ in range(3):
        with logged_in(provider) as raw:
            statuses.append(_noop_statuses(raw, 1)[0])
        provider.next_run()
    assert statuses == [b"OK", b"NO", b"OK"]


def test_state_matcher(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", state="selected", action="reply",
                                          status="NO")])
    with logged_in(provider) as raw:
        assert _noop_statuses(raw, 1, "a") == [b"OK"]
        raw.command("s", "SELECT INBOX")
        assert _noop_statuses(raw, 1, "b") == [b"NO"]


def test_tls_matcher(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", tls=False, action="reply", status="NO")])
    with plain_client(provider) as raw:
        assert _noop_statuses(raw, 1, "a") == [b"NO"]
        raw.starttls(client_context(provider))
        assert _noop_statuses(raw, 1, "b") == [b"OK"]


def test_user_matcher(make_provider):
    provider = make_provider(faults=[rule(on="command", command="SELECT", user=USER, action="reply", status="NO",
                                          code="CONTACTADMIN", text="Account disabled")])
    provider.add_account("bob@example.test", "pw2")
    alice = imaps(provider)
    with pytest.raises(IMAPClientError, match="CONTACTADMIN"):
        alice.select_folder("INBOX")
    bob = imaps(provider, login=False)
    bob.login("bob@example.test", "pw2")
    bob.select_folder("INBOX")


def test_status_matcher_on_response(make_provider):
    provider = make_provider(faults=[rule(on="response", command="SELECT", status="NO", action="untagged",
                                          lines=["OK [ALERT] that folder is gone"])])
    with logged_in(provider) as raw:
        assert b"ALERT" not in b"".join(raw.command("a", "SELECT INBOX"))
        lines = raw.command("c", "SELECT Nowhere")
        assert lines[0] == b"* OK [ALERT] that folder is gone\r\n" and lines[-1].startswith(b"c NO")


def test_response_rules_see_authenticate_outcomes(make_provider):
    """AUTHENTICATE ends on a continuation line; its tagged result is still a ``response`` event."""
    provider = make_provider(faults=[rule(on="response", command="AUTHENTICATE", status="OK", action="bye",
                                          text="User is authenticated but not connected.")])
    import base64

    with RawClient(provider.imaps_port, tls=client_context(provider)) as raw:
        raw.line()
        raw.send(b"a AUTHENTICATE PLAIN\r\n")
        assert raw.line() == b"+ \r\n"
        raw.send(base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b"\r\n")
        assert raw.line().startswith(b"a OK")
        assert raw.line() == b"* BYE User is authenticated but not connected.\r\n"
        assert raw.closed_by_server()


def _probability_pattern(seed: int) -> list[bytes]:
    rules = [rule(on="command", command="NOOP", probability=0.5, action="reply", status="NO")]
    with FakeProvider(faults=rules, seed=seed, imap=PLAIN_LOGIN) as provider:
        provider.add_account(USER, PASSWORD)
        with logged_in(provider, tls=False) as raw:
            return _noop_statuses(raw, 24)


def test_probability_is_deterministic_for_a_seed():
    first, second, other = _probability_pattern(7), _probability_pattern(7), _probability_pattern(8)
    assert first == second
    assert b"NO" in first and b"OK" in first
    assert other != first


def test_firings_are_kept_as_evidence(make_provider):
    provider = make_provider(faults=[rule(on="command", command="NOOP", nth=2, action="reply", status="NO",
                                          description="second NOOP refused")])
    with logged_in(provider) as raw:
        _noop_statuses(raw, 3)
    firings = provider.call(lambda: list(provider.faults.firings))
    assert len(firings) == 1 and firings[0].ctx["command"] == "NOOP" and firings[0].ctx["session"] == 1
    assert "second NOOP refused" in provider.wire.connections[0].transcript()


def test_tls_event_fires_after_the_handshake(make_provider):
    provider = make_provider(faults=[rule(on="tls", action="untagged", lines=["OK [ALERT] welcome to TLS"])])
    with plain_client(provider) as raw:
        raw.send(b"s STARTTLS\r\n")
        assert raw.line().startswith(b"s OK")
        raw.sock = client_context(provider).wrap_socket(raw.sock, server_hostname="localhost")
        assert raw.line() == b"* OK [ALERT] welcome to TLS\r\n"
    conn = provider.wire.connections[0]
    assert [r.tls for r in conn.responses if r.injected] == [True]


def test_added_rules_apply_to_later_commands(make_provider):
    provider = make_provider()
    with logged_in(provider) as raw:
        assert _noop_statuses(raw, 1, "a") == [b"OK"]
        provider.add_rule(rule(on="command", command="NOOP", action="reply", status="NO"))
        assert _noop_statuses(raw, 1, "b") == [b"NO"]
