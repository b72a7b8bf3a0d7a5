"""The IMAP fake as the standard library's imaplib drives it, and the commands imapclient
cannot express: extended LIST, CONDSTORE modifiers, literals in LOGIN, IDLE's end, raw SASL.

imaplib's ``_simple_command`` returns the tagged response text, so response codes
([APPENDUID], [COPYUID], [MODIFIED]) are checked exactly; untagged data is read from
``untagged_responses`` right after the command (imaplib keeps it until read).
"""

from __future__ import annotations

import base64
import imaplib
import re
import socket
import ssl

import pytest
from imapclient.response_parser import parse_response

from fake_servers.imap.config import ImapConfig

from .conftest import PASSWORD, USER, sample_message
from .netutil import RawClient, twisted_errors  # noqa: F401  (fixture)

TIMEOUT = 5.0
JUERGEN, JUERGEN_PW = "jürgen.müller@example.test", "pässwort"


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """An exception inside the fake would reach the client as a timeout; fail on it instead."""


def context(provider) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(provider.ca_file))


def nodelay(m: imaplib.IMAP4) -> imaplib.IMAP4:
    """Without it, every command sent in two writes (a literal) waits ~40 ms for a delayed ACK."""
    m.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return m


def plaintext(provider) -> imaplib.IMAP4:
    return nodelay(imaplib.IMAP4(provider.host, provider.imap_port, timeout=TIMEOUT))


def starttls(provider) -> imaplib.IMAP4:
    m = plaintext(provider)
    m.starttls(context(provider))
    return m


@pytest.fixture
def m(provider):
    """imaplib on implicit TLS, logged in; logged out at teardown."""
    client = nodelay(imaplib.IMAP4_SSL(provider.host, provider.imaps_port, ssl_context=context(provider),
                                       timeout=TIMEOUT))
    client.login(USER, PASSWORD)
    yield client
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        pass


def simple(m: imaplib.IMAP4, *args) -> tuple[str, bytes]:
    """Run a command imaplib knows, as given; (status, tagged text) even for NO."""
    typ, data = m._simple_command(*args)
    return typ, data[-1]


def ask(client: RawClient, text: str | bytes) -> list[bytes]:
    """One command on a raw client under a fresh tag; its lines with the tag replaced by ``T``."""
    client.tags = getattr(client, "tags", 0) + 1
    tag = f"r{client.tags}"
    return [b"T" + line[len(tag):] if line.startswith(tag.encode() + b" ") else line
            for line in client.command(tag, text)]


def untagged(m: imaplib.IMAP4, name: str) -> list:
    return m.untagged_responses.pop(name, [])


def raw(provider, *, login: bool = True) -> RawClient:
    """A byte-level client on the implicit-TLS port, greeting read."""
    client = RawClient(provider.imaps_port, tls=context(provider))
    client.greeting = client.line()
    if login:
        assert client.command("L", f'LOGIN "{USER}" "{PASSWORD}"')[-1].startswith(b"L OK ")
    return client


def plain(user: str, password: str):
    """An imaplib authobject for SASL PLAIN, UTF-8 encoded."""
    return lambda _challenge: f"\0{user}\0{password}".encode()


# -- TLS and login ----------------------------------------------------------------------------


def test_starttls_with_an_ssl_context_then_login(provider):
    m = plaintext(provider)
    assert {"STARTTLS", "LOGINDISABLED"} <= set(m.capabilities)
    assert m.starttls(context(provider))[0] == "OK"
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    assert m.login(USER, PASSWORD) == ("OK", [b"[CAPABILITY " + b" ".join(
        c.encode() for c in ImapConfig().capabilities(tls=True, authenticated=True)) + b"] Logged in"])
    assert m.logout()[0] == "BYE"


def test_implicit_tls(provider):
    m = imaplib.IMAP4_SSL(provider.host, provider.imaps_port, ssl_context=context(provider), timeout=TIMEOUT)
    assert "STARTTLS" not in m.capabilities
    m.login(USER, PASSWORD)
    assert m.select("INBOX") == ("OK", [b"5"])
    m.logout()


def test_starttls_when_tls_is_already_on_is_bad(provider):
    """On the implicit-TLS port, and after a completed STARTTLS."""
    client = raw(provider, login=False)
    assert ask(client, "STARTTLS") == [b"T BAD TLS is already active.\r\n"]
    client.close()
    client = RawClient(provider.imap_port)
    client.line()
    client.starttls(context(provider), server_hostname=provider.host)
    assert ask(client, "STARTTLS") == [b"T BAD TLS is already active.\r\n"]
    client.close()


def test_login_before_tls_is_refused(provider):
    m = plaintext(provider)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[PRIVACYREQUIRED\] Plaintext authentication disallowed"):
        m.login(USER, PASSWORD)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[PRIVACYREQUIRED\] Plaintext authentication disabled"):
        m.authenticate("PLAIN", plain(USER, PASSWORD))
    m.starttls(context(provider))
    assert m.login(USER, PASSWORD)[0] == "OK"
    m.logout()


def test_login_with_a_utf8_password_as_a_literal(provider):
    provider.add_account("joe@example.test", JUERGEN_PW)
    m = starttls(provider)
    m.literal = JUERGEN_PW.encode()
    assert simple(m, "LOGIN", "joe@example.test")[0] == "OK"
    m.logout()


def test_login_with_a_utf8_user_name_in_literals(provider):
    """Both arguments as literals, synchronizing and non-synchronizing (LITERAL+)."""
    provider.add_account(JUERGEN, JUERGEN_PW)
    user, password = JUERGEN.encode(), JUERGEN_PW.encode()
    client = raw(provider, login=False)
    client.send(b"a LOGIN {%d}\r\n" % len(user))
    assert client.line() == b"+ OK\r\n"
    client.send(user + b" {%d+}\r\n" % len(password) + password + b"\r\n")
    assert client.until_tagged("a")[-1].endswith(b"] Logged in\r\n")
    client.close()


def test_authenticate_plain_with_utf8_and_with_sasl_ir(provider):
    provider.add_account(JUERGEN, JUERGEN_PW)
    m = starttls(provider)
    assert m.authenticate("PLAIN", plain(JUERGEN, JUERGEN_PW))[0] == "OK"
    m.logout()
    client = raw(provider, login=False)
    ir = base64.b64encode(f"\0{JUERGEN}\0{JUERGEN_PW}".encode())
    assert client.command("a", b"AUTHENTICATE PLAIN " + ir)[-1].startswith(b"a OK [CAPABILITY ")
    client.close()


@pytest.mark.parametrize(("response", "reply"), [
    (b"*", b"a BAD Authentication aborted by client.\r\n"),
    (b"not base64!", b"a BAD Invalid authentication data: Invalid base64 data\r\n"),
    (base64.b64encode(b"\0only-a-user"), b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
    (base64.b64encode(b"\0j\xfcrgen.m\xfcller@example.test\0pw"),
     b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
])
def test_broken_sasl_responses(provider, response, reply):
    """Malformed base64 or an abort is a protocol matter (BAD); decodable but unusable
    credentials are a failed login (NO), as on Dovecot."""
    client = raw(provider, login=False)
    client.send(b"a AUTHENTICATE PLAIN\r\n")
    assert client.line() == b"+ \r\n"
    client.send(response + b"\r\n")
    assert client.until_tagged("a") == [reply]
    assert client.command("b", f'LOGIN "{USER}" "{PASSWORD}"')[-1].startswith(b"b OK")
    client.close()


def test_unknown_mechanism(provider):
    m = starttls(provider)
    with pytest.raises(imaplib.IMAP4.error, match=r"Unsupported authentication mechanism"):
        m.authenticate("CRAM-MD5", lambda challenge: b"x")
    m.logout()


# -- state rules ------------------------------------------------------------------------------


def test_commands_in_the_wrong_state_are_bad(provider):
    client = raw(provider, login=False)
    assert ask(client, "SELECT INBOX") == [b"T BAD Please log in first.\r\n"]
    ask(client, f'LOGIN "{USER}" "{PASSWORD}"')
    assert ask(client, "FETCH 1 FLAGS") == [b"T BAD No mailbox selected.\r\n"]
    assert ask(client, "CHECK") == [b"T BAD No mailbox selected.\r\n"]  # RFC 3501 §6.4.1: selected state
    assert ask(client, "LOGIN a b") == [b"T BAD Command not allowed in authenticated state.\r\n"]
    assert ask(client, "FOO") == [b"T BAD Error in IMAP command FOO: Unknown command.\r\n"]
    ask(client, "SELECT INBOX")
    assert ask(client, "CHECK") == [b"T OK Check completed.\r\n"]
    client.close()


# -- extended LIST, STATUS --------------------------------------------------------------------


def listed(m: imaplib.IMAP4, *args) -> list:
    typ, data = m._simple_command("LIST", *args)
    assert typ == "OK", data
    return [parse_response([line]) for line in untagged(m, "LIST")]


def test_list_special_use_selection_returns_only_special_use_folders(m):
    """RFC 6154 §5.1: the SPECIAL-USE selection option."""
    m.create("Work")
    assert listed(m, "(SPECIAL-USE)", '""', '"*"') == [
        ((b"\\HasNoChildren", b"\\Archive"), b"/", b"Archive"),
        ((b"\\HasNoChildren", b"\\Drafts"), b"/", b"Drafts"),
        ((b"\\HasNoChildren", b"\\Junk"), b"/", b"Junk"),
        ((b"\\HasNoChildren", b"\\Sent"), b"/", b"Sent"),
        ((b"\\HasNoChildren", b"\\Trash"), b"/", b"Trash"),
    ]


def test_list_return_status_follows_each_folder_with_its_status(provider):
    """RFC 5819: LIST-STATUS puts a STATUS response right after each selectable folder's LIST;
    the \\Noselect parent gets none."""
    client = raw(provider)
    ask(client, "CREATE Projects/2024")
    assert ask(client, 'LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))') == [
        b'* LIST (\\HasNoChildren) "/" INBOX\r\n', b"* STATUS INBOX (MESSAGES 5 UNSEEN 2)\r\n",
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive\r\n', b"* STATUS Archive (MESSAGES 0 UNSEEN 0)\r\n",
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts\r\n', b"* STATUS Drafts (MESSAGES 0 UNSEEN 0)\r\n",
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk\r\n', b"* STATUS Junk (MESSAGES 0 UNSEEN 0)\r\n",
        b'* LIST (\\Noselect \\HasChildren) "/" Projects\r\n',
        b'* LIST (\\HasNoChildren) "/" Projects/2024\r\n', b"* STATUS Projects/2024 (MESSAGES 0 UNSEEN 0)\r\n",
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n', b"* STATUS Sent (MESSAGES 0 UNSEEN 0)\r\n",
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash\r\n', b"* STATUS Trash (MESSAGES 0 UNSEEN 0)\r\n",
        b"T OK List completed.\r\n",
    ]
    client.close()


def test_list_subscribed_selection_marks_subscribed(m):
    m.create("Lists")
    m.unsubscribe("Junk")
    names = {name: flags for flags, _, name in listed(m, "(SUBSCRIBED)", '""', '"*"')}
    assert b"Lists" not in names and b"Junk" not in names
    assert names[b"INBOX"] == (b"\\HasNoChildren", b"\\Subscribed")


def test_list_with_an_empty_pattern_returns_the_delimiter(m):
    """RFC 3501 §6.3.8: the hierarchy delimiter and root, for clients that ask for it."""
    assert listed(m, '""', '""') == [((b"\\Noselect",), b"/", b"")]


def test_lsub_and_subscribe(m):
    m.create("News")
    m.subscribe("News")
    typ, data = m.lsub('""', "News")
    assert data == [b'(\\HasNoChildren) "/" News']


def test_status_of_several_items(provider, m):
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
    uidvalidity = provider.call(lambda: provider.store.account(USER).folder("INBOX").uidvalidity)
    assert data == [f"INBOX (MESSAGES 5 UIDNEXT 6 UIDVALIDITY {uidvalidity} UNSEEN 2 RECENT 0)".encode()]
    with pytest.raises(imaplib.IMAP4.error, match=r"BAD .*Invalid status item BOGUS"):
        m.status("INBOX", "(BOGUS)")


def test_raw_utf8_mailbox_names_are_refused_until_utf8_accept(provider, m):
    """RFC 3501 names are modified UTF-7; 8-bit names before ENABLE UTF8=ACCEPT fail (Dovecot)."""
    m._encoding = "utf-8"  # let imaplib put the 8-bit name on the wire unencoded
    assert simple(m, "CREATE", '"Entwürfe"') == ("NO", b"Mailbox name is not valid mUTF-7")
    assert simple(m, "CREATE", '"Bad&Name"') == ("NO", b"Mailbox name is not valid mUTF-7")
    m.enable("UTF8=ACCEPT")
    assert simple(m, "CREATE", '"Entwürfe"') == ("OK", b"Create completed.")
    assert m.select('"Entwürfe"')[0] == "OK"
    assert provider.call(lambda: provider.store.account(USER).folder("Entwürfe")) is not None


# -- SELECT, CONDSTORE -------------------------------------------------------------------------


def test_enable_condstore_while_selected_announces_highestmodseq(provider):
    """RFC 7162 §3.1: the first CONDSTORE enabling command in selected state reports it."""
    client = raw(provider)
    ask(client, "SELECT INBOX")
    highest = provider.call(lambda: provider.store.account(USER).folder("INBOX").highest_modseq)
    assert ask(client, "ENABLE CONDSTORE") == [
        b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % highest, b"* ENABLED CONDSTORE\r\n", b"T OK Enabled.\r\n"]
    assert ask(client, "ENABLE CONDSTORE") == [b"* ENABLED\r\n", b"T OK Enabled.\r\n"]
    client.close()


def test_fetch_modseq_is_a_condstore_enabling_command(m):
    m.select("INBOX")
    typ, data = m.fetch("1", "(MODSEQ)")
    assert untagged(m, "HIGHESTMODSEQ") and re.fullmatch(rb"1 \(MODSEQ \(\d+\)\)", data[0])
    typ, data = m.store("1", "+FLAGS", r"(\Flagged)")  # from now on every STORE answer has MODSEQ
    assert re.fullmatch(rb"1 \(FLAGS \(\\Flagged \\Seen\) MODSEQ \(\d+\)\)", data[0])


def test_select_condstore_parameter_reports_highestmodseq(m):
    typ, _ = m._simple_command("SELECT", "INBOX", "(CONDSTORE)")
    assert typ == "OK" and untagged(m, "HIGHESTMODSEQ")


def test_store_unchangedsince_applies_only_to_unchanged_messages(m):
    """RFC 7162 §3.1.3: messages changed since are left alone and listed in [MODIFIED]."""
    m.enable("CONDSTORE")
    m.select("INBOX")
    typ, data = m.fetch("1:5", "(MODSEQ)")
    modseqs = [int(re.search(rb"MODSEQ \((\d+)\)", d).group(1)) for d in data]
    m.store("2", "+FLAGS.SILENT", r"(\Answered)")  # now 2 changed after modseqs[1]
    m.untagged_responses.clear()
    typ, text = simple(m, "UID", "STORE", "1:3", f"(UNCHANGEDSINCE {max(modseqs)})", "+FLAGS", r"(\Flagged)")
    assert (typ, text) == ("OK", b"[MODIFIED 2] Conditional store failed.")
    fetched = untagged(m, "FETCH")
    assert [re.match(rb"(\d+) \(UID (\d+) FLAGS", f).groups() for f in fetched] == [(b"1", b"1"), (b"3", b"3")]
    assert m.fetch("2", "(FLAGS)")[1] == [b"2 (FLAGS (\\Answered))"]


def test_silent_store_with_condstore_still_reports_the_new_modseq(m):
    """RFC 7162 §3.1.3: .SILENT drops FLAGS from the answer, never the MODSEQ."""
    m.enable("CONDSTORE")
    m.select("INBOX")
    m.untagged_responses.clear()
    typ, _ = m._simple_command("UID", "STORE", "4", "+FLAGS.SILENT", r"(\Flagged)")
    assert [re.fullmatch(rb"4 \(UID 4 MODSEQ \(\d+\)\)", f) is not None for f in untagged(m, "FETCH")] == [True]


def test_fetch_changedsince_returns_only_changed_messages_with_their_modseq(m):
    m.select("INBOX")
    typ, data = m.fetch("5", "(MODSEQ)")
    since = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
    m.store("2,4", "+FLAGS", r"(\Flagged)")
    m.untagged_responses.clear()
    typ, _ = m._simple_command("UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {since})")
    got = untagged(m, "FETCH")
    assert [re.match(rb"(\d+) \(UID \d+ FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", f).group(1) for f in got] == [b"2", b"4"]


def test_search_modseq(m):
    m.select("INBOX")
    typ, data = m.fetch("5", "(MODSEQ)")
    since = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
    m.store("3", "+FLAGS", r"(\Flagged)")
    typ, data = m.search(None, f"MODSEQ {since + 1}")
    assert re.fullmatch(rb"3 \(MODSEQ \d+\)", data[0])


# -- FETCH, STORE, SEARCH ----------------------------------------------------------------------


def test_uid_fetch_of_a_whole_range_with_literals(m):
    m.select("INBOX")
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[] FLAGS)")
    bodies = [part[1] for part in data if isinstance(part, tuple)]
    assert bodies == [sample_message(n) for n in range(1, 6)]
    assert data[0][0] == b"1 (UID 1 FLAGS (\\Seen) BODY[] {%d}" % len(sample_message(1))


def test_fetch_macros(m):
    m.select("INBOX")
    typ, data = m.fetch("2", "FAST")
    assert data == [b'2 (FLAGS () INTERNALDATE "02-Jan-2024 10:00:00 +0000" RFC822.SIZE %d)'
                    % len(sample_message(2))]
    typ, data = m.fetch("2", "ALL")
    assert data[0].startswith(b'2 (FLAGS () INTERNALDATE "02-Jan-2024 10:00:00 +0000" RFC822.SIZE ')
    assert b' ENVELOPE ("Mon, 01 Jan 2024 10:02:00 +0000" "Message 2" ' in data[0]


def test_fetch_syntax_errors_are_bad(provider):
    client = raw(provider)
    ask(client, "SELECT INBOX")
    assert ask(client, "FETCH 1 FOO") == [b"T BAD Error in IMAP command FETCH: Unknown parameter: FOO\r\n"]
    assert ask(client, "FETCH 9 FLAGS") == [b"T BAD Error in IMAP command FETCH: Invalid messageset\r\n"]
    assert ask(client, "UID FETCH 9 FLAGS") == [b"T OK Fetch completed.\r\n"]
    client.close()


def test_search_with_no_match_sends_an_empty_search_response(m):
    m.select("INBOX")
    assert m.search(None, "SUBJECT", '"nothing like this"') == ("OK", [b""])
    assert m.uid("SEARCH", "HEADER", "Message-ID", '"<m4@example.test>"') == ("OK", [b"4"])


def test_store_flags_on_a_read_only_mailbox_is_refused(provider):
    client = raw(provider)
    ask(client, "EXAMINE INBOX")
    assert ask(client, "STORE 1 +FLAGS (\\Flagged)") == [b"T NO Mailbox is read-only.\r\n"]
    assert ask(client, "EXPUNGE") == [b"T NO Mailbox is read-only.\r\n"]
    client.close()


# -- APPEND, COPY, MOVE, EXPUNGE -------------------------------------------------------------


def test_append_as_a_literal_answers_appenduid(provider, m):
    typ, data = m.append("Sent", r"(\Seen $Sent)", '"07-Feb-2024 11:12:13 +0100"', b"Subject: s\r\n\r\nsent\r\n")
    sent = provider.call(lambda: provider.store.account(USER).folder("Sent"))
    assert (typ, data) == ("OK", [f"[APPENDUID {sent.uidvalidity} 1] Append completed.".encode()])
    m.select("Sent")
    assert m.fetch("1", "(FLAGS INTERNALDATE)")[1] == [b'1 (FLAGS (\\Seen $Sent) INTERNALDATE "07-Feb-2024 11:12:13 +0100")']


@pytest.mark.parametrize(("flags", "date", "reply"), [
    (r"(\Recent)", None, b"T BAD Error in IMAP command APPEND: Invalid system flag \\RECENT\r\n"),
    (None, '"31-Foo-2024 00:00:00 +0000"', b"T BAD Error in IMAP command APPEND: Invalid date-time.\r\n"),
])
def test_bad_append_arguments(provider, flags, date, reply):
    """\\Recent is the server's to set (RFC 3501 §2.3.2): a client may not APPEND it (Dovecot)."""
    client = raw(provider)
    extra = "".join(f" {a}" for a in (flags, date) if a)
    assert ask(client, f"APPEND INBOX{extra} {{14+}}\r\nSubject: x\r\n\r\n") == [reply]
    assert provider.call(lambda: len(provider.store.account(USER).folder("INBOX"))) == 5
    client.close()


def test_copy_and_move_answer_copyuid(provider, m):
    m.select("INBOX")
    trash = provider.call(lambda: provider.store.account(USER).folder("Trash"))
    assert simple(m, "UID", "COPY", "1:2", "Trash") == ("OK", f"[COPYUID {trash.uidvalidity} 1:2 1:2] Copy completed.".encode())
    assert simple(m, "UID", "COPY", "99", "Trash") == ("OK", b"No messages found.")
    m.untagged_responses.clear()
    typ, text = simple(m, "UID", "MOVE", "3", "Trash")
    assert (typ, text) == ("OK", b"Move completed.")
    assert untagged(m, "COPYUID") == [f"{trash.uidvalidity} 3 3".encode()]
    assert untagged(m, "EXPUNGE") == [b"3"]


def test_expunge_and_close(provider, m):
    m.select("INBOX")
    m.store("1:2", "+FLAGS", r"(\Deleted)")
    assert m.expunge() == ("OK", [b"2", b"1"])
    m.store("1", "+FLAGS", r"(\Deleted)")
    assert m.close() == ("OK", [b"Close completed."])
    assert provider.call(lambda: provider.store.account(USER).folder("INBOX").uids) == [4, 5]


# -- IDLE -----------------------------------------------------------------------------------


def test_idle_ends_with_done_in_any_case(provider):
    client = raw(provider)
    client.command("s", "SELECT INBOX")
    client.send(b"i IDLE\r\n")
    assert client.line() == b"+ idling\r\n"
    client.send(b"done\r\n")
    assert client.until_tagged("i") == [b"i OK Idle completed.\r\n"]
    client.close()


def test_a_command_while_idling_ends_idle_and_is_not_executed(provider):
    """Only DONE continues the conversation normally; any other line is answered BAD for the
    IDLE (as Dovecot does) and never runs as a command of its own."""
    client = raw(provider)
    client.command("s", "SELECT INBOX")
    client.send(b"i IDLE\r\n")
    assert client.line() == b"+ idling\r\n"
    client.send(b"x STORE 1 +FLAGS (\\Flagged)\r\n")
    assert client.until_tagged("i") == [b"i BAD Expected DONE.\r\n"]
    assert client.command("f", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Seen))\r\n", b"f OK Fetch completed.\r\n"]
    client.close()


def test_idle_pushes_changes_made_elsewhere_before_done(provider, m):
    client = raw(provider)
    client.command("s", "SELECT INBOX")
    client.send(b"i IDLE\r\n")
    assert client.line() == b"+ idling\r\n"
    m.select("INBOX")
    m.store("2", "+FLAGS", r"(\Deleted)")
    assert client.line() == b"* 2 FETCH (UID 2 FLAGS (\\Deleted))\r\n"
    m.expunge()
    assert client.line() == b"* 2 EXPUNGE\r\n"
    m.append("INBOX", None, None, b"Subject: x\r\n\r\n")
    assert client.line() == b"* 5 EXISTS\r\n"
    client.send(b"DONE\r\n")
    assert client.until_tagged("i") == [b"i OK Idle completed.\r\n"]
    client.close()
