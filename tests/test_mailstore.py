"""The mail store behind the fakes: UIDVALIDITY policies as real clients see them, the seeded
message generator, and folder change observers.

Policies are observed through imapclient sessions: what matters is the UIDVALIDITY and the
UIDs a syncing client is shown at each login, and that message identity (Message-ID) is
kept or reshuffled exactly as the mode says.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import imaplib
import socket
import ssl

import imapclient
import pytest

from fake_servers import FakeProvider
from fake_servers.mailstore import Folder, MailStore, SeededMessages, UidValidityPolicy, fill

from .conftest import PASSWORD, USER
from .netutil import twisted_errors  # noqa: F401  (fixture)

TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """An exception inside the fake would reach the client as a timeout; fail on it instead."""


def login(provider) -> imapclient.IMAPClient:
    ctx = ssl.create_default_context(cafile=str(provider.ca_file))
    client = imapclient.IMAPClient(provider.host, port=provider.imaps_port, ssl=True, ssl_context=ctx,
                                   timeout=TIMEOUT)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK waits
    client.login(USER, PASSWORD)
    return client


def sync(provider) -> tuple[int, dict[int, bytes]]:
    """One client session: the INBOX's UIDVALIDITY and each UID's Message-ID."""
    client = login(provider)
    uidvalidity = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    uids = client.search("ALL")
    ids = {uid: data[b"ENVELOPE"].message_id for uid, data in client.fetch(uids, ["ENVELOPE"]).items()}
    client.logout()
    return uidvalidity, ids


def account_with_mail(provider, count: int = 5, **options):
    account = provider.add_account(USER, PASSWORD, **options)
    provider.call(lambda: [account.folder("INBOX").append(
        b"Message-ID: <m%d@example.test>\r\nSubject: %d\r\n\r\nbody\r\n" % (n, n)) for n in range(1, count + 1)])
    return account


def set_policy(provider, account, policy: str, mode: str | None = None) -> None:
    def change():
        account.uidvalidity_policy = UidValidityPolicy(policy)
        if mode is not None:
            account.uidvalidity_mode = mode

    provider.call(change)


@pytest.fixture
def bare(make_provider) -> FakeProvider:
    return make_provider(messages=None)


# -- UIDVALIDITY policies ---------------------------------------------------------------------


def test_stable_policy_keeps_uidvalidity_and_uids_across_sessions(bare):
    account_with_mail(bare)
    first = sync(bare)
    assert first[1] == {n: b"<m%d@example.test>" % n for n in range(1, 6)}
    assert sync(bare) == first == sync(bare)


def test_next_session_policy_changes_uidvalidity_once(bare):
    """The next login starts a new epoch; the one after it sees that epoch unchanged."""
    account = account_with_mail(bare)
    before, _ = sync(bare)
    set_policy(bare, account, "next-session", "keep")
    after, ids = sync(bare)
    assert after > before
    assert sync(bare) == (after, ids)


def test_every_session_policy_changes_uidvalidity_at_each_login(bare):
    """A misconfigured server: each login after the first sees a greater UIDVALIDITY."""
    account_with_mail(bare, uidvalidity_policy="every-session", uidvalidity_mode="keep")
    seen = [sync(bare)[0] for _ in range(3)]
    assert seen[0] < seen[1] < seen[2]


def expunge_even(provider, account) -> None:
    provider.call(lambda: account.folder("INBOX").expunge([2, 4]))


def test_keep_mode_changes_only_uidvalidity(bare):
    account = account_with_mail(bare)
    expunge_even(bare, account)
    before, ids = sync(bare)
    set_policy(bare, account, "next-session", "keep")
    after, same = sync(bare)
    assert after > before and same == ids == {1: b"<m1@example.test>", 3: b"<m3@example.test>",
                                              5: b"<m5@example.test>"}


def test_renumber_mode_closes_uid_gaps_in_the_same_order(bare):
    account = account_with_mail(bare)
    expunge_even(bare, account)
    before, _ = sync(bare)
    set_policy(bare, account, "next-session", "renumber")
    after, ids = sync(bare)
    assert after > before
    assert ids == {1: b"<m1@example.test>", 2: b"<m3@example.test>", 3: b"<m5@example.test>"}
    client = login(bare)
    assert client.folder_status("INBOX", ["UIDNEXT"]) == {b"UIDNEXT": 4}
    client.logout()


def shuffled_order(make_provider, seed: int) -> list[bytes]:
    provider = make_provider(messages=None)
    account = account_with_mail(provider, 8, seed=seed)
    set_policy(provider, account, "next-session", "shuffle")
    uidvalidity, ids = sync(provider)
    assert sorted(ids) == list(range(1, 9))  # renumbered 1..N
    return [ids[uid] for uid in sorted(ids)]


def test_shuffle_mode_reorders_messages_by_the_accounts_seed(make_provider):
    order = shuffled_order(make_provider, seed=11)
    assert sorted(order) == sorted(b"<m%d@example.test>" % n for n in range(1, 9))
    assert order != sorted(order, key=lambda m: int(m[2:-14]))  # really reordered
    assert shuffled_order(make_provider, seed=11) == order  # replayable
    assert shuffled_order(make_provider, seed=12) != order


def test_a_session_holding_the_folder_is_dropped_when_uidvalidity_changes(bare):
    """Its sequence numbers and UIDs are meaningless now: BYE, rather than wrong answers."""
    account_with_mail(bare, uidvalidity_policy="every-session", uidvalidity_mode="renumber")
    holder = login(bare)
    holder.select_folder("INBOX")
    login(bare).logout()  # the next login starts a new epoch
    with pytest.raises(imaplib.IMAP4.abort):
        holder.noop()
    conn = bare.wire.connections[0]
    assert bare.call(conn.server_bytes).endswith(b"* BYE [UNAVAILABLE] Mailbox UIDVALIDITY changed, reconnect.\r\n")


def test_uidvalidity_of_a_recreated_folder_differs_even_after_epoch_changes(bare):
    """RFC 3501 §2.3.1.1: a folder deleted and created again never reuses a UIDVALIDITY."""
    account = bare.add_account(USER, PASSWORD, uidvalidity_policy="every-session")
    client = login(bare)
    client.create_folder("Scratch")
    first = client.folder_status("Scratch", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    client.logout()
    for _ in range(8):  # every folder's UIDVALIDITY moves up at each of these logins
        login(bare).logout()
    client = login(bare)
    moved = client.folder_status("Scratch", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    client.delete_folder("Scratch")
    client.create_folder("Scratch")
    again = client.folder_status("Scratch", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    client.logout()
    assert first < moved < again
    assert again not in bare.call(lambda: [f.uidvalidity for f in account.folders.values() if f.name != "Scratch"])


def test_unknown_uidvalidity_mode_is_refused_with_the_valid_ones():
    folder = Folder("X", uidvalidity=1)
    with pytest.raises(ValueError, match=r"keep, renumber, shuffle"):
        folder.change_uidvalidity("reverse")


# -- the seeded generator ---------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_and_other_seeds_differ():
    a, b = SeededMessages(7), SeededMessages(7)
    assert [a.content(i) for i in range(20)] == [b.content(i) for i in range(20)]
    assert a.content(3) != a.content(4)
    assert SeededMessages(8).content(3) != a.content(3)
    assert a.internal_date(3) == b.internal_date(3) == datetime.datetime(2024, 1, 1, 0, 3, 30,
                                                                         tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("size", [512, 4096, 100_003])
def test_generated_messages_have_exactly_the_requested_size(size):
    assert {len(SeededMessages(1, size).content(i)) for i in range(10)} == {size}


def test_generated_messages_are_valid_rfc5322():
    source = SeededMessages(5)
    ids = set()
    for i in range(50):
        raw = source.content(i)
        assert raw.count(b"\n") == raw.count(b"\r\n") and max(len(line) for line in raw.split(b"\r\n")) <= 998
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert not msg.defects and not any(msg[h].defects for h in msg.keys())
        assert msg["Date"].datetime == datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc) + \
            datetime.timedelta(minutes=i)
        assert msg["From"].addresses[0].domain == "example.test"
        assert msg.get_content_type() == "text/plain"
        ids.add(msg["Message-ID"])
    assert len(ids) == 50


def test_too_small_a_size_is_refused():
    with pytest.raises(ValueError, match="at least 512"):
        SeededMessages(1, 100)


def test_a_generated_mailbox_reads_through_imapclient_as_its_source_says(bare):
    account = bare.add_account(USER, PASSWORD)
    source = bare.call(lambda: fill(account.folder("Archive"), 200, seed=9, size=1024))
    client = login(bare)
    assert client.select_folder("Archive")[b"EXISTS"] == 200
    uids = client.search(["SUBJECT", "#137"])
    assert uids == [138]
    got = client.fetch(uids, ["ENVELOPE", "RFC822.SIZE", "INTERNALDATE", "BODY.PEEK[]"])[138]
    parsed = email.message_from_bytes(source.content(137), policy=email.policy.default)
    assert got[b"BODY[]"] == source.content(137) and got[b"RFC822.SIZE"] == 1024
    assert got[b"ENVELOPE"].subject.decode() == parsed["Subject"]
    assert got[b"ENVELOPE"].message_id.decode() == parsed["Message-ID"]
    assert got[b"INTERNALDATE"].replace(tzinfo=None) == source.internal_date(137).replace(tzinfo=None)
    client.logout()


def test_generated_messages_stay_unmaterialised_when_copied(bare):
    """Only (seed, index) is stored, also for COPY's copies: a 100,000-message mailbox stays small."""
    account = bare.add_account(USER, PASSWORD)
    source = bare.call(lambda: fill(account.folder("INBOX"), 10, seed=2))
    client = login(bare)
    client.select_folder("INBOX")
    client.copy([3, 4], "Archive")
    client.select_folder("Archive")
    assert client.fetch([2], ["BODY.PEEK[]"])[2][b"BODY[]"] == source.content(3)
    client.logout()
    stored = bare.call(lambda: [m.stored_raw for f in ("INBOX", "Archive") for m in account.folder(f).messages])
    assert stored == [None] * 12


# -- folder observers -------------------------------------------------------------------------


def test_observers_hear_every_change_and_nothing_else():
    folder = MailStore().add_account("a@example.test", "pw").folder("INBOX")
    heard = []
    folder.observers.append(heard.append)
    msg = folder.append(b"Subject: x\r\n\r\n")
    assert heard == [folder]
    assert folder.set_flags(msg, {"\\Seen"}) and len(heard) == 2
    assert not folder.set_flags(msg, {"\\Seen"}) and len(heard) == 2  # no change, no call
    assert folder.expunge() == [] and len(heard) == 2  # nothing \Deleted
    folder.change_uidvalidity("keep")
    assert folder.expunge([msg.uid]) == [msg.uid] and len(heard) == 4
    fill(folder, 100)
    assert len(heard) == 5  # one call for the whole batch


def test_sessions_leave_no_observers_behind(bare):
    """An idling session watches its folder; DONE, UNSELECT and LOGOUT detach it."""
    account = bare.add_account(USER, PASSWORD)
    inbox = account.folder("INBOX")
    observers = lambda: bare.call(lambda: len(inbox.observers))  # noqa: E731
    client = login(bare)
    client.select_folder("INBOX")
    client.idle()
    assert observers() == 1
    client.idle_done()
    assert observers() == 0
    client.idle()
    client.idle_done()
    client.unselect_folder()
    client.idle()
    client.idle_done()
    client.select_folder("INBOX")
    client.idle()
    client.idle_done()
    client.logout()
    assert observers() == 0
