"""The check library, judged on real data: every check passes a good client and fails a bad one.

Wire checks read what a real fake provider recorded while a small real client (imapclient or
a raw socket) behaved well or deliberately badly; store checks compare Maildirs written by
hand (or by a tiny imapclient sync) with a real provider's mailboxes; outcome checks read
Outcome values built directly. Tests are named ``test_<check>__pass_...`` and
``test_<check>__fail_...``; a meta test holds every registered check to that.
"""

from __future__ import annotations

import datetime
import re
import shutil
import ssl
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import imapclient
import pytest

from fake_servers.imap.config import ImapConfig
from fake_servers.wire import WireLog
from harness import checks
from harness.maildir import read_maildir
from harness.observation import Observation
from harness.outcome import Outcome
from harness.verdicts import Verdict, combine

from .conftest import PASSWORD, USER, sample_message
from .judging import judge
from .netutil import RawClient, client_context, imaps, plain_client, tagged_status

WAIT = 5.0
PLAIN_LOGIN = ImapConfig(login_disabled=False)


# -- building observations -----------------------------------------------------------------------


def snapshot(provider) -> dict[str, list[bytes]]:
    """The server's mailboxes as the runner records them after a run."""
    def read():
        account = provider.store.account(USER)
        return {name: [m.raw for m in folder.messages] for name, folder in account.folders.items()}

    return provider.call(read)


@pytest.fixture
def observe(tmp_path):
    """Observation(...) of a provider's wire log (every connection seen closed first)."""
    def make(provider=None, *, outcomes=None, server=None, secrets=None, maildir=None, **scenario) -> Observation:
        wire = provider.wire if provider is not None else WireLog()
        for conn in wire.connections:
            assert conn.wait_closed(WAIT), f"connection #{conn.id} is still open"
        if server is None:
            server = [snapshot(provider)] if provider is not None else []
        return Observation(
            scenario=SimpleNamespace(id="test.checks", **scenario), wire=wire,
            outcomes=outcomes if outcomes is not None else [Outcome(1, 0, False, 0.25, "", "")],
            maildir=maildir or tmp_path / "Maildir", outbox=tmp_path / "outbox", username=USER, password=PASSWORD,
            server_after_run=server, secrets=(PASSWORD.encode(),) if secrets is None else secrets)

    return make


def failing(result):
    """A failed result's evidence, checked for what every failure must carry."""
    assert result.passed is False
    assert result.evidence
    for e in result.evidence:
        assert e.rule and e.expected and e.observed
    return result.evidence[0]


def assert_redacted(evidence) -> None:
    for e in evidence:
        assert PASSWORD not in e.wire and PASSWORD not in e.observed


def starttls(client: RawClient, provider, tag: str = "S1", *, read_after_ok: int = 0) -> list[bytes]:
    """STARTTLS on a raw client; ``read_after_ok`` plaintext lines behind the OK are read first."""
    lines = client.command(tag, "STARTTLS")
    assert tagged_status(lines, tag) == b"OK", lines
    behind = [client.line() for _ in range(read_after_ok)]
    client.sock = client_context(provider).wrap_socket(client.sock, server_hostname="localhost")
    return behind


def logout(client: RawClient, tag: str = "Z1") -> None:
    client.command(tag, "LOGOUT")
    client.close()


def open_imaps(provider) -> RawClient:
    client = RawClient(provider.imaps_port, tls=client_context(provider))
    client.greeting = client.line()
    return client


def login(client: RawClient, tag: str = "L1", password: str = PASSWORD) -> list[bytes]:
    return client.command(tag, f'LOGIN "{USER}" "{password}"')


# -- wire: credentials and TLS -------------------------------------------------------------------


def test_no_credentials_before_tls__pass_starttls_then_login(provider, observe):
    with plain_client(provider) as client:
        starttls(client, provider)
        assert tagged_status(login(client), "L1") == b"OK"
        logout(client)
    result = judge("no_credentials_before_tls", observe(provider))
    assert result.passed is True and not result.security


def test_no_credentials_before_tls__fail_plaintext_login(make_provider, observe):
    provider = make_provider(imap=PLAIN_LOGIN)
    with plain_client(provider) as client:
        login(client)
        logout(client)
    result = judge("no_credentials_before_tls", observe(provider))
    e = failing(result)
    assert result.security
    assert "LOGIN" in e.observed and "plaintext" in e.observed and e.run == 1
    assert ">> C: L1 LOGIN" in e.wire and "***" in e.wire
    assert_redacted(result.evidence)


def test_no_credentials_before_tls__fail_password_hidden_in_another_command(make_provider, observe):
    """A secret in an unexpected command is found by its bytes, and hidden in the evidence."""
    provider = make_provider(imap=PLAIN_LOGIN)
    with plain_client(provider) as client:
        client.command("X1", f'ID ("name" "leaky" "debug-password" "{PASSWORD}")')
        logout(client)
    result = judge("no_credentials_before_tls", observe(provider))
    e = failing(result)
    assert result.security and "secret bytes" in e.observed and "X1 ID" in e.observed
    assert_redacted(result.evidence)


def test_no_credentials_before_tls__fail_login_pipelined_behind_starttls(provider, observe):
    """A LOGIN sent in the same write as STARTTLS is thrown away by the server, but it crossed."""
    with plain_client(provider) as client:
        client.send(f'S1 STARTTLS\r\nL1 LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
        client.until_tagged("S1")
        client.reset()
    e = failing(result := judge("no_credentials_before_tls", observe(provider)))
    assert result.security and "thrown away" in e.observed
    assert_redacted(result.evidence)


def test_no_login_when_logindisabled__pass_starttls_first(provider, observe):
    with plain_client(provider) as client:
        caps = client.command("C1", "CAPABILITY")
        assert b"LOGINDISABLED" in caps[0]
        starttls(client, provider)
        login(client)
        logout(client)
    assert judge("no_login_when_logindisabled", observe(provider)).passed is True


def test_no_login_when_logindisabled__fail_login_anyway(provider, observe):
    with plain_client(provider) as client:
        assert b"LOGINDISABLED" in client.greeting
        assert tagged_status(login(client), "L1") == b"NO"
        logout(client)
    result = judge("no_login_when_logindisabled", observe(provider))
    e = failing(result)
    assert result.security and "LOGINDISABLED" in e.observed and ">> C: L1 LOGIN" in e.wire
    assert_redacted(result.evidence)


def test_no_mail_data_before_tls__pass_preauth_refused(make_provider, observe):
    """A STARTTLS-configured client greeted with PREAUTH in plaintext leaves without reading mail."""
    provider = make_provider(imap=ImapConfig(preauth=True))
    with plain_client(provider) as client:
        assert client.greeting.startswith(b"* PREAUTH")
        logout(client)
    obs = observe(provider, imap_security="starttls")
    assert judge("no_mail_data_before_tls", obs).passed is True
    assert judge("aborts_without_credentials", obs).passed is True


def test_no_mail_data_before_tls__fail_fetch_after_plaintext_preauth(make_provider, observe):
    provider = make_provider(imap=ImapConfig(preauth=True))
    with plain_client(provider) as client:
        client.command("F1", "SELECT INBOX")
        client.command("F2", "UID FETCH 1 (FLAGS BODY.PEEK[])")
        logout(client)
    result = judge("no_mail_data_before_tls", observe(provider, imap_security="starttls"))
    e = failing(result)
    assert result.security and "requested in plaintext" in e.observed and "F2 UID FETCH" in e.observed


def test_no_mail_data_before_tls__fail_plaintext_append(make_provider, observe):
    provider = make_provider(imap=PLAIN_LOGIN)
    message = sample_message(42)
    with plain_client(provider) as client:
        login(client)
        client.send(b"A1 APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
        client.until_tagged("A1")
        logout(client)
    e = failing(judge("no_mail_data_before_tls", observe(provider), {"security": "tls"}))
    assert "A1 APPEND" in e.observed and "sent in plaintext" in e.observed


def test_no_mail_data_before_tls__pass_client_configured_for_plaintext(make_provider, observe):
    provider = make_provider(imap=PLAIN_LOGIN)
    with plain_client(provider) as client:
        login(client)
        client.command("F1", "SELECT INBOX")
        client.command("F2", "FETCH 1 BODY.PEEK[]")
        logout(client)
    assert judge("no_mail_data_before_tls", observe(provider, imap_security="none")).passed is True


def test_aborts_without_credentials__pass_no_starttls_offered(make_provider, observe):
    provider = make_provider(imap=ImapConfig(starttls=False, login_disabled=False))
    with plain_client(provider) as client:
        assert b"STARTTLS" not in client.command("C1", "CAPABILITY")[0]
        logout(client)
    assert judge("aborts_without_credentials", observe(provider)).passed is True


def test_aborts_without_credentials__fail_logs_in_without_starttls(make_provider, observe):
    provider = make_provider(imap=ImapConfig(starttls=False, login_disabled=False))
    with plain_client(provider) as client:
        assert tagged_status(login(client), "L1") == b"OK"
        logout(client)
    result = judge("aborts_without_credentials", observe(provider))
    e = failing(result)
    assert result.security and "in plaintext" in e.observed
    assert_redacted(result.evidence)


def test_aborts_without_credentials__pass_expired_certificate_refused(make_provider, observe):
    provider = make_provider(cert="expired")
    with pytest.raises(ssl.SSLCertVerificationError):
        imaps(provider, login=False)
    assert judge("aborts_without_credentials", observe(provider)).passed is True


def test_aborts_without_credentials__fail_expired_certificate_accepted(make_provider, observe):
    provider = make_provider(cert="expired")
    careless = ssl.create_default_context()
    careless.check_hostname = False
    careless.verify_mode = ssl.CERT_NONE
    client = imapclient.IMAPClient("127.0.0.1", port=provider.imaps_port, ssl=True, ssl_context=careless,
                                   timeout=WAIT)
    client.login(USER, PASSWORD)
    client.logout()
    result = judge("aborts_without_credentials", observe(provider))
    e = failing(result)
    assert result.security and "over TLS" in e.observed
    assert_redacted(result.evidence)


def test_used_tls__pass_tls13(imap, provider, observe):
    imap.logout()
    result = judge("used_tls", observe(provider), {"min_version": "TLSv1.2"})
    assert result.passed is True


def test_used_tls__fail_below_min_version(provider, observe):
    ctx = client_context(provider)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client = imapclient.IMAPClient("127.0.0.1", port=provider.imaps_port, ssl=True, ssl_context=ctx, timeout=WAIT)
    client.login(USER, PASSWORD)
    client.logout()
    result = judge("used_tls", observe(provider), {"min_version": "TLSv1.3"})
    e = failing(result)
    assert result.security and "TLSv1.2" in e.observed and e.expected == "TLSv1.3 or newer"


def test_used_tls__fail_plaintext(make_provider, observe):
    provider = make_provider(imap=PLAIN_LOGIN)
    with plain_client(provider) as client:
        login(client)
        logout(client)
    e = failing(judge("used_tls", observe(provider)))
    assert "sent in plaintext" in e.observed


# -- wire: capabilities --------------------------------------------------------------------------

NO_IDLE = ImapConfig(capabilities_remove=("IDLE",))


def test_only_advertised__pass_polls_without_idle(make_provider, observe):
    provider = make_provider(imap=NO_IDLE)
    client = imaps(provider)
    assert b"IDLE" not in client.capabilities()
    client.select_folder("INBOX")
    client.noop()
    client.logout()
    assert judge("only_advertised", observe(provider), {"commands": ["IDLE"]}).passed is True


def test_only_advertised__fail_idle_not_advertised(make_provider, observe):
    provider = make_provider(imap=NO_IDLE)
    with open_imaps(provider) as client:
        login(client)
        client.command("S1", "SELECT INBOX")
        client.send(b"I1 IDLE\r\n")
        assert client.line().startswith(b"+")
        client.send(b"DONE\r\n")
        client.until_tagged("I1")
        logout(client)
    result = judge("only_advertised", observe(provider), {"commands": ["IDLE"]})
    e = failing(result)
    assert "I1 IDLE" in e.observed and "CAPABILITY" in e.observed and ">> C: I1 IDLE" in e.wire
    assert not result.security


def test_only_advertised__fail_unadvertised_mechanism_by_default(make_provider, observe):
    """With no list, every extension command counts: AUTHENTICATE XOAUTH2 where only PLAIN is offered."""
    provider = make_provider(imap=ImapConfig(mechanisms=("PLAIN",)))
    with open_imaps(provider) as client:
        client.command("A1", "AUTHENTICATE XOAUTH2 dXNlcj1ib2IBYXV0aD1CZWFyZXIgeAEB")
        logout(client)
    e = failing(judge("only_advertised", observe(provider)))
    assert "AUTH=XOAUTH2" in e.expected


def test_only_advertised__fail_literal_plus_not_advertised(make_provider, observe):
    provider = make_provider(imap=ImapConfig(capabilities_remove=("LITERAL+",)))
    user, password = USER.encode(), PASSWORD.encode()
    with open_imaps(provider) as client:
        client.send(b"L1 LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(password), password))
        client.until_tagged("L1")
        logout(client)
    obs = observe(provider)
    e = failing(judge("only_advertised", obs, {"commands": ["LITERAL+"]}))
    assert "LITERAL+ or LITERAL-" in e.expected
    assert_redacted([e])
    assert judge("only_advertised", obs, {"commands": ["IDLE"]}).passed is True


def test_only_advertised__pass_unasked_starttls_only_judged_when_listed(make_provider, observe):
    """A client that insists on TLS may send STARTTLS without asking: safe, so not judged by default."""
    provider = make_provider(imap=ImapConfig(greeting_capabilities=False))
    with plain_client(provider) as client:
        starttls(client, provider)
        logout(client)
    obs = observe(provider)
    assert judge("only_advertised", obs).passed is True
    assert judge("only_advertised", obs, {"commands": ["STARTTLS"]}).passed is False


CAPS_DIFFER = ImapConfig(capabilities_plaintext=("IMAP4rev1", "STARTTLS", "LOGINDISABLED", "ID"),
                         capabilities_tls=("IMAP4rev1", "AUTH=PLAIN"))


def test_capabilities_refreshed_after_tls__pass_asks_again(make_provider, observe):
    provider = make_provider(imap=CAPS_DIFFER)
    with plain_client(provider) as client:
        assert b" ID" in client.greeting
        starttls(client, provider)
        caps = client.command("C2", "CAPABILITY")
        assert b" ID" not in caps[0]
        login(client)
        logout(client)
    assert judge("capabilities_refreshed_after_tls", observe(provider)).passed is True


def test_capabilities_refreshed_after_tls__fail_uses_plaintext_capability(make_provider, observe):
    provider = make_provider(imap=CAPS_DIFFER)
    with plain_client(provider) as client:
        starttls(client, provider)
        client.command("I1", 'ID ("name" "stale")')
        login(client)
        logout(client)
    e = failing(judge("capabilities_refreshed_after_tls", observe(provider)))
    assert "I1 ID" in e.observed and "only before TLS" in e.observed and ">> C: I1 ID" in e.wire


INJECTION = {"on": "command", "command": "STARTTLS", "action": "untagged", "when": "after",
             "lines": ["CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE", 'LIST () "/" "Verify-Your-Account"']}


def test_injected_lines_ignored__pass_discarded(make_provider, observe):
    provider = make_provider(imap=NO_IDLE, faults=[INJECTION])
    with plain_client(provider) as client:
        starttls(client, provider, read_after_ok=2)  # read only to reach the handshake; thrown away
        login(client)
        client.command("S1", "SELECT INBOX")
        client.command("N1", "NOOP")
        logout(client)
    result = judge("injected_lines_ignored", observe(provider))
    assert result.passed is True and "2 injected" in result.evidence[0].observed


@pytest.mark.parametrize("misuse", ["idle", "mailbox"])
def test_injected_lines_ignored__fail_acts_on_them(make_provider, observe, misuse):
    provider = make_provider(imap=NO_IDLE, faults=[INJECTION])
    with plain_client(provider) as client:
        injected = starttls(client, provider, read_after_ok=2)
        assert b"IDLE" in injected[0]
        login(client)
        if misuse == "idle":
            client.command("S1", "SELECT INBOX")
            client.send(b"I1 IDLE\r\n")
            client.line()
            client.send(b"DONE\r\n")
            client.until_tagged("I1")
        else:
            client.command("S1", 'SELECT "Verify-Your-Account"')
        logout(client)
    result = judge("injected_lines_ignored", observe(provider))
    e = failing(result)
    assert result.security
    assert ("uses IDLE" in e.observed) if misuse == "idle" else ("Verify-Your-Account" in e.observed)


# -- wire: attempts, pacing, connections ---------------------------------------------------------


def test_max_login_attempts__pass_stops_after_failure(provider, observe):
    with open_imaps(provider) as client:
        assert b"AUTHENTICATIONFAILED" in login(client, password="wrong")[-1]
        logout(client)
    result = judge("max_login_attempts", observe(provider), {"n": 1})
    assert result.passed is True


def test_max_login_attempts__fail_retry_loop_across_connections(provider, observe):
    for attempt in range(4):
        with open_imaps(provider) as client:
            login(client, tag=f"L{attempt}", password="wrong")
            logout(client)
    e = failing(judge("max_login_attempts", observe(provider), {"n": 1}))
    assert "3 more attempts in run 1" in e.observed and "AUTHENTICATIONFAILED" in e.expected
    assert ">> C: L2 LOGIN" in e.wire


def test_max_login_attempts__pass_other_codes_are_not_permanent(make_provider, observe):
    """A temporary failure (UNAVAILABLE) is not counted unless the scenario lists its code."""
    provider = make_provider(faults=[{"on": "command", "command": "LOGIN", "times": 2, "action": "reply",
                                      "status": "NO", "code": "UNAVAILABLE", "text": "Temporary failure"}])
    with open_imaps(provider) as client:
        for attempt in range(3):
            login(client, tag=f"L{attempt}")
        logout(client)
    obs = observe(provider)
    assert judge("max_login_attempts", obs, {"n": 0}).passed is True
    assert judge("max_login_attempts", obs, {"n": 0, "codes": ["UNAVAILABLE"]}).passed is False


def _throttle(milliseconds: int) -> dict:
    return {"on": "command", "command": "SELECT", "times": 1, "actions": [
        {"action": "reply", "status": "BAD", "text": f"Request is throttled. Suggested Backoff Time: "
                                                     f"{milliseconds} milliseconds"},
        {"action": "bye", "text": "Throttled"}]}


def _select_until_bye(provider) -> None:
    with open_imaps(provider) as client:
        login(client)
        client.send(b"S1 SELECT INBOX\r\n")
        assert b"throttled" in client.line()
        assert client.line().startswith(b"* BYE")
        assert client.closed_by_server()


def test_backoff_respected__pass_waits_the_suggested_time(make_provider, observe):
    provider = make_provider(faults=[_throttle(50)])
    _select_until_bye(provider)
    threading.Event().wait(0.06)  # the client's own backoff: the behaviour under test, not synchronisation
    with open_imaps(provider) as client:
        login(client)
        client.command("S2", "SELECT INBOX")
        logout(client)
    result = judge("backoff_respected", observe(provider))
    assert result.passed is True and "1 backoff" in result.evidence[0].observed


def test_backoff_respected__fail_reconnects_at_once(make_provider, observe):
    provider = make_provider(faults=[_throttle(2000)])
    _select_until_bye(provider)
    with open_imaps(provider) as client:
        logout(client)
    obs = observe(provider)
    e = failing(judge("backoff_respected", obs))
    assert e.expected == "at least 2 s before the next contact" and "opened" in e.observed
    assert ">> S: S1 BAD Request is throttled" in e.wire
    assert judge("backoff_respected", obs, {"min_seconds": 0}).passed is True


def test_backoff_respected__pass_logout_right_away_is_not_a_contact(make_provider, observe):
    provider = make_provider(faults=[{"on": "command", "command": "LOGIN", "action": "reply", "status": "NO",
                                      "code": "UNAVAILABLE", "text": "Try later. Suggested Backoff Time: 5 seconds"}])
    with open_imaps(provider) as client:
        assert tagged_status(login(client), "L1") == b"NO"
        logout(client)
    assert judge("backoff_respected", observe(provider)).passed is True


LIMIT = {"on": "connect", "connections_over": 2, "action": "bye", "code": "UNAVAILABLE",
         "text": "Maximum number of connections from user+IP exceeded"}


def _wait_recorded(provider, count: int):
    conns = provider.wire.wait_for_connections(count, WAIT)
    assert len(conns) >= count
    return conns[count - 1]


def test_max_connections__pass_stays_under_cap_after_refusal(make_provider, observe):
    provider = make_provider(faults=[LIMIT])
    first, second = plain_client(provider), plain_client(provider)
    refused = RawClient(provider.imap_port)
    assert refused.line().startswith(b"* BYE [UNAVAILABLE]")
    refused.close()
    assert _wait_recorded(provider, 3).wait_closed(WAIT)
    logout(second)
    assert _wait_recorded(provider, 2).wait_closed(WAIT)
    third = plain_client(provider)
    assert third.greeting.startswith(b"* OK")
    logout(third)
    logout(first)
    result = judge("max_connections", observe(provider), {"n": 2})
    assert result.passed is True and "1 refused" in result.evidence[0].observed


def test_max_connections__fail_opens_again_while_at_cap(make_provider, observe):
    provider = make_provider(faults=[LIMIT])
    first, second = plain_client(provider), plain_client(provider)
    for _ in range(2):
        refused = RawClient(provider.imap_port)
        assert refused.line().startswith(b"* BYE")
        refused.close()
    logout(first)
    logout(second)
    e = failing(judge("max_connections", observe(provider), {"n": 2}))
    assert "refused too" in e.observed and "connection #4" in e.observed and "BYE" in e.wire


def test_max_connections__fail_over_cap_without_a_refusal(provider, observe):
    clients = [plain_client(provider) for _ in range(3)]
    for client in clients:
        logout(client)
    e = failing(judge("max_connections", observe(provider), {"n": 2}))
    assert "3 open at once" in e.observed


BUSY = {"on": "connect", "action": "bye", "text": "Server busy"}


def _knock(provider, times: int) -> None:
    for _ in range(times):
        with RawClient(provider.imap_port) as client:
            assert client.line().startswith(b"* BYE")
            assert client.closed_by_server()


def test_no_retry_storm__pass_few_attempts_per_run(make_provider, observe):
    provider = make_provider(faults=[BUSY])
    _knock(provider, 2)
    provider.next_run()
    _knock(provider, 2)
    result = judge("no_retry_storm", observe(provider), {"max_connections_per_run": 3})
    assert result.passed is True and "at most 2" in result.evidence[0].observed


def test_no_retry_storm__fail_hammering(make_provider, observe):
    provider = make_provider(faults=[BUSY])
    _knock(provider, 6)
    e = failing(judge("no_retry_storm", observe(provider), {"max_connections_per_run": 3}))
    assert "6 connections in run 1" in e.observed and "Server busy" in e.wire


# -- store ---------------------------------------------------------------------------------------


def folder_dir(root: Path, name: str) -> Path:
    path = root.joinpath(*name.split("/"))
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def mini_sync(provider, root: Path, transform=lambda data: data) -> None:
    """A small real client: every folder over implicit TLS into nested Maildirs."""
    client = imaps(provider)
    for _, _, name in client.list_folders():
        client.select_folder(name, readonly=True)
        uids = client.search("ALL")
        if not uids:
            continue
        target = folder_dir(root, name)
        for uid, data in client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]).items():
            flags = "S" if b"\\Seen" in data[b"FLAGS"] else ""
            sub, info = ("cur", ":2," + flags) if flags else ("new", "")
            (target / sub / f"{uid}.mini{info}").write_bytes(transform(data[b"BODY[]"]))
    client.logout()


def to_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def test_store_matches_server__pass_after_sync_with_lf_endings(provider, observe, tmp_path):
    mini_sync(provider, tmp_path / "Maildir", to_lf)
    result = judge("store_matches_server", observe(provider))
    assert result.passed is True and "INBOX: 5/5" in result.evidence[0].observed


def test_store_matches_server__fail_every_kind_of_difference(provider, observe, tmp_path):
    root = tmp_path / "Maildir"
    mini_sync(provider, root)
    inbox = {p.name.split(".")[0]: p for p in (root / "INBOX").glob("*/*")}
    inbox["2"].unlink()  # missing
    shutil.copy(inbox["3"], inbox["3"].with_name("3-copy.mini"))  # duplicated
    inbox["4"].write_bytes(inbox["4"].read_bytes()[:70])  # truncated (and so missing)
    (root / "INBOX" / "new" / "old.mini").write_bytes(sample_message(99))  # stale
    result = judge("store_matches_server", observe(provider))
    e = failing(result)
    assert e.run == 1 and e.expected.startswith("INBOX: the server's 5 message(s)")
    for part in ("missing 2", "<m2@example.test>", '"Message 2"', "duplicated 1", "<m3@example.test>",
                 "stale (not on the server) 1", "<m99@example.test>", "truncated 1", "holds 70 of the server's",
                 "only a truncated copy"):
        assert part in e.observed, part
    assert ">> S: * " in e.wire and "FETCH" in e.wire  # the FETCH that carried the missing message


def test_store_matches_server__clean_stop_is_only_a_should(provider, observe, tmp_path):
    """A client that stops with a clear error and loses nothing is NON-STRICT, not FAIL."""
    root = tmp_path / "Maildir"
    mini_sync(provider, root)
    next((root / "INBOX").glob("*/2.*")).unlink()  # never fetched: the client stopped first
    stopped = [Outcome(1, 1, False, 0.3, "", "ERROR: UID validity problem for folder INBOX")]
    result = judge("store_matches_server", observe(provider, outcomes=stopped), {"clean_stop": ["uid ?validity"]})
    assert result.passed is False and result.level == "SHOULD"
    assert any("stops with a clear error" in e.rule for e in result.evidence)


def test_store_matches_server__clean_stop_needs_the_error_and_no_damage(provider, observe, tmp_path):
    root = tmp_path / "Maildir"
    mini_sync(provider, root)
    inbox = {p.name.split(".")[0]: p for p in (root / "INBOX").glob("*/*")}
    shutil.copy(inbox["3"], inbox["3"].with_name("3-copy.mini"))  # a duplicate is damage
    stopped = [Outcome(1, 1, False, 0.3, "", "ERROR: UID validity problem")]
    damaged = judge("store_matches_server", observe(provider, outcomes=stopped), {"clean_stop": ["uid ?validity"]})
    assert damaged.passed is False and damaged.level == "MUST"
    inbox["3"].with_name("3-copy.mini").unlink()
    inbox["2"].unlink()
    silent = [Outcome(1, 1, False, 0.3, "", "something went wrong")]
    unclear = judge("store_matches_server", observe(provider, outcomes=silent), {"clean_stop": ["uid ?validity"]})
    assert unclear.passed is False and unclear.level == "MUST"


def test_store_matches_server__pass_allowed_missing(provider, observe, tmp_path):
    root = tmp_path / "Maildir"
    mini_sync(provider, root)
    next((root / "INBOX").glob("*/1.*")).unlink()
    obs = observe(provider)
    assert judge("store_matches_server", obs, {"allow_missing": 1}).passed is True
    assert judge("store_matches_server", obs).passed is False


@pytest.fixture
def folders_provider(make_provider):
    provider = make_provider()

    def fill():
        account = provider.store.account(USER)
        account.add_folder("Archive/2024").append(sample_message(20))
        account.add_folder("Entwürfe").append(sample_message(21))

    provider.call(fill)
    return provider


def test_store_matches_server__pass_nested_and_maildirpp(folders_provider, observe, tmp_path):
    root = tmp_path / "Maildir"
    mini_sync(folders_provider, root)
    assert (root / "Archive" / "2024" / "new").is_dir() and (root / "Entwürfe").is_dir()
    assert judge("store_matches_server", observe(folders_provider)).passed is True
    plus = tmp_path / "plus"
    shutil.copytree(root / "INBOX", plus, dirs_exist_ok=True)  # Maildir++: the root is INBOX
    shutil.copytree(root / "Archive" / "2024", plus / ".Archive.2024")
    shutil.copytree(root / "Entwürfe", plus / ".Entwürfe")
    assert judge("store_matches_server", observe(folders_provider, maildir=plus)).passed is True


def test_store_matches_server__fail_folder_name_left_in_modified_utf7(folders_provider, observe, tmp_path):
    root = tmp_path / "Maildir"
    mini_sync(folders_provider, root)
    (root / "Entwürfe").rename(root / "Entw&APw-rfe")
    result = judge("store_matches_server", observe(folders_provider))
    failing(result)
    observed = " | ".join(ev.observed for ev in result.evidence)
    assert "Entwürfe: 0 local file(s); missing 1" in observed and "Entw&APw-rfe: 1 local file(s)" in observed


def test_no_duplicates__pass(provider, observe, tmp_path):
    mini_sync(provider, tmp_path / "Maildir")
    assert judge("no_duplicates", observe(provider)).passed is True


def test_no_duplicates__fail_same_message_twice(provider, observe, tmp_path):
    """As after a UIDVALIDITY change handled by fetching everything again."""
    root = tmp_path / "Maildir"
    mini_sync(provider, root)
    mini_sync(provider, root / "again")
    for path in (root / "again" / "INBOX").glob("*/*"):
        path.rename(root / "INBOX" / path.parent.name / ("again-" + path.name))
    shutil.rmtree(root / "again")
    e = failing(judge("no_duplicates", observe(provider)))
    assert "duplicated 5" in e.observed and "missing" not in e.observed


def _fetch_cut_short(provider, root: Path, *, store_partial: bool) -> None:
    """A raw client whose FETCH the server cuts after a few bytes; a naive one stores what came."""
    with open_imaps(provider) as client:
        login(client)
        client.command("S1", "SELECT INBOX")
        client.send(b"F1 UID FETCH 1 (BODY.PEEK[])\r\n")
        head = client.line()
        size = int(re.search(rb"\{(\d+)\}", head).group(1))
        body = client.read_to_end()
        assert len(body) < size
        if store_partial:
            (folder_dir(root, "INBOX") / "new" / "1.partial").write_bytes(body)


def test_no_truncated_messages__pass_partial_fetch_discarded(make_provider, observe, tmp_path):
    provider = make_provider(faults=[{"on": "command", "command": "UID FETCH", "action": "truncate",
                                      "after_bytes": 90, "then": "close"}])
    _fetch_cut_short(provider, tmp_path / "Maildir", store_partial=False)
    assert judge("no_truncated_messages", observe(provider)).passed is True


def test_no_truncated_messages__fail_partial_fetch_stored(make_provider, observe, tmp_path):
    provider = make_provider(faults=[{"on": "command", "command": "UID FETCH", "action": "truncate",
                                      "after_bytes": 90, "then": "close"}])
    _fetch_cut_short(provider, tmp_path / "Maildir", store_partial=True)
    e = failing(judge("no_truncated_messages", observe(provider)))
    assert "truncated 1" in e.observed and "<m1@example.test>" in e.observed
    assert re.search(r">> S: \* 1 FETCH \(.*\{\d+\}", e.wire)


BARE_LF = (b"From: Bob <bob@example.test>\nSubject: bare LF and NUL\nMessage-ID: <lf@example.test>\n\n"
           b"line one\nNUL here:\x00 end\n")


@pytest.fixture
def odd_provider(make_provider):
    provider = make_provider(messages=None)

    def fill():
        account = provider.store.add_account(USER, PASSWORD)
        account.folder("INBOX").append(BARE_LF, internal_date=datetime.datetime(2024, 1, 1,
                                                                                  tzinfo=datetime.timezone.utc))
        account.folder("INBOX").append(sample_message(1))

    provider.call(fill)
    return provider


def test_byte_exact__pass_stored_as_served(odd_provider, observe, tmp_path):
    mini_sync(odd_provider, tmp_path / "Maildir")
    assert judge("byte_exact", observe(odd_provider)).passed is True


def test_byte_exact__fail_line_endings_rewritten(odd_provider, observe, tmp_path):
    mini_sync(odd_provider, tmp_path / "Maildir", lambda data: data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    obs = observe(odd_provider)
    e = failing(judge("byte_exact", obs))
    assert "<lf@example.test>" in e.observed and "line endings changed" in e.observed
    assert judge("store_matches_server", obs).passed is True  # only the exact comparison sees it


def test_byte_exact__fail_header_rewritten(odd_provider, observe, tmp_path):
    mini_sync(odd_provider, tmp_path / "Maildir", lambda data: data.replace(b"\x00", b" "))
    e = failing(judge("byte_exact", observe(odd_provider)))
    nul = BARE_LF.index(b"\x00")
    assert f"differs from byte {nul}" in e.observed


# -- outcome -------------------------------------------------------------------------------------


def outcome(run=1, status=0, *, killed=False, duration=0.5, stdout="", stderr="", error=None) -> Outcome:
    return Outcome(run, status, killed, duration, stdout, stderr, error)


def test_exit_status__pass_zero_and_nonzero(observe):
    assert judge("exit_status", observe(outcomes=[outcome(1, 0), outcome(2, 0)])).passed is True
    assert judge("exit_status", observe(outcomes=[outcome(1, 3)]), {"expect": "nonzero"}).passed is True
    assert judge("exit_status", observe(outcomes=[outcome(1, 3)]), {"expect": "any"}).passed is True


def test_exit_status__fail_wrong_status(observe):
    e = failing(judge("exit_status", observe(outcomes=[outcome(1, 0), outcome(2, 1, stderr="sync failed")])))
    assert e.run == 2 and "exit 1" in e.observed and "sync failed" in e.observed
    killed = observe(outcomes=[outcome(1, None, killed=True, duration=30.0)])
    e = failing(judge("exit_status", killed, {"expect": "nonzero"}))
    assert "killed at the deadline" in e.observed
    assert judge("exit_status", observe(outcomes=[outcome(1, 0), outcome(2, 1)]), {"run": 1}).passed is True


def test_not_killed__pass(observe):
    assert judge("not_killed", observe(outcomes=[outcome(duration=2.0)])).passed is True


def test_not_killed__fail_names_the_deadline(make_provider, observe):
    """A server that accepts and never greets (imap.conn.blackhole); the client waits forever."""
    provider = make_provider(faults=[{"on": "connect", "action": "stall"}])
    with RawClient(provider.imap_port, timeout=0.2) as client:
        with pytest.raises(TimeoutError):
            client.line()
    obs = observe(provider, outcomes=[outcome(1, None, killed=True, duration=30.1, stdout="waiting for greeting")],
                  deadline=30)
    e = failing(judge("not_killed", obs))
    assert "30 s deadline" in e.observed and "waiting for greeting" in e.observed
    assert ">> -- fault on connect: stall()" in e.wire
    assert "12 s" in failing(judge("not_killed", obs, {"deadline": 12})).expected


def test_error_mentions__pass_reason_named(observe):
    obs = observe(outcomes=[outcome(1, 2, stderr="error: server does not offer STARTTLS; refusing to log in")])
    assert judge("error_mentions", obs, {"patterns": ["starttls", "tls.*(unavailable|not)"]}, "SHOULD").passed
    python = observe(outcomes=[outcome(1, 1, error="Traceback...\nssl.SSLCertVerificationError: certificate "
                                                   "has expired")])
    assert judge("error_mentions", python, {"patterns": ["certificate"]}, "SHOULD").passed is True
    stdout = observe(outcomes=[outcome(1, 1, stdout="TLS unavailable")])
    assert judge("error_mentions", stdout, {"patterns": ["tls"], "stream": "any"}, "SHOULD").passed is True


def test_error_mentions__fail_vague_message(observe):
    obs = observe(outcomes=[outcome(1, 1, stderr="Error", stdout="STARTTLS missing")])
    result = judge("error_mentions", obs, {"patterns": ["starttls"]}, "SHOULD")
    e = failing(result)
    assert result.level == "SHOULD" and "/starttls/" in e.expected and "'Error'" in e.observed
    assert combine("SHOULD", [result])[0] is Verdict.NON_STRICT


def test_completed_within__pass(observe):
    assert judge("completed_within", observe(outcomes=[outcome(duration=1.5)]), {"seconds": 2}).passed is True


def test_completed_within__fail_slow_or_killed(observe):
    e = failing(judge("completed_within", observe(outcomes=[outcome(duration=2.5)]), {"seconds": 2}))
    assert "took 2.50 s" in e.observed
    killed = observe(outcomes=[outcome(status=None, killed=True, duration=1.0)])
    assert judge("completed_within", killed, {"seconds": 2}).passed is False


def test_info_timing__measures_without_judging(imap, provider, observe):
    imap.select_folder("INBOX")
    imap.logout()
    result = judge("info_timing", observe(provider, outcomes=[outcome(1, None, killed=True, duration=9.0)]),
                   level="MUST")
    assert result.passed is None and result.level == "INFO" and result.error is None
    (e,) = result.evidence
    assert "run 1: killed at the deadline" in e.observed and "1 connection(s)" in e.observed
    assert re.search(r"[\d,]+ bytes from the client, [\d,]+ bytes to it", e.observed)
    assert combine("MUST", [result])[0] is Verdict.INFO


# -- the registry --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params", "named"), [
    ("no_credential_before_tls", {}, "'no_credentials_before_tls'"),
    ("max_conections", {"n": 1}, "'max_connections'"),
    ("store_matches_server", {"folder": ["INBOX"]}, "'folders'"),
    ("max_login_attempts", {"n": 1, "code": ["X"]}, "'codes'"),
    ("no_retry_storm", {"max_connection_per_run": 3}, "'max_connections_per_run'"),
    ("exit_status", {"expect": "non-zero"}, "'nonzero'"),
    ("used_tls", {"min_version": "TLSv1.4"}, "'TLSv1.3'"),
])
def test_validation_names_the_closest_valid_word(name, params, named):
    with pytest.raises(ValueError) as err:
        checks.validate(name, params)
    assert f"did you mean {named}?" in str(err.value)


@pytest.mark.parametrize(("name", "params", "says"), [
    ("max_connections", {}, "needs 'n'"),
    ("max_connections", {"n": "2"}, "'n' must be an integer"),
    ("max_connections", {"n": True}, "'n' must be an integer"),
    ("max_connections", {"n": 0}, "at least 1"),
    ("only_advertised", {"commands": "IDLE"}, "a list of strings"),
    ("backoff_respected", {"min_seconds": "2"}, "a number"),
    ("no_credentials_before_tls", {"strict": True}, "has no parameter 'strict'"),
])
def test_validation_refuses_bad_parameters(name, params, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        checks.validate(name, params)


def test_validation_accepts_what_scenarios_write():
    checks.validate("backoff_respected", {"min_seconds": 2})  # TOML integers are numbers too
    checks.validate("store_matches_server", {"folders": ["INBOX", "Archive/2024"], "allow_missing": 0})
    assert checks.closest("no_duplicate") == "no_duplicates"
    assert checks.closest("zzzzzz") is None


def test_a_check_that_raises_becomes_an_undecided_result(observe):
    @checks.check("test_raises", {}, doc="a defective check")
    def raises(obs, level):
        raise KeyError("boom")

    try:
        result = checks.run("test_raises", observe(), "MUST", {})
    finally:
        del checks.CHECKS["test_raises"]
    assert result.passed is None and "KeyError" in result.error and "boom" in result.error
    assert combine("MUST", [result])[0] is Verdict.ERROR


def test_undecidable_inputs_are_errors_not_verdicts(observe):
    no_state = checks.run("store_matches_server", observe(server=[]), "MUST", {})
    assert no_state.passed is None and "no server state" in no_state.error
    unknown = checks.run("no_such_check", observe(), "MUST", {})
    assert unknown.passed is None and "unknown check" in unknown.error
    bad_level = checks.run("not_killed", observe(), "MAY", {})
    assert bad_level.passed is None and "level" in bad_level.error


def test_plaintext_login_makes_a_security_fail(make_provider, observe):
    provider = make_provider(imap=PLAIN_LOGIN)
    with plain_client(provider) as client:
        login(client)
        logout(client)
    obs = observe(provider)
    results = [checks.run(name, obs, "MUST", {}) for name in ("no_credentials_before_tls", "exit_status")]
    verdict, reason, security = combine("MUST", results)
    assert verdict is Verdict.FAIL and security and reason.startswith("no credential before TLS")


def test_every_check_has_a_passing_and_a_failing_test():
    from tests import test_discovery_checks  # the discovery and OAuth checks are proven there
    from tests import test_smtp_checks  # the SMTP checks (and SMTP cases of the wire checks) are proven there

    modules = (sys.modules[__name__], test_smtp_checks, test_discovery_checks)
    names = [n for module in modules for n in dir(module) if n.startswith("test_")]
    for check in checks.CHECKS:
        if check in ("info_timing", "national_cloud_reported"):  # measured only: they never pass or fail
            assert f"test_{check}__measures_without_judging" in names
            continue
        if check == "alert_shown_before_tls":  # measured only; proven with real clients there
            from tests import test_alert_spoofing

            assert any(n.startswith("test_") for n in dir(test_alert_spoofing))
            continue
        assert any(n.startswith(f"test_{check}__pass") for n in names), f"no passing case for {check}"
        assert any(n.startswith(f"test_{check}__fail") for n in names), f"no failing case for {check}"
    for check in checks.CHECKS.values():
        assert check.doc, f"{check.name} has no rule in words"


# -- the Maildir reader --------------------------------------------------------------------------


def test_maildir_reader_layouts(tmp_path):
    root = tmp_path / "Maildir"
    (folder_dir(root, "INBOX") / "new" / "a").write_bytes(b"inbox")
    (folder_dir(root, "INBOX") / "tmp" / "b").write_bytes(b"in progress")
    (folder_dir(root, "INBOX") / "cur" / ".hidden").write_bytes(b"state")
    (folder_dir(root, "Archive/2024") / "cur" / "c:2,S").write_bytes(b"archived")
    (folder_dir(root, "%2Eprofile") / "new" / "d").write_bytes(b"escaped")
    (folder_dir(root, "Entwu\u0308rfe") / "new" / "e").write_bytes(b"nfd")
    (folder_dir(root, ".Sent.2023") / "new" / "f").write_bytes(b"maildir++")
    (folder_dir(root, "Empty"))
    (root / ".state").mkdir()
    folders = read_maildir(root)
    assert sorted(folders) == [".profile", "Archive/2024", "Empty", "Entwürfe", "INBOX", "Sent/2023"]
    assert [m.data for m in folders["INBOX"]] == [b"inbox"]
    (archived,) = folders["Archive/2024"]
    assert archived.flags == "S" and archived.name == "c"
    assert folders["Empty"] == []
    assert read_maildir(tmp_path / "absent") == {}
