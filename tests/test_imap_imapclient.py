"""The IMAP fake as imapclient 4.x drives it: real sockets, real TLS, every command a sync
client sends, and the exact responses RFC 3501 / 9051 (and Dovecot 2.3, where they leave a
choice) give.

The default account (``conftest.populate``) has five INBOX messages; odd ones are \\Seen and
message n arrived on 2024-01-0n 10:00 UTC. Wire-level checks read the fake's own record of
what it sent (``provider.wire``), so they see bytes imapclient would hide.

imapclient 4.x quirks shape some tests: ``fetch("1:*")`` raises after the command ran, so
tests search first; ``login()`` cannot send a non-ASCII user name, so ``plain_login`` does.
"""

from __future__ import annotations

import base64
import datetime
import socket
import ssl

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.response_types import Address, Envelope

from fake_servers.imap.config import ImapConfig

from .conftest import PASSWORD, USER, sample_message
from .netutil import twisted_errors  # noqa: F401  (fixture)

TIMEOUT = 5.0
UTC = datetime.timezone.utc
JUERGEN = "jürgen.müller@example.test"
SEEN, FLAGGED, DELETED = b"\\Seen", b"\\Flagged", b"\\Deleted"


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """An exception inside the fake would reach the client as a timeout; fail on it instead."""


# -- helpers --------------------------------------------------------------------------------


def context(provider) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(provider.ca_file))


def connect(provider, *, tls: str = "starttls", login: bool = True) -> imapclient.IMAPClient:
    """imapclient on the plaintext port with STARTTLS (or none), or on the implicit-TLS port."""
    if tls == "implicit":
        client = imapclient.IMAPClient(provider.host, port=provider.imaps_port, ssl=True,
                                       ssl_context=context(provider), timeout=TIMEOUT)
    else:
        client = imapclient.IMAPClient(provider.host, port=provider.imap_port, ssl=False, timeout=TIMEOUT)
        if tls == "starttls":
            client.starttls(context(provider))
    # Without it, every command sent in two writes (a literal) waits ~40 ms for a delayed ACK.
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.normalise_times = False  # keep INTERNALDATE's zone, whatever the local one is
    client.local_port = client.socket().getsockname()[1]  # finds its wire record after logout
    if login:
        client.login(USER, PASSWORD)
        # imapclient sends CAPABILITY before some commands until it has cached the answer; a
        # CAPABILITY may carry pending updates, which would blur what those commands are sent.
        client.capabilities()
    return client


@pytest.fixture
def clients(provider):
    """Factory for more clients of the default provider; all logged out at teardown."""
    made: list[imapclient.IMAPClient] = []

    def make(**options) -> imapclient.IMAPClient:
        made.append(connect(provider, **options))
        return made[-1]

    yield make
    for client in made:
        try:
            client.logout()
        except Exception:
            pass


@pytest.fixture
def client(clients):
    return clients()


@pytest.fixture
def inbox(client):
    client.select_folder("INBOX")
    return client


def folder(provider, name: str = "INBOX", user: str = USER):
    return provider.call(lambda: provider.store.account(user).folder(name))


def sent_to(provider, client) -> bytes:
    """Every byte the fake sent on this client's connection (decrypted)."""
    conn = next(c for c in provider.wire.connections if c.peer.endswith(f":{client.local_port}"))
    return provider.call(conn.server_bytes)


def answer_to(provider, client, command) -> bytes:
    """What the fake sent while ``command()`` ran on ``client`` (the responses to it)."""
    before = len(sent_to(provider, client))
    command()
    return sent_to(provider, client)[before:]


def tagless(data: bytes) -> bytes:
    """Response lines with the tags of tagged lines replaced by ``T`` (tags are the client's)."""
    return b"".join(b"T" + line[line.index(b" "):] if line[:1] not in (b"*", b"+") else line
                    for line in data.splitlines(keepends=True))


def lines_to(provider, client) -> list[bytes]:
    return sent_to(provider, client).split(b"\r\n")


def last_reply(provider, client) -> bytes:
    """The last tagged response without its tag, e.g. ``NO [TRYCREATE] ...``: imapclient's
    exceptions drop the status word, which is what these tests are about."""
    tagged = [line for line in lines_to(provider, client) if line[:1] not in (b"*", b"+", b"")]
    return tagged[-1].split(b" ", 1)[1]


def append(provider, raw: bytes, name: str = "INBOX", **options):
    return provider.call(lambda: folder(provider, name).append(raw, **options))


# -- connection, TLS, capabilities ------------------------------------------------------------


def test_greeting_before_tls_offers_starttls_and_logindisabled_but_no_mechanism(provider):
    """RFC 3501 §6.2.3, §7.2.1: LOGINDISABLED before TLS, and no AUTH= a client could misuse."""
    client = connect(provider, tls="none", login=False)
    caps = client.capabilities()
    assert {b"IMAP4REV1", b"STARTTLS", b"LOGINDISABLED"} <= set(caps)
    assert not [c for c in caps if c.startswith(b"AUTH=")]
    assert client.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    client.shutdown()


def test_starttls_verifies_the_run_ca_and_new_capabilities_offer_mechanisms(provider):
    """RFC 3501 §6.2.1: capabilities are asked again after TLS; they change as configured."""
    client = connect(provider, tls="starttls", login=False)
    assert client.socket().version() in ("TLSv1.2", "TLSv1.3")
    caps = set(client.capabilities())
    assert {b"AUTH=PLAIN", b"AUTH=LOGIN"} <= caps
    assert not caps & {b"STARTTLS", b"LOGINDISABLED"}
    client.login(USER, PASSWORD)
    client.logout()


def test_starttls_fails_verification_against_the_system_trust_store(provider):
    """The run's CA is private: a client trusting only the system store must refuse it."""
    client = connect(provider, tls="none", login=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(ssl.create_default_context())
    client.socket().close()


def test_implicit_tls_port_greets_after_the_handshake_without_starttls(provider):
    client = connect(provider, tls="implicit", login=False)
    assert client.socket().version() in ("TLSv1.2", "TLSv1.3")
    caps = set(client.capabilities())
    assert b"AUTH=PLAIN" in caps and not caps & {b"STARTTLS", b"LOGINDISABLED"}
    client.login(USER, PASSWORD)
    assert client.select_folder("INBOX")[b"EXISTS"] == 5
    client.logout()


def test_login_answers_with_post_login_capabilities(provider):
    """Dovecot-style [CAPABILITY ...] in the tagged OK, so clients need no second CAPABILITY."""
    client = connect(provider, login=False)
    answer = client.login(USER, PASSWORD)
    assert answer.startswith(b"[CAPABILITY IMAP4rev1 ") and answer.endswith(b"] Logged in")
    caps = set(client.capabilities())
    assert {b"IDLE", b"UIDPLUS", b"MOVE", b"UNSELECT", b"ENABLE", b"CONDSTORE", b"UTF8=ACCEPT",
            b"SPECIAL-USE", b"LIST-EXTENDED", b"LIST-STATUS", b"NAMESPACE", b"ID", b"LITERAL+"} <= caps
    assert not [c for c in caps if c.startswith(b"AUTH=")] and b"STARTTLS" not in caps
    client.logout()


# -- authentication -------------------------------------------------------------------------


def test_wrong_password_fails_with_authenticationfailed(provider):
    client = connect(provider, login=False)
    with pytest.raises(LoginError, match=r"\[AUTHENTICATIONFAILED\] Authentication failed\."):
        client.login(USER, "wrong")
    client.login(USER, PASSWORD)  # the session stays usable after a failed attempt
    client.logout()


def test_login_before_tls_is_refused_with_privacyrequired(provider):
    """Dovecot's answer, byte for byte: an [ALERT] that the password was exposed, then NO."""
    client = connect(provider, tls="none", login=False)
    with pytest.raises(LoginError, match=r"\[PRIVACYREQUIRED\]"):
        client.login(USER, PASSWORD)
    alert, refusal = lines_to(provider, client)[-3:-1]
    assert alert == (b"* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did "
                     b"it anyway. If anyone was listening, the password was exposed.")
    assert refusal.split(b" ", 1)[1] == (b"NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
                                         b"non-secure (SSL/TLS) connections.")
    client.shutdown()


def test_authenticate_plain_before_tls_is_refused_with_privacyrequired(provider):
    """A known mechanism not yet offered is refused for privacy, not as unknown (Dovecot)."""
    client = connect(provider, tls="none", login=False)
    with pytest.raises(LoginError, match=r"\[PRIVACYREQUIRED\] Plaintext authentication disabled\."):
        client.plain_login(USER, PASSWORD)
    client.shutdown()


def test_plain_login_carries_a_utf8_user_name_exactly(provider):
    provider.add_account(JUERGEN, "pässwort")
    client = connect(provider, login=False)
    assert client.plain_login(JUERGEN, "pässwort").endswith(b"Logged in")
    client.logout()


def test_plain_login_with_a_latin1_mangled_user_name_fails(provider):
    """Invalid UTF-8 is never guessed at: the login fails as a login, not as a syntax error."""
    provider.add_account(JUERGEN, "pw")
    client = connect(provider, login=False)
    with pytest.raises(LoginError, match=r"\[AUTHENTICATIONFAILED\]"):
        client.sasl_login("PLAIN", lambda _: b"\0" + JUERGEN.encode("latin-1") + b"\0pw")
    assert last_reply(provider, client) == b"NO [AUTHENTICATIONFAILED] Authentication failed."
    with pytest.raises(LoginError, match=r"\[AUTHENTICATIONFAILED\]"):  # double-encoded (mojibake)
        client.sasl_login("PLAIN", lambda _: b"\0" + JUERGEN.encode().decode("latin-1").encode() + b"\0pw")
    client.plain_login(JUERGEN, "pw")
    client.logout()


def test_authenticate_login_asks_for_user_name_then_password(provider):
    challenges = []

    def answer(challenge: bytes) -> bytes:
        challenges.append(challenge)
        return USER.encode() if challenge == b"Username:" else PASSWORD.encode()

    client = connect(provider, login=False)
    client.sasl_login("LOGIN", answer)
    assert challenges == [b"Username:", b"Password:"]
    assert client.select_folder("INBOX")[b"EXISTS"] == 5
    client.logout()


@pytest.fixture
def oauth_provider(make_provider):
    provider = make_provider(imap=ImapConfig(mechanisms=("PLAIN", "LOGIN", "XOAUTH2")), messages=None)
    provider.add_account(USER, PASSWORD, oauth_tokens=("ya29.token",))
    return provider


def test_xoauth2_with_a_valid_bearer_token_logs_in(oauth_provider):
    client = connect(oauth_provider, login=False)
    assert b"AUTH=XOAUTH2" in client.capabilities()
    client.oauth2_login(USER, "ya29.token")
    assert client.list_folders(pattern="INBOX")[0][2] == "INBOX"
    client.logout()


def test_xoauth2_with_a_bad_token_sends_an_error_challenge_then_fails(oauth_provider):
    """Gmail's shape: ``+ <base64 JSON status>``, then NO whatever the client answers to it."""
    client = connect(oauth_provider, login=False)
    with pytest.raises(LoginError, match=r"\[AUTHENTICATIONFAILED\]"):
        client.oauth2_login(USER, "expired")
    challenge = next(line for line in lines_to(oauth_provider, client) if line.startswith(b"+ ey"))
    assert base64.b64decode(challenge[2:]).startswith(b'{"status":"401"')
    client.oauth2_login(USER, "ya29.token")
    client.logout()


def test_app_password_required_says_so_in_an_alert(make_provider):
    provider = make_provider(messages=None)
    provider.add_account(USER, PASSWORD, app_passwords=("abcd efgh",), require_app_password=True)
    client = connect(provider, login=False)
    with pytest.raises(LoginError, match=r"\[ALERT\] Application-specific password required"):
        client.login(USER, PASSWORD)
    assert last_reply(provider, client) == b"NO [ALERT] Application-specific password required"
    with pytest.raises(LoginError, match=r"\[ALERT\] Application-specific password required"):
        client.plain_login(USER, PASSWORD)
    client.plain_login(USER, "abcd efgh")
    client.logout()


def test_preauth_greeting_logs_in_the_only_account(make_provider):
    """A PREAUTH greeting (the STARTTLS-stripping scenario) leaves the client authenticated,
    with the post-login capabilities: STARTTLS is no longer possible."""
    provider = make_provider(imap=ImapConfig(preauth=True))
    client = connect(provider, tls="none", login=False)
    assert client.welcome.startswith(b"* PREAUTH [CAPABILITY IMAP4rev1 ")
    assert b"STARTTLS" not in client.welcome and b"UIDPLUS" in client.welcome
    assert client.select_folder("INBOX")[b"EXISTS"] == 5
    client.logout()


def test_preauth_with_no_account_to_be_refuses_account_commands(make_provider):
    provider = make_provider(imap=ImapConfig(preauth=True))
    provider.add_account("bob@example.test", "pw")  # two accounts: whom PREAUTH means is unknown
    client = connect(provider, tls="none", login=False)
    with pytest.raises(IMAPClientError, match=r"\[UNAVAILABLE\]"):
        client.list_folders()
    assert client.noop()[0] == b"NOOP completed."
    client.logout()


# -- session-wide commands ------------------------------------------------------------------


def test_enable_answers_with_what_it_newly_enabled(client):
    """RFC 5161: ENABLED lists the extensions this command enabled; repeats list nothing."""
    assert client.enable("CONDSTORE", "UTF8=ACCEPT", "X-UNKNOWN") == [b"CONDSTORE", b"UTF8=ACCEPT"]
    assert client.enable("CONDSTORE") == []


def test_id_names_the_server(client):
    assert client.id_({"name": "test-client"}) == ((b"name", b"mailconform", b"vendor", b"mailconform"),)
    assert client.id_() == ((b"name", b"mailconform", b"vendor", b"mailconform"),)


def test_namespace_is_one_personal_namespace_with_the_slash_delimiter(client):
    assert client.namespace() == ((("", "/"),), None, None)


def test_noop_and_logout(provider, clients):
    client = clients()
    assert client.noop() == (b"NOOP completed.", [])
    assert client.logout() == b"Logging out"
    bye, done, end = lines_to(provider, client)[-3:]
    assert (bye, done.split(b" ", 1)[1], end) == (b"* BYE Logging out", b"OK Logout completed.", b"")


# -- folders --------------------------------------------------------------------------------


def test_list_shows_inbox_first_then_folders_with_special_use(client):
    assert client.list_folders() == [
        ((b"\\HasNoChildren",), b"/", "INBOX"),
        ((b"\\HasNoChildren", b"\\Archive"), b"/", "Archive"),
        ((b"\\HasNoChildren", b"\\Drafts"), b"/", "Drafts"),
        ((b"\\HasNoChildren", b"\\Junk"), b"/", "Junk"),
        ((b"\\HasNoChildren", b"\\Sent"), b"/", "Sent"),
        ((b"\\HasNoChildren", b"\\Trash"), b"/", "Trash"),
    ]
    assert client.find_special_folder(imapclient.imapclient.SENT) == "Sent"
    assert client.find_special_folder(imapclient.imapclient.TRASH) == "Trash"


def test_list_patterns_percent_stops_at_the_delimiter_star_does_not(client):
    client.create_folder("Projects/2024/Q1")
    assert [n for _, _, n in client.list_folders(pattern="Projects/%")] == ["Projects/2024"]
    assert [n for _, _, n in client.list_folders("Projects/", "*")] == ["Projects/2024", "Projects/2024/Q1"]
    assert [n for _, _, n in client.list_folders(pattern="inbox")] == ["INBOX"]  # INBOX is case-insensitive


def test_nested_create_implies_non_selectable_parents(client):
    """As on Dovecot: parents of a nested CREATE are listed \\Noselect \\HasChildren."""
    assert client.create_folder("Projects/2024/Q1") == b"Create completed."
    assert [f for f in client.list_folders() if f[2].startswith("Projects")] == [
        ((b"\\Noselect", b"\\HasChildren"), b"/", "Projects"),
        ((b"\\Noselect", b"\\HasChildren"), b"/", "Projects/2024"),
        ((b"\\HasNoChildren",), b"/", "Projects/2024/Q1"),
    ]
    with pytest.raises(IMAPClientError, match=r"NONEXISTENT"):
        client.select_folder("Projects")


def test_create_of_an_existing_folder_fails_with_alreadyexists(provider, client):
    with pytest.raises(IMAPClientError, match=r"\[ALREADYEXISTS\]"):
        client.create_folder("Sent")
    assert last_reply(provider, client) == b"NO [ALREADYEXISTS] Mailbox already exists"


def test_lsub_lists_subscribed_folders_only_and_create_does_not_subscribe(client):
    """RFC 3501 §6.3.3, §6.3.6: CREATE leaves subscriptions alone; SUBSCRIBE adds one."""
    client.create_folder("Lists")
    assert "Lists" not in [n for _, _, n in client.list_sub_folders()]
    client.subscribe_folder("Lists")
    assert ((b"\\HasNoChildren",), b"/", "Lists") in client.list_sub_folders()
    client.unsubscribe_folder("Lists")
    client.unsubscribe_folder("Trash")
    assert [n for _, _, n in client.list_sub_folders()] == ["INBOX", "Archive", "Drafts", "Junk", "Sent"]
    with pytest.raises(IMAPClientError, match=r"NONEXISTENT"):
        client.subscribe_folder("Nope")


def test_lsub_percent_names_the_unsubscribed_parent_of_a_subscribed_folder(client):
    """RFC 3501 §6.3.9: "foo/bar" subscribed, "foo" not: LSUB "" "%" returns foo, \\Noselect."""
    client.create_folder("Lists/Dev")
    client.create_folder("Other")
    client.subscribe_folder("Lists/Dev")
    assert [f for f in client.list_sub_folders(pattern="%") if f[2] in ("Lists", "Other")] == [
        ((b"\\Noselect", b"\\HasChildren"), b"/", "Lists")]
    assert [f[2] for f in client.list_sub_folders() if f[2].startswith("Lists")] == ["Lists/Dev"]


def test_non_ascii_folder_names_travel_as_modified_utf7(provider, client):
    client.create_folder("Entwürfe")
    client.create_folder("日本語")
    client.create_folder("Tom & Jerry")
    names = [n for _, _, n in client.list_folders()]
    assert {"Entwürfe", "日本語", "Tom & Jerry"} <= set(names)
    wire = sent_to(provider, client)
    assert b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe\r\n' in wire
    assert b'* LIST (\\HasNoChildren) "/" &ZeVnLIqe-\r\n' in wire
    assert b'* LIST (\\HasNoChildren) "/" "Tom &- Jerry"\r\n' in wire
    assert {"Entwürfe", "日本語", "Tom & Jerry"} <= set(provider.call(lambda: list(provider.store.account(USER).folders)))
    assert client.select_folder("日本語")[b"EXISTS"] == 0


def test_folder_names_are_utf8_on_the_wire_after_enable_utf8_accept(provider, client):
    """RFC 6855 §3: after ENABLE UTF8=ACCEPT, names are sent as UTF-8, never modified UTF-7."""
    client.create_folder("Entwürfe")
    client.enable("UTF8=ACCEPT")
    client.folder_encode = False  # imapclient would otherwise decode UTF-8 as if it were mUTF-7
    assert ((b"\\HasNoChildren",), b"/", "Entwürfe".encode()) in client.list_folders()
    assert b'* LIST (\\HasNoChildren) "/" "Entw\xc3\xbcrfe"\r\n' in sent_to(provider, client)


def test_rename_takes_inferior_folders_along(client):
    """RFC 3501 §6.3.5: the inferior hierarchical names are renamed too."""
    client.create_folder("Projects/2024/Q1")
    assert client.rename_folder("Projects", "Work") == b"Rename completed."
    names = [n for _, _, n in client.list_folders()]
    assert "Work/2024/Q1" in names and not [n for n in names if n.startswith("Projects")]
    assert client.select_folder("Work/2024/Q1")[b"EXISTS"] == 0


def test_rename_to_an_existing_name_or_below_itself_fails(client):
    client.create_folder("A/B")
    with pytest.raises(IMAPClientError, match=r"ALREADYEXISTS"):
        client.rename_folder("Sent", "Trash")
    with pytest.raises(IMAPClientError, match=r"own child"):
        client.rename_folder("A", "A/B/C")
    with pytest.raises(IMAPClientError, match=r"NONEXISTENT"):
        client.rename_folder("Nope", "Other")


def test_rename_inbox_moves_its_messages_and_leaves_inbox_empty(provider, client):
    """RFC 3501 §6.3.5's special case: INBOX stays, emptied; the new folder has the mail."""
    client.rename_folder("INBOX", "Old Mail")
    assert client.folder_status("INBOX", ["MESSAGES"]) == {b"MESSAGES": 0}
    assert client.folder_status("Old Mail", ["MESSAGES", "UIDNEXT"]) == {b"MESSAGES": 5, b"UIDNEXT": 6}
    client.select_folder("Old Mail")
    uids = client.search("ALL")
    assert client.fetch(uids[:1], ["BODY.PEEK[]"])[uids[0]][b"BODY[]"] == sample_message(1)


def test_delete_folder_and_its_refusals(provider, client):
    client.create_folder("Scratch")
    assert client.delete_folder("Scratch") == b"Delete completed."
    assert not client.folder_exists("Scratch")
    with pytest.raises(IMAPClientError, match=r"INBOX can't be deleted\."):
        client.delete_folder("INBOX")
    assert last_reply(provider, client) == b"NO INBOX can't be deleted."
    with pytest.raises(IMAPClientError, match=r"\[NONEXISTENT\]"):
        client.delete_folder("Scratch")
    assert last_reply(provider, client) == b"NO [NONEXISTENT] Mailbox doesn't exist: Scratch"


def test_status_counts_messages_unseen_and_uids(provider, client):
    uidvalidity = folder(provider).uidvalidity
    assert client.folder_status("INBOX") == {b"MESSAGES": 5, b"RECENT": 0, b"UIDNEXT": 6,
                                             b"UIDVALIDITY": uidvalidity, b"UNSEEN": 2}
    assert client.folder_status("Trash", ["MESSAGES", "UNSEEN"]) == {b"MESSAGES": 0, b"UNSEEN": 0}
    with pytest.raises(IMAPClientError, match=r"NONEXISTENT"):
        client.folder_status("Nope")


# -- SELECT / EXAMINE -------------------------------------------------------------------------


def test_select_reports_counts_uids_and_flags(provider, client):
    assert client.select_folder("INBOX") == {
        b"FLAGS": (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft"),
        b"PERMANENTFLAGS": (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft", b"\\*"),
        b"EXISTS": 5, b"RECENT": 0, b"UNSEEN": [b"2"],
        b"UIDVALIDITY": folder(provider).uidvalidity, b"UIDNEXT": 6, b"READ-WRITE": True,
    }


def test_select_lists_keywords_in_use_among_the_flags(provider, client):
    append(provider, b"Subject: k\r\n\r\n", flags=("$Forwarded",))
    answer = client.select_folder("INBOX")
    assert answer[b"FLAGS"][-1] == b"$Forwarded"
    assert answer[b"PERMANENTFLAGS"][-2:] == (b"$Forwarded", b"\\*")


def test_examine_is_read_only_with_no_permanent_flags(provider, client):
    answer = client.select_folder("INBOX", readonly=True)
    assert b"READ-ONLY" in answer and b"READ-WRITE" not in answer and answer[b"PERMANENTFLAGS"] == ()
    with pytest.raises(IMAPClientError, match=r"Mailbox is read-only\."):
        client.add_flags([1], [FLAGGED])
    assert last_reply(provider, client) == b"NO Mailbox is read-only."


def test_select_reports_highestmodseq_once_condstore_is_enabled(provider, client):
    assert b"HIGHESTMODSEQ" not in client.select_folder("INBOX")
    client.unselect_folder()
    client.enable("CONDSTORE")
    assert client.select_folder("INBOX")[b"HIGHESTMODSEQ"] == folder(provider).highest_modseq


def test_failed_select_leaves_no_mailbox_selected(inbox):
    """RFC 3501 §6.3.1: a failed SELECT closes the previously selected mailbox."""
    with pytest.raises(IMAPClientError, match=r"NONEXISTENT"):
        inbox.select_folder("Nope")
    with pytest.raises(IMAPClientError, match=r"No mailbox selected"):
        inbox.search("ALL")


# -- FETCH ----------------------------------------------------------------------------------


def test_fetch_flags_uid_internaldate_and_size(inbox):
    uids = inbox.search("ALL")
    assert uids == [1, 2, 3, 4, 5]
    got = inbox.fetch(uids, ["FLAGS", "INTERNALDATE", "RFC822.SIZE"])
    for n in uids:
        assert got[n][b"SEQ"] == n
        assert got[n][b"FLAGS"] == ((SEEN,) if n % 2 else ())
        assert got[n][b"INTERNALDATE"] == datetime.datetime(2024, 1, n, 10, 0, tzinfo=UTC)
        assert got[n][b"RFC822.SIZE"] == len(sample_message(n))


def test_fetch_envelope(inbox):
    bob = (Address(b"Bob", None, b"bob", b"example.test"),)
    assert inbox.fetch([2], ["ENVELOPE"])[2][b"ENVELOPE"] == Envelope(
        date=datetime.datetime(2024, 1, 1, 10, 2, tzinfo=UTC), subject=b"Message 2",
        from_=bob, sender=bob, reply_to=bob, to=(Address(b"Alice", None, b"alice", b"example.test"),),
        cc=None, bcc=None, in_reply_to=None, message_id=b"<m2@example.test>")


def test_fetch_bodystructure_of_a_single_part_message(inbox):
    structure = inbox.fetch([1], ["BODYSTRUCTURE"])[1][b"BODYSTRUCTURE"]
    assert structure == (b"text", b"plain", (b"charset", b"us-ascii"), None, None, b"7bit",
                         len(b"Body of message 1.\r\n"), 1, None, None, None, None)
    assert not structure.is_multipart


MULTIPART = (
    b"From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n"
    b"--xx\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Gr\xc3\xbc\xc3\x9fe\r\n"
    b"--xx\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
    b"Content-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQK\r\n--xx--\r\n"
)


def test_fetch_bodystructure_and_parts_of_a_multipart_message(provider, inbox):
    append(provider, MULTIPART)
    inbox.noop()
    got = inbox.fetch([6], ["BODYSTRUCTURE", "BODY.PEEK[1]", "BODY.PEEK[2.MIME]"])[6]
    parts, subtype = got[b"BODYSTRUCTURE"][0], got[b"BODYSTRUCTURE"][1]
    assert got[b"BODYSTRUCTURE"].is_multipart and subtype == b"mixed"
    # The CRLF before a boundary belongs to the boundary, not to the part (RFC 2046 §5.1.1).
    assert parts[0][:8] == (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"8bit", 7, 0)
    assert parts[1][:7] == (b"application", b"pdf", (b"name", b"a.pdf"), None, None, b"base64", 12)
    assert got[b"BODY[1]"] == "Grüße".encode()
    assert got[b"BODY[2.MIME]"].startswith(b"Content-Type: application/pdf;")


def test_body_peek_is_byte_exact_and_leaves_the_message_unseen(provider, inbox):
    odd = b"Subject: odd\nbare LF\r\nNUL \x00 and 8-bit \xff\r\n\r\n  trailing  \r\n"
    append(provider, odd)
    inbox.noop()
    assert inbox.fetch([6], ["BODY.PEEK[]"])[6][b"BODY[]"] == odd
    assert inbox.get_flags([6]) == {6: ()}


def test_a_large_message_arrives_whole_over_tls(provider, inbox):
    """Megabytes in one literal: every write of it passes TLS and the fault layer intact."""
    big = b"Subject: big\r\n\r\n" + b"".join(b"line %07d of a big body\r\n" % i for i in range(60_000))
    assert inbox.append("INBOX", big).startswith(b"[APPENDUID ")
    got = inbox.fetch([6], ["RFC822.SIZE", "BODY.PEEK[]"])[6]
    assert got[b"RFC822.SIZE"] == len(big) > 1_500_000 and got[b"BODY[]"] == big


def test_body_without_peek_sets_seen_and_the_response_says_so(provider, inbox):
    """RFC 3501 §6.4.5: BODY[] sets \\Seen; the changed flags SHOULD come with the FETCH."""
    got = inbox.fetch([2], ["BODY[]"])[2]
    assert got[b"BODY[]"] == sample_message(2) and got[b"FLAGS"] == (SEEN,)
    assert b"* 2 FETCH (UID 2 FLAGS (\\Seen) BODY[] {" in sent_to(provider, inbox)
    assert inbox.get_flags([2]) == {2: (SEEN,)}
    assert inbox.fetch([4], ["RFC822"])[4][b"FLAGS"] == (SEEN,)  # RFC822 is BODY[] too


def test_fetch_in_an_examined_mailbox_never_sets_seen(client):
    client.select_folder("INBOX", readonly=True)
    client.fetch([2], ["BODY[]"])
    assert client.get_flags([2]) == {2: ()}


def test_fetch_header_fields_and_partial_ranges(provider, inbox):
    got = inbox.fetch([3], ["BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]", "BODY.PEEK[]<0.10>",
                            "BODY.PEEK[TEXT]<8.7>", "BODY.PEEK[HEADER.FIELDS.NOT (TO FROM DATE)]"])[3]
    assert got[b"BODY[HEADER.FIELDS (SUBJECT FROM)]"] == (
        b"From: Bob <bob@example.test>\r\nSubject: Message 3\r\n\r\n")
    assert got[b"BODY[]<0>"] == b"From: Bob "
    assert got[b"BODY[TEXT]<8>"] == b"message"
    assert got[b"BODY[HEADER.FIELDS.NOT (TO FROM DATE)]"] == (
        b"Subject: Message 3\r\nMessage-ID: <m3@example.test>\r\n\r\n")
    assert b"BODY[]<0> {10}\r\nFrom: Bob  BODY[TEXT]<8> {7}\r\nmessage " in sent_to(provider, inbox)


def test_partials_stop_at_the_end_of_the_data(inbox):
    """RFC 3501 §6.4.5: a partial reaching past the end returns what there is, or nothing."""
    size = len(sample_message(1))
    assert inbox.fetch([1], [f"BODY.PEEK[]<{size - 3}.100>"])[1][f"BODY[]<{size - 3}>".encode()] == b".\r\n"
    assert inbox.fetch([1], [f"BODY.PEEK[]<{size + 5}.10>"])[1][f"BODY[]<{size + 5}>".encode()] == b""


def test_non_uid_fetch_addresses_sequence_numbers(provider, inbox):
    """After an expunge, sequence numbers and UIDs differ; FETCH without UID uses the former."""
    inbox.add_flags([1], [DELETED])
    inbox.expunge()
    inbox.use_uid = False
    got = inbox.fetch([1, 4], ["UID", "ENVELOPE"])
    assert (got[1][b"UID"], got[4][b"UID"]) == (2, 5)
    assert got[4][b"ENVELOPE"].subject == b"Message 5"
    with pytest.raises(IMAPClientError, match=r"BAD .*Invalid messageset"):
        inbox.fetch([5], ["FLAGS"])


def test_uid_fetch_of_missing_uids_is_ok_and_empty(inbox):
    assert inbox.fetch([99], ["FLAGS"]) == {}


# -- SEARCH ---------------------------------------------------------------------------------


def test_search_by_header_criteria(inbox):
    assert inbox.search(["HEADER", "Message-ID", "<m3@example.test>"]) == [3]
    assert inbox.search(["SUBJECT", "message 4"]) == [4]  # substring, case-insensitive
    assert inbox.search(["FROM", "bob", "TO", "alice", "SINCE", datetime.date(2024, 1, 4)]) == [4, 5]
    assert inbox.search(["BEFORE", datetime.date(2024, 1, 3)]) == [1, 2]


def test_search_by_flags_with_not_and_or(inbox):
    assert inbox.search("UNSEEN") == [2, 4]
    assert inbox.search(["NOT", "SEEN"]) == [2, 4]
    assert inbox.search(["OR", "SUBJECT", "Message 1", "SUBJECT", "Message 2"]) == [1, 2]
    assert inbox.search(["NOT", ["OR", "SEEN", "SUBJECT", "Message 2"]]) == [4]


def test_search_with_no_match_still_sends_an_empty_search_response(provider, inbox):
    """RFC 3501 §7.2.5: ``* SEARCH`` with no numbers, never no response at all."""
    assert inbox.search(["SUBJECT", "no such words"]) == []
    assert b"\r\n* SEARCH\r\n" in sent_to(provider, inbox)


def test_search_in_utf8(provider, inbox):
    append(provider, "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\nStraße\r\n".encode())
    inbox.noop()
    assert inbox.search(["SUBJECT", "Grüße"], charset="UTF-8") == [6]
    assert inbox.search(["BODY", "straße"], charset="UTF-8") == [6]
    with pytest.raises(IMAPClientError, match=r"BADCHARSET"):
        inbox.search(["SUBJECT", "x"], charset="KOI8-R")


def test_uid_search_answers_uids_and_search_answers_sequence_numbers(inbox):
    inbox.delete_messages([1, 2])
    inbox.expunge()
    assert inbox.search("ALL") == [3, 4, 5]
    inbox.use_uid = False
    assert inbox.search("ALL") == [1, 2, 3]


# -- STORE ----------------------------------------------------------------------------------


def test_store_answers_the_new_flags(inbox):
    assert inbox.add_flags([1, 2], [FLAGGED]) == {1: (FLAGGED, SEEN), 2: (FLAGGED,)}
    assert inbox.remove_flags([1], [SEEN]) == {1: (FLAGGED,)}
    assert inbox.set_flags([2], [b"$Label1", b"\\Answered"]) == {2: (b"\\Answered", b"$Label1")}
    assert inbox.get_flags([1, 2]) == {1: (FLAGGED,), 2: (b"\\Answered", b"$Label1")}


def test_silent_store_sends_no_fetch(provider, inbox):
    answer = answer_to(provider, inbox, lambda: inbox.add_flags([3], [FLAGGED], silent=True))
    assert tagless(answer) == b"T OK Store completed.\r\n"
    assert inbox.get_flags([3]) == {3: (FLAGGED, SEEN)}


def test_store_of_recent_or_unknown_system_flags_is_refused(inbox):
    with pytest.raises(IMAPClientError, match=r"BAD .*Invalid system flag .{1,2}RECENT"):
        inbox.add_flags([1], [b"\\Recent"])
    assert inbox.get_flags([1]) == {1: (SEEN,)}
    with pytest.raises(IMAPClientError, match=r"Invalid system flag .{1,2}BOGUS"):
        inbox.add_flags([1], [b"\\Bogus"])


# -- COPY, MOVE, UIDPLUS, APPEND, EXPUNGE -----------------------------------------------------


def test_copy_keeps_bytes_flags_and_date_and_answers_copyuid(provider, inbox):
    inbox.copy([1, 3], "Archive")
    archive = folder(provider, "Archive")
    assert f"OK [COPYUID {archive.uidvalidity} 1,3 1:2] Copy completed.".encode() in sent_to(provider, inbox)
    inbox.select_folder("Archive")
    got = inbox.fetch([1, 2], ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
    assert got[2][b"BODY[]"] == sample_message(3) and got[2][b"FLAGS"] == (SEEN,)
    assert got[2][b"INTERNALDATE"] == datetime.datetime(2024, 1, 3, 10, 0, tzinfo=UTC)


def test_copy_to_a_missing_folder_asks_to_create_it(provider, inbox):
    """RFC 3501 §6.4.7: [TRYCREATE] tells the client that creating the target would help."""
    with pytest.raises(IMAPClientError, match=r"\[TRYCREATE\]"):
        inbox.copy([1], "Nope")
    assert last_reply(provider, inbox) == b"NO [TRYCREATE] Mailbox doesn't exist: Nope"


def test_move_answers_copyuid_then_expunges(provider, inbox):
    """RFC 6851 §4.3: COPYUID comes in an untagged OK, before the EXPUNGEs."""
    answer = answer_to(provider, inbox, lambda: inbox.move([2, 4], "Trash"))
    trash = folder(provider, "Trash")
    assert tagless(answer) == (f"* OK [COPYUID {trash.uidvalidity} 2,4 1:2] Moved UIDs.\r\n"
                               "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\nT OK Move completed.\r\n").encode()
    assert inbox.search("ALL") == [1, 3, 5]
    assert inbox.folder_status("Trash", ["MESSAGES"]) == {b"MESSAGES": 2}


def test_uid_expunge_removes_only_the_named_deleted_messages(provider, inbox):
    """RFC 4315 §2.1: only messages both named and \\Deleted go."""
    inbox.add_flags([1, 2, 3], [DELETED])
    answer = answer_to(provider, inbox, lambda: inbox.uid_expunge([2, 3, 4]))
    assert tagless(answer) == b"* 3 EXPUNGE\r\n* 2 EXPUNGE\r\nT OK Expunge completed.\r\n"
    assert inbox.search("ALL") == [1, 4, 5]
    assert inbox.get_flags([1]) == {1: (DELETED, SEEN)}


def test_expunge_reports_each_removed_sequence_number(inbox):
    inbox.add_flags([2, 4], [DELETED])
    assert inbox.expunge() == (b"Expunge completed.", [(4, b"EXPUNGE"), (2, b"EXPUNGE")])
    assert inbox.search("ALL") == [1, 3, 5]


def test_append_with_flags_and_date_answers_appenduid(provider, client):
    when = datetime.datetime(2024, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    answer = client.append("Drafts", b"Subject: draft\r\n\r\nx\r\n", flags=[b"\\Draft", b"$Label"], msg_time=when)
    drafts = folder(provider, "Drafts")
    assert answer == f"[APPENDUID {drafts.uidvalidity} 1] Append completed.".encode()
    client.select_folder("Drafts")
    got = client.fetch([1], ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])[1]
    assert got[b"FLAGS"] == (b"\\Draft", b"$Label")
    assert got[b"INTERNALDATE"] == when and got[b"INTERNALDATE"].utcoffset() == datetime.timedelta(hours=2)
    assert got[b"BODY[]"] == b"Subject: draft\r\n\r\nx\r\n"


def test_append_to_the_selected_folder_announces_exists_first(provider, inbox):
    inbox.append("INBOX", b"Subject: new\r\n\r\n")
    assert lines_to(provider, inbox)[-3:-1] == [b"* 6 EXISTS", lines_to(provider, inbox)[-2]]
    assert last_reply(provider, inbox) == f"OK [APPENDUID {folder(provider).uidvalidity} 6] Append completed.".encode()
    assert inbox.search("ALL") == [1, 2, 3, 4, 5, 6]


def test_append_to_a_missing_folder_asks_to_create_it(provider, client):
    with pytest.raises(IMAPClientError, match=r"\[TRYCREATE\]"):
        client.append("Nope", b"Subject: x\r\n\r\n")
    assert last_reply(provider, client) == b"NO [TRYCREATE] Mailbox doesn't exist: Nope"


def test_close_expunges_silently_and_unselect_does_not_expunge(provider, inbox):
    inbox.add_flags([1], [DELETED])
    assert inbox.unselect_folder() == b"Unselect completed."
    assert len(folder(provider)) == 5
    inbox.select_folder("INBOX")
    assert inbox.close_folder() == b"Close completed."
    assert b"EXPUNGE" not in sent_to(provider, inbox)
    assert len(folder(provider)) == 4


def test_close_of_an_examined_mailbox_expunges_nothing(provider, client):
    client.select_folder("INBOX")
    client.add_flags([1], [DELETED])
    client.select_folder("INBOX", readonly=True)
    client.close_folder()
    assert len(folder(provider)) == 5


# -- IDLE -----------------------------------------------------------------------------------


def test_idle_pushes_exists_for_mail_appended_by_another_connection(clients):
    idler, other = clients(), clients(tls="implicit")
    idler.select_folder("INBOX")
    idler.idle()
    other.append("INBOX", b"Subject: pushed\r\n\r\n")
    assert idler.idle_check(timeout=TIMEOUT) == [(6, b"EXISTS")]
    assert idler.idle_done() == (b"Idle completed.", [])
    assert idler.search(["SUBJECT", "pushed"]) == [6]


def test_idle_pushes_flag_changes_and_expunges(clients):
    idler, other = clients(), clients()
    idler.select_folder("INBOX")
    other.select_folder("INBOX")
    idler.idle()
    other.add_flags([2], [FLAGGED])
    assert idler.idle_check(timeout=TIMEOUT) == [(2, b"FETCH", (b"UID", 2, b"FLAGS", (FLAGGED,)))]
    other.delete_messages([1])
    assert idler.idle_check(timeout=TIMEOUT) == [(1, b"FETCH", (b"UID", 1, b"FLAGS", (DELETED, SEEN)))]
    other.expunge()
    assert idler.idle_check(timeout=TIMEOUT) == [(1, b"EXPUNGE")]
    assert idler.idle_done() == (b"Idle completed.", [])
    assert idler.search("ALL") == [2, 3, 4, 5]


def test_idle_does_not_end_on_other_connections_traffic(clients):
    """Only the client's own DONE ends IDLE; another session's commands do not."""
    idler, other = clients(), clients()
    idler.select_folder("INBOX")
    idler.idle()
    other.select_folder("INBOX")
    other.noop()
    other.append("Trash", b"Subject: elsewhere\r\n\r\n")  # another folder: nothing to push
    other.append("INBOX", b"Subject: here\r\n\r\n")
    assert idler.idle_check(timeout=TIMEOUT) == [(6, b"EXISTS")]
    assert idler.idle_done() == (b"Idle completed.", [])


def test_idle_without_a_selected_mailbox_is_allowed(client):
    client.idle()
    assert client.idle_done() == (b"Idle completed.", [])


# -- two sessions on one mailbox --------------------------------------------------------------


def test_flag_changes_of_another_session_arrive_with_the_next_command(clients):
    mine, theirs = clients(), clients()
    mine.select_folder("INBOX")
    theirs.select_folder("INBOX")
    theirs.add_flags([2], [FLAGGED])
    assert mine.noop() == (b"NOOP completed.", [(2, b"FETCH", (b"UID", 2, b"FLAGS", (FLAGGED,)))])
    assert mine.noop() == (b"NOOP completed.", [])


def test_own_store_does_not_swallow_another_sessions_flag_change(provider, clients):
    """Each session is told about every change it did not make, even while it changes others."""
    mine, theirs = clients(), clients()
    mine.select_folder("INBOX")
    theirs.select_folder("INBOX")
    theirs.add_flags([2], [FLAGGED])
    first = answer_to(provider, mine, lambda: mine.add_flags([3], [b"\\Answered"]))
    theirs.add_flags([4], [FLAGGED])
    second = answer_to(provider, mine, lambda: mine.add_flags([3], [b"\\Draft"]))
    assert tagless(first) == (b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n"
                              b"* 3 FETCH (UID 3 FLAGS (\\Answered \\Seen))\r\nT OK Store completed.\r\n")
    assert tagless(second) == (b"* 4 FETCH (UID 4 FLAGS (\\Flagged))\r\n"
                               b"* 3 FETCH (UID 3 FLAGS (\\Answered \\Seen \\Draft))\r\nT OK Store completed.\r\n")
    assert mine.noop() == (b"NOOP completed.", [])  # nothing left over, nothing told twice


def test_expunge_by_another_session_waits_for_a_command_that_may_report_it(provider, clients):
    """RFC 3501 §7.4.1: no EXPUNGE during FETCH, STORE or SEARCH (numbers would shift under
    the client); NOOP reports it."""
    mine, theirs = clients(), clients()
    mine.select_folder("INBOX")
    mine.use_uid = False
    theirs.select_folder("INBOX")
    theirs.delete_messages([2])
    theirs.expunge()
    mark = len(sent_to(provider, mine))
    assert mine.fetch([3], ["UID"])[3][b"UID"] == 3  # seq 3 is still UID 3
    assert mine.add_flags([3], [FLAGGED])[3] == (FLAGGED, SEEN)
    assert mine.search("FLAGGED") == [3]
    assert b"EXPUNGE" not in sent_to(provider, mine)[mark:]
    assert mine.noop() == (b"NOOP completed.", [(2, b"EXPUNGE")])
    assert mine.fetch([2], ["UID"])[2][b"UID"] == 3  # now the numbers have moved


def test_uid_commands_may_report_another_sessions_expunge_at_once(provider, clients):
    """UIDs do not shift, so UID SEARCH may carry the EXPUNGE (RFC 3501 §7.4.1)."""
    mine, theirs = clients(), clients()
    mine.select_folder("INBOX")
    theirs.select_folder("INBOX")
    theirs.delete_messages([5])
    theirs.expunge()
    answer = answer_to(provider, mine, lambda: mine.search("ALL"))
    assert tagless(answer) == b"* 5 EXPUNGE\r\n* SEARCH 1 2 3 4\r\nT OK Search completed.\r\n"
    assert mine.noop() == (b"NOOP completed.", [])


def test_mail_appended_elsewhere_is_announced_even_during_fetch(provider, clients):
    """EXISTS may come with any command (RFC 3501 §7.3.1), unlike EXPUNGE."""
    mine, theirs = clients(), clients()
    mine.select_folder("INBOX")
    mine.use_uid = False
    theirs.append("INBOX", b"Subject: late\r\n\r\n")
    answer = answer_to(provider, mine, lambda: mine.fetch([1], ["FLAGS"]))
    assert tagless(answer) == b"* 6 EXISTS\r\n* 1 FETCH (FLAGS (\\Seen))\r\nT OK Fetch completed.\r\n"
    assert mine.fetch([6], ["ENVELOPE"])[6][b"ENVELOPE"].subject == b"late"
