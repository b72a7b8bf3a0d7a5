"""The bundled reference client, run as a real process against a real fake provider.

Each test starts ``python -m reference_client`` with the contract's environment and judges
it as the harness would: by the wire record (what crossed the socket, and when), the Maildir
it left (compared byte for byte with the fake's mailbox) and its exit status and stderr.
"""

from __future__ import annotations

import collections
import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_servers import FakeProvider
from fake_servers.imap.config import ImapConfig
from reference_client.backoff import Backoff, jitter
from reference_client.config import Config
from reference_client.errors import ClientError, Retry, suggested_backoff
from reference_client.maildir import flag_suffix, folder_path

from .conftest import PASSWORD, USER, sample_message

REPO = Path(__file__).resolve().parent.parent
AUTH_COMMANDS = ("LOGIN", "AUTHENTICATE")


def run_client(provider: FakeProvider, home: Path, *, security: str = "starttls", username: str = USER,
               password: str = PASSWORD, scenario: str = "test") -> subprocess.CompletedProcess:
    """One run of the client, as the command adapter starts it."""
    port = provider.imaps_port if security == "tls" else provider.imap_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCONFORM_")}
    env.update({
        "MAILCONFORM_SCENARIO": scenario,
        "MAILCONFORM_RUN": str(provider.wire.run),
        "MAILCONFORM_IMAP_HOST": provider.host,
        "MAILCONFORM_IMAP_PORT": str(port),
        "MAILCONFORM_IMAP_SECURITY": security,
        "MAILCONFORM_USERNAME": username,
        "MAILCONFORM_PASSWORD": password,
        "MAILCONFORM_CA_FILE": str(provider.ca_file),
        "MAILCONFORM_MAILDIR": str(home / "Maildir"),
        "MAILCONFORM_STATE_DIR": str(home / "state"),
    })
    return subprocess.run([sys.executable, "-m", "reference_client"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def server_mail(provider: FakeProvider, username: str = USER) -> dict[str, collections.Counter]:
    """Each non-empty folder's messages (bytes), as the fake holds them."""
    def read():
        account = provider.store.account(username)
        return {name: collections.Counter(m.raw for m in folder.messages)
                for name, folder in account.folders.items() if folder.messages}
    return provider.call(read)


def stored_mail(home: Path) -> dict[str, collections.Counter]:
    """Each non-empty Maildir's messages (bytes), by folder path relative to MAILDIR."""
    root = home / "Maildir"
    found: dict[str, collections.Counter] = {}
    for sub in sorted(root.rglob("*")):
        if sub.is_dir() and sub.name in ("cur", "new"):
            files = [f.read_bytes() for f in sub.iterdir() if f.is_file()]
            if files:
                found.setdefault(sub.parent.relative_to(root).as_posix(), collections.Counter()).update(files)
    return found


def tmp_files(home: Path) -> list[Path]:
    return [f for f in (home / "Maildir").rglob("tmp/*") if f.is_file()]


def auth_attempts(provider: FakeProvider, **where) -> list:
    return [cmd for _, cmd in provider.wire.commands(**where) if cmd.name in AUTH_COMMANDS]


def fetches(provider: FakeProvider, **where) -> list:
    return [cmd for _, cmd in provider.wire.commands("UID FETCH", **where)]


def assert_synced(provider: FakeProvider, home: Path, result, username: str = USER) -> None:
    assert result.returncode == 0, result.stderr
    assert stored_mail(home) == server_mail(provider, username)
    assert not tmp_files(home)


def assert_refused_before_credentials(provider: FakeProvider, result, password: str = PASSWORD) -> None:
    assert result.returncode == 3, (result.returncode, result.stderr)
    assert provider.wire.credentials_before_tls((password.encode(),)) == []
    assert auth_attempts(provider) == []
    for conn in provider.wire.connections:
        assert password.encode() not in conn.client_bytes()
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- sync --------------------------------------------------------------------------------------

ODD = [
    b"From: a@example.test\nSubject: bare LF\n\nline one\nline two\n",  # never rewritten to CRLF
    b"Subject: NUL \x00 and 8-bit \xe4\xf6\xfc\r\nMessage-ID: dup@example.test\r\n\r\n\xff\xfe\r\n",
    b"Subject: no final newline\r\n\r\nbody",
]


@pytest.fixture
def mailbox(make_provider) -> FakeProvider:
    """INBOX with 5 messages (odd ones \\Seen), odd bytes in a nested and a non-ASCII folder."""
    provider = make_provider(messages=5)

    def fill():
        account = provider.store.account(USER)
        nested = account.add_folder("Projects/2024")
        for raw in ODD:
            nested.append(raw, flags=("\\Flagged",))
        account.add_folder("Entwürfe", ("\\Drafts",)).append(SAMPLE_DRAFT, flags=("\\Draft", "\\Seen"))

    provider.call(fill)
    return provider


SAMPLE_DRAFT = b"Subject: Entwurf\r\n\r\nNoch nicht fertig.\r\n"


def test_full_sync_is_byte_exact_with_folders_as_directories(mailbox, tmp_path):
    result = run_client(mailbox, tmp_path)
    assert_synced(mailbox, tmp_path, result)
    root = tmp_path / "Maildir"
    assert sorted(stored_mail(tmp_path)) == ["Entwürfe", "INBOX", "Projects/2024"]
    assert (root / "Projects").is_dir() and not (root / "Projects" / "cur").exists()  # \Noselect parent
    inbox = root / "INBOX"
    assert sorted(f.name.rsplit(":", 1)[-1] for f in (inbox / "cur").iterdir()) == ["2,S"] * 3
    assert len(list((inbox / "new").iterdir())) == 2
    (draft,) = (root / "Entwürfe" / "cur").iterdir()
    assert draft.name.endswith(":2,DS") and draft.read_bytes() == SAMPLE_DRAFT
    for d in ("Drafts", "Sent", "Trash", "Junk", "Archive"):  # empty folders still get a Maildir
        assert (root / d / "cur").is_dir()
    sent = {cmd.name for _, cmd in mailbox.wire.commands()}
    assert sent <= {"CAPABILITY", "STARTTLS", "AUTHENTICATE", "CONTINUATION", "LIST", "EXAMINE", "UID SEARCH",
                    "UID FETCH", "LOGOUT"}, sent  # never IDLE, nothing unadvertised
    assert mailbox.wire.peak_concurrency() == 1


def test_implicit_tls_syncs_the_same(mailbox, tmp_path):
    result = run_client(mailbox, tmp_path, security="tls")
    assert_synced(mailbox, tmp_path, result)
    assert all(conn.implicit_tls for conn in mailbox.wire.connections)


def test_security_none_syncs_in_plaintext_as_configured(make_provider, tmp_path):
    provider = make_provider(imap=ImapConfig(login_disabled=False))
    assert_synced(provider, tmp_path, run_client(provider, tmp_path, security="none"))
    assert {cmd.name for _, cmd in provider.wire.commands()} & {"STARTTLS"} == set()


def test_second_run_fetches_nothing_then_new_mail_arrives_and_expunged_mail_goes(mailbox, tmp_path):
    assert_synced(mailbox, tmp_path, run_client(mailbox, tmp_path))
    mailbox.next_run()
    assert_synced(mailbox, tmp_path, run_client(mailbox, tmp_path))
    assert fetches(mailbox, run=2) == []

    def change():
        inbox = mailbox.store.account(USER).folder("INBOX")
        inbox.append(sample_message(99))
        inbox.expunge([2])

    mailbox.call(change)
    mailbox.next_run()
    assert_synced(mailbox, tmp_path, run_client(mailbox, tmp_path))
    (fetch,) = fetches(mailbox, run=3)
    assert b"UID FETCH 6 " in fetch.raw  # only the new message


def test_messages_expunged_while_fetching_are_not_left_behind(make_provider, tmp_path):
    provider = make_provider(messages=6, faults=[{"on": "command", "command": "UID FETCH", "nth": 1,
                                                  "action": "expunge", "uids": [2, 5]},
                                                 {"on": "command", "command": "UID FETCH", "nth": 1,
                                                  "action": "new_mail", "count": 2}])
    assert_synced(provider, tmp_path, run_client(provider, tmp_path))
    assert sum(stored_mail(tmp_path)["INBOX"].values()) == 6


def test_uidvalidity_change_with_renumbering_converges_without_duplicates(mailbox, tmp_path):
    assert_synced(mailbox, tmp_path, run_client(mailbox, tmp_path))
    before = {p.name.split(":")[0] for p in (tmp_path / "Maildir" / "INBOX").rglob("*") if p.is_file()}

    def change():
        inbox = mailbox.store.account(USER).folder("INBOX")
        inbox.expunge([3])
        inbox.change_uidvalidity("renumber")
        inbox.append(sample_message(42))  # takes UID 5, which meant another message before

    mailbox.call(change)
    mailbox.next_run()
    result = run_client(mailbox, tmp_path)
    assert_synced(mailbox, tmp_path, result)
    assert "UIDVALIDITY changed" in result.stderr
    after = {p.name.split(":")[0] for p in (tmp_path / "Maildir" / "INBOX").rglob("*") if p.is_file()}
    assert len(after) == 5 and len(before & after) == 4  # survivors kept their files, one written
    assert "1 fetched, 4 matched by content, 1 removed" in result.stdout


def test_uidvalidity_new_at_every_session_never_grows_duplicates(make_provider, tmp_path):
    provider = make_provider(messages=4)
    provider.call(lambda: setattr(provider.store.account(USER), "uidvalidity_policy", "every-session"))
    provider.call(lambda: setattr(provider.store.account(USER), "uidvalidity_mode", "shuffle"))
    for n in range(3):
        assert_synced(provider, tmp_path, run_client(provider, tmp_path))
        provider.call(lambda: provider.store.account(USER).folder("INBOX").append(sample_message(50 + n)))
        provider.next_run()


# -- TLS ---------------------------------------------------------------------------------------


def test_no_starttls_offered_aborts_before_any_credential(make_provider, tmp_path):
    provider = make_provider(imap=ImapConfig(starttls=False, login_disabled=False))
    result = run_client(provider, tmp_path)
    assert_refused_before_credentials(provider, result)
    assert "server does not offer STARTTLS; refusing to send credentials in plaintext" in result.stderr


def test_starttls_refused_aborts_before_any_credential(make_provider, tmp_path):
    provider = make_provider(imap=ImapConfig(login_disabled=False), faults=[
        {"on": "command", "command": "STARTTLS", "action": "reply", "status": "NO", "text": "TLS unavailable"}])
    result = run_client(provider, tmp_path)
    assert_refused_before_credentials(provider, result)
    assert "server refused STARTTLS" in result.stderr


def test_preauth_greeting_on_plaintext_aborts(make_provider, tmp_path):
    provider = make_provider(imap=ImapConfig(preauth=True))
    result = run_client(provider, tmp_path)
    assert_refused_before_credentials(provider, result)
    assert "PREAUTH" in result.stderr
    assert {cmd.name for _, cmd in provider.wire.commands()} <= {"CAPABILITY"}  # no mail data either


def test_plaintext_injected_behind_starttls_ok_is_never_used(make_provider, tmp_path):
    """Lines behind the OK advertise LOGIN without LOGINDISABLED and fake a tagged OK: a
    client that read them would log in with LOGIN or believe it had. Ours drops them."""
    provider = make_provider(faults=[{"on": "command", "command": "STARTTLS", "action": "untagged", "when": "after",
                                      "lines": ["CAPABILITY IMAP4rev1 AUTH=LOGIN", "OK [ALERT] injected"]}])
    result = run_client(provider, tmp_path)
    assert provider.wire.credentials_before_tls((PASSWORD.encode(),)) == []
    assert [c.name for c in auth_attempts(provider)] in ([], ["AUTHENTICATE"])
    assert all(b"AUTHENTICATE LOGIN" not in c.raw for c in auth_attempts(provider))
    assert "injected" not in result.stderr.replace("possible response injection", "")
    if result.returncode == 0:  # the lines arrived with the OK and were discarded
        assert "discarded" in result.stderr
        assert stored_mail(tmp_path) == server_mail(provider)
    else:  # they arrived during the handshake and broke it
        assert result.returncode == 3, result.stderr


def test_capabilities_are_asked_again_after_starttls(make_provider, tmp_path):
    """Before TLS the server offers only LOGIN; after TLS only PLAIN: PLAIN must be used."""
    provider = make_provider(imap=ImapConfig(
        login_disabled=False,
        capabilities_plaintext=("IMAP4rev1", "STARTTLS", "AUTH=LOGIN"),
        capabilities_tls=("IMAP4rev1", "AUTH=PLAIN")))
    assert_synced(provider, tmp_path, run_client(provider, tmp_path))
    (attempt,) = auth_attempts(provider)
    assert attempt.raw.startswith(attempt.tag.encode() + b" AUTHENTICATE PLAIN") and attempt.tls


@pytest.mark.parametrize("security", ["tls", "starttls"])
@pytest.mark.parametrize("cert", ["expired", "wrong-host", "untrusted"])
def test_invalid_certificate_aborts_before_any_credential(make_provider, tmp_path, security, cert):
    provider = make_provider(cert=cert)
    result = run_client(provider, tmp_path, security=security)
    assert_refused_before_credentials(provider, result)
    assert "certificate" in result.stderr


# -- authentication ----------------------------------------------------------------------------


def test_non_ascii_username_authenticates_with_exact_utf8(make_provider, tmp_path):
    provider = make_provider(messages=None)
    user, password = "jürgen.müller@example.test", "pässwörd ✓"
    provider.call(lambda: provider.store.add_account(user, password).folder("INBOX").append(sample_message(1)))
    assert_synced(provider, tmp_path, run_client(provider, tmp_path, username=user, password=password), user)
    assert [c.name for c in auth_attempts(provider)] == ["AUTHENTICATE"]


def test_plaintext_login_disabled_with_security_none_never_sends_login(provider, tmp_path):
    result = run_client(provider, tmp_path, security="none")
    assert_refused_before_credentials(provider, result)
    assert "LOGINDISABLED" in result.stderr


def test_login_command_when_no_sasl_mechanism_is_offered(make_provider, tmp_path):
    provider = make_provider(imap=ImapConfig(mechanisms=()))
    assert_synced(provider, tmp_path, run_client(provider, tmp_path))
    assert [c.name for c in auth_attempts(provider)] == ["LOGIN"]


def test_invalid_credentials_exit_4_with_the_servers_words_and_no_retry(provider, tmp_path):
    result = run_client(provider, tmp_path, password="wrong")
    assert result.returncode == 4, result.stderr
    assert "[AUTHENTICATIONFAILED] Authentication failed." in result.stderr
    assert 1 <= len(auth_attempts(provider)) <= 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_alert_sent_before_tls_is_never_shown_as_the_servers(make_provider, tmp_path):
    provider = make_provider(faults=[{"on": "command", "command": "STARTTLS", "action": "untagged",
                                      "lines": ["OK [ALERT] Your account is suspended, log in at http://evil"]}])
    result = run_client(provider, tmp_path, password="wrong")
    assert result.returncode == 4, result.stderr
    assert "suspended" not in result.stderr


def test_an_alert_sent_during_login_is_shown(make_provider, tmp_path):
    provider = make_provider(faults=[{"on": "command", "command": "AUTHENTICATE", "action": "untagged",
                                      "lines": ["NO [ALERT] Your account is not enabled for IMAP use."]}])
    result = run_client(provider, tmp_path, password="wrong")
    assert result.returncode == 4, result.stderr
    assert "server alert: [ALERT] Your account is not enabled for IMAP use." in result.stderr


def test_alert_text_is_shown(make_provider, tmp_path):
    provider = make_provider(messages=None)
    provider.add_account(USER, PASSWORD, app_passwords=("app-secret",), require_app_password=True)
    result = run_client(provider, tmp_path)
    assert result.returncode == 4
    assert "[ALERT] Application-specific password required" in result.stderr
    assert len(auth_attempts(provider)) == 1


def test_temporary_authentication_failure_is_retried_after_a_pause(make_provider, tmp_path):
    provider = make_provider(faults=[{"on": "command", "command": "AUTHENTICATE", "nth": 1, "action": "reply",
                                      "status": "NO", "code": "UNAVAILABLE",
                                      "text": "Temporary authentication failure"}])
    assert_synced(provider, tmp_path, run_client(provider, tmp_path))
    first, second = auth_attempts(provider)
    assert second.at - first.at >= 1.0
    assert provider.wire.peak_concurrency() == 1


def test_a_connection_lost_at_every_login_is_tried_once_more_only(make_provider, tmp_path):
    provider = make_provider(faults=[{"on": "command", "command": "AUTHENTICATE", "action": "reset"}])
    result = run_client(provider, tmp_path)
    assert result.returncode == 5, result.stderr
    assert len(auth_attempts(provider)) == 2 and len(provider.wire.connections) == 2


# -- throttling and broken connections -----------------------------------------------------------


def test_throttle_bye_waits_at_least_the_suggested_time(make_provider, tmp_path):
    provider = make_provider(faults=[{
        "on": "command", "command": "UID FETCH", "nth": 1,
        "actions": [{"action": "reply", "status": "BAD",
                     "text": "Request is throttled. Suggested Backoff Time: 1200 milliseconds"},
                    {"action": "bye", "text": "Session invalidated"}]}])
    assert_synced(provider, tmp_path, run_client(provider, tmp_path))
    first, second = provider.wire.connections
    (bye,) = [r for r in first.responses if r.status == "BYE"]
    assert second.opened_at - bye.at >= 1.2
    assert provider.wire.peak_concurrency() == 1


def test_bad_after_login_reconnects_and_completes(make_provider, tmp_path):
    provider = make_provider(faults=[{"on": "command", "command": "LIST", "nth": 1, "action": "reply", "status": "BAD",
                                      "text": "User is authenticated but not connected."}])
    assert_synced(provider, tmp_path, run_client(provider, tmp_path))
    assert len(provider.wire.connections) == 2 and provider.wire.peak_concurrency() == 1


def test_greeting_refusals_are_retried_a_little_then_reported(make_provider, tmp_path):
    provider = make_provider(faults=[{"on": "greeting", "action": "reply", "status": "BYE",
                                      "text": "connection from this address is not allowed"}])
    result = run_client(provider, tmp_path)
    assert result.returncode == 5
    assert "connection from this address is not allowed" in result.stderr.splitlines()[-1]
    opened = [c.opened_at for c in provider.wire.connections]
    assert len(opened) == 2 and opened[1] - opened[0] >= 1  # one later try, after a backoff


def test_overquota_bye_stops_the_run(make_provider, tmp_path):
    provider = make_provider(faults=[{"on": "command", "command": "UID FETCH", "action": "bye", "code": "OVERQUOTA",
                                      "text": "Account exceeded command or bandwidth limits."}])
    result = run_client(provider, tmp_path)
    assert result.returncode == 5, result.stderr
    assert "OVERQUOTA" in result.stderr
    assert len(provider.wire.connections) == 1


def test_connection_reset_inside_a_fetch_literal_stores_nothing_truncated(make_provider, tmp_path):
    provider = make_provider(messages=12)
    provider.add_rule({"on": "response", "command": "UID FETCH", "nth": 1, "action": "truncate",
                       "after_bytes": 700, "then": "reset"})
    result = run_client(provider, tmp_path)
    assert_synced(provider, tmp_path, result)
    assert len(provider.wire.connections) == 2 and provider.wire.peak_concurrency() == 1
    first = provider.wire.connections[0]
    assert first.bytes_sent < sum(m.size for m in provider.call(
        lambda: provider.store.account(USER).folder("INBOX").messages))  # the cut was inside the literals


def test_the_cut_run_leaves_no_partial_file_even_without_a_second_chance(make_provider, tmp_path):
    """A reset inside the only literal, and the server never comes back: nothing stored."""
    provider = make_provider(messages=1)
    provider.add_rule({"on": "response", "command": "UID FETCH", "action": "truncate", "after_bytes": 60,
                       "then": "reset"})
    provider.add_rule({"on": "connect", "session": 2, "action": "bye", "code": "OVERQUOTA", "text": "go away"})
    result = run_client(provider, tmp_path)
    assert result.returncode == 5, result.stderr
    assert stored_mail(tmp_path) == {} and not tmp_files(tmp_path)


# -- configuration and pieces ------------------------------------------------------------------


def test_missing_environment_is_a_usage_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCONFORM_")}
    result = subprocess.run([sys.executable, "-m", "reference_client"], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "MAILCONFORM_IMAP_SECURITY is not set" in result.stderr


def test_config_refuses_an_unknown_security_mode(tmp_path):
    env = {"MAILCONFORM_IMAP_HOST": "h", "MAILCONFORM_IMAP_PORT": "143", "MAILCONFORM_IMAP_SECURITY": "ssl",
           "MAILCONFORM_USERNAME": "u", "MAILCONFORM_PASSWORD": "p", "MAILCONFORM_MAILDIR": str(tmp_path),
           "MAILCONFORM_STATE_DIR": str(tmp_path)}
    with pytest.raises(ClientError, match="expected one of tls, starttls, none"):
        Config.from_env(env)


@pytest.mark.parametrize(("text", "seconds"), [
    ("Request is throttled. Suggested Backoff Time: 2000 milliseconds", 2.0),
    ("FETCH command error: BAD [b'Request is throttled. Suggested Backoff Time: 250 milliseconds']", 0.25),
    ("[UNAVAILABLE] try later", None),
])
def test_suggested_backoff_is_read_from_the_servers_text(text, seconds):
    assert suggested_backoff(text) == seconds


def test_backoff_honours_the_suggestion_is_bounded_and_reproducible():
    waits = Backoff("imap.throttle.bye-with-backoff", sleep=lambda s: None)
    first = waits.delay(Retry("throttled", at_least=2.0))
    assert 2.0 <= first <= 2.3
    assert first == Backoff("imap.throttle.bye-with-backoff").delay(Retry("throttled", at_least=2.0))
    assert jitter("a", 1) != jitter("b", 1)
    with pytest.raises(ClientError, match="longer than this client waits"):
        Backoff("x").delay(Retry("slow down", at_least=600))
    give_up = Backoff("x")
    for base in (1, 2, 4, 8):
        assert base <= give_up.delay(Retry("reset")) < base * 1.25
    with pytest.raises(ClientError) as err:
        give_up.delay(Retry("reset"))
    assert err.value.status == 5


def test_maildir_paths_and_flags():
    root = Path("/m")
    assert folder_path(root, "INBOX", "/") == root / "INBOX"
    assert folder_path(root, "inbox.Sub", ".") == root / "INBOX" / "Sub"
    assert folder_path(root, "Archive/2024", "/") == root / "Archive" / "2024"
    assert folder_path(root, "a/b.c", ".") == root / "a%2Fb" / "c"
    assert folder_path(root, "../x", None) == root / "%2E./x".replace("/", "%2F")
    assert folder_path(root, "INBOX/new", "/") == root / "INBOX" / "%6Eew"
    assert flag_suffix([b"\\Seen", b"\\Flagged", b"$Junk"]) == ":2,FS"
    assert flag_suffix([]) == ""


def test_identical_messages_are_both_kept(make_provider, tmp_path):
    """Two messages with the same bytes are two messages: neither merged nor dropped."""
    provider = make_provider(messages=None)

    def fill():
        inbox = provider.store.add_account(USER, PASSWORD).folder("INBOX")
        for day in (1, 2):
            inbox.append(sample_message(7), internal_date=datetime.datetime(2024, 1, day, tzinfo=datetime.timezone.utc))

    provider.call(fill)
    assert_synced(provider, tmp_path, run_client(provider, tmp_path))
    assert stored_mail(tmp_path)["INBOX"][sample_message(7)] == 2
