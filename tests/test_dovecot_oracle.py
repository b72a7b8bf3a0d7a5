"""The Dovecot launcher works: a real Dovecot, started by each test, answers imaplib as set up."""

from __future__ import annotations

import imaplib
import os
import re
import socket
import ssl
import subprocess
from datetime import datetime, timezone

import pytest

from tests.oracles.dovecot import Dovecot, DovecotError, _session_members, available, \
    unavailable_reason

pytestmark = [pytest.mark.dovecot,
              pytest.mark.skipif(not available(), reason=unavailable_reason() or "n/a")]

ALICE, ALICE_PW = "alice@example.test", "secret"
JUERGEN, JUERGEN_PW = "jürgen.müller@example.test", "pässword"
USERS = {ALICE: ALICE_PW, JUERGEN: JUERGEN_PW}


def plain(user: str, password: str):
    """An imaplib authobject for SASL PLAIN carrying UTF-8 bytes (LOGIN is ASCII-only there)."""
    return lambda _challenge: b"\0" + user.encode() + b"\0" + password.encode()


def fetch(m: imaplib.IMAP4, items: str) -> list[tuple[bytes, bytes | None]]:
    """(metadata, literal) per message for ``UID FETCH 1:* items``."""
    typ, data = m.uid("FETCH", "1:*", items)
    assert typ == "OK"
    out = []
    for part in data:
        if isinstance(part, tuple):
            out.append((part[0], part[1]))
        elif part not in (b")", None):
            out.append((part, None))
    return out


@pytest.fixture
def dc(tmp_path):
    with Dovecot(tmp_path, USERS) as instance:
        yield instance


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("pki")
    authority.cert_pem.write_to_path(d / "ca.pem")
    leaf.cert_chain_pems[0].write_to_path(d / "cert.pem")
    leaf.private_key_pem.write_to_path(d / "key.pem")
    return d


def test_greeting_and_ascii_login(dc):
    assert dc.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    m = imaplib.IMAP4(dc.host, dc.port)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()
    # Dovecot folds ASCII case in user names (auth_username_format = %Lu).
    m = imaplib.IMAP4(dc.host, dc.port)
    assert m.login("Alice@Example.TEST", ALICE_PW)[0] == "OK"
    m.logout()
    m = imaplib.IMAP4(dc.host, dc.port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(ALICE, "wrong")
    m.logout()


def test_non_ascii_login_with_authenticate_plain(dc):
    m = imaplib.IMAP4(dc.host, dc.port)
    assert m.authenticate("PLAIN", plain(JUERGEN, JUERGEN_PW))[0] == "OK"
    dc.add_message(JUERGEN, "INBOX", b"Subject: hi\r\n\r\nx\r\n")
    assert m.select("INBOX") == ("OK", [b"1"])
    m.logout()
    m = imaplib.IMAP4(dc.host, dc.port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.authenticate("PLAIN", plain(JUERGEN, "passwort"))
    m.logout()


def test_capabilities_after_login(dc):
    m = imaplib.IMAP4(dc.host, dc.port)
    m.login(ALICE, ALICE_PW)
    typ, data = m.capability()
    caps = set(data[0].split())
    assert {b"IDLE", b"UIDPLUS", b"MOVE", b"CONDSTORE", b"ENABLE", b"SPECIAL-USE"} <= caps
    assert b"UTF8=ACCEPT" not in caps  # Dovecot 2.3 does not implement RFC 6855
    m.logout()


def test_list_shows_special_use_folders_with_slash_delimiter(dc):
    dc.create_folder(ALICE, "Entwürfe/Alt")
    m = imaplib.IMAP4(dc.host, dc.port)
    m.login(ALICE, ALICE_PW)
    listed = {}
    for line in m.list()[1]:
        attrs, delim, name = re.fullmatch(rb'\((.*)\) "(.)" (.+)', line).groups()
        assert delim == b"/"
        listed[name] = set(attrs.split())
    for name in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert b"\\" + name.encode() in listed[name.encode()]
    assert b"INBOX" in listed
    # Stored as UTF-8 on disk, listed in modified UTF-7.
    assert b"Entw&APw-rfe/Alt" in listed
    subscribed = {line.rsplit(b" ", 1)[1] for line in m.lsub()[1]}
    assert {b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"} <= subscribed
    m.logout()


@pytest.mark.parametrize("layout", ["fs", "maildir++"])
def test_added_messages_keep_flags_date_bytes_and_order(tmp_path, layout):
    messages = [
        (b"Subject: one\r\n\r\nfirst\r\n", (), datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone.utc)),
        (b"Subject: two\r\nX: \xc3\xa4\r\n\r\n8bit\xff\r\n", ("\\Seen", "\\Flagged"),
         1_500_000_000),
        (b"Subject: three\r\n\r\nthird\r\n", ("\\Answered", "$Forwarded", "\\Deleted"), None),
    ]
    with Dovecot(tmp_path, USERS, layout=layout) as dc:
        for raw, flags, when in messages:
            dc.add_message(ALICE, "Archive/2001", raw, flags, when)
        m = imaplib.IMAP4(dc.host, dc.port)
        m.login(ALICE, ALICE_PW)
        assert m.select("Archive/2001")[0] == "OK"
        got = fetch(m, "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        assert [body for _, body in got] == [raw for raw, _, _ in messages]
        for (meta, _), (raw, flags, when), uid in zip(got, messages, (1, 2, 3)):
            assert f"UID {uid} ".encode() in meta
            assert f"RFC822.SIZE {len(raw)} ".encode() in meta
            shown = set(re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split())
            assert shown - {"\\Recent"} == set(flags)
            if when is not None:
                date = re.search(rb'INTERNALDATE "([^"]+)"', meta).group(1).decode()
                stamp = datetime.strptime(date, "%d-%b-%Y %H:%M:%S %z").timestamp()
                expected = when.timestamp() if isinstance(when, datetime) else when
                assert stamp == expected

        # Added while running: Dovecot picks it up on the next sync, with the next UID.
        dc.add_message(ALICE, "Archive/2001", b"Subject: late\r\n\r\n")
        m.noop()
        assert m.uid("SEARCH", "ALL")[1] == [b"1 2 3 4"]
        assert "uidnext=5" in dc.doveadm("mailbox", "status", "-u", ALICE, "uidnext",
                                         "Archive/2001")
        m.logout()


def test_nul_bytes_come_back_as_0x80(dc):
    """Dovecot's known deviation: BODY[] replaces NUL with 0x80 (BINARY[] would not)."""
    dc.add_message(ALICE, "INBOX", b"Subject: nul\r\n\r\na\x00b\r\n")
    m = imaplib.IMAP4(dc.host, dc.port)
    m.login(ALICE, ALICE_PW)
    m.select("INBOX")
    assert fetch(m, "BODY.PEEK[TEXT]")[0][1] == b"a\x80b\r\n"
    m.logout()


def test_doveadm_reads_uidvalidity(dc):
    dc.add_message(ALICE, "INBOX", b"Subject: x\r\n\r\n")
    m = imaplib.IMAP4(dc.host, dc.port)
    m.login(ALICE, ALICE_PW)
    m.select("INBOX")
    uidvalidity = m.untagged_responses["UIDVALIDITY"][0].decode()
    m.logout()
    out = dc.doveadm("mailbox", "status", "-u", ALICE, "uidvalidity uidnext messages", "INBOX")
    assert out.split() == ["INBOX", "messages=1", "uidnext=2", f"uidvalidity={uidvalidity}"]


def test_starttls_and_implicit_tls_verify_against_the_run_ca(tmp_path, ca):
    with Dovecot(tmp_path, USERS, tls=(ca / "cert.pem", ca / "key.pem")) as dc:
        context = ssl.create_default_context(cafile=str(ca / "ca.pem"))
        m = imaplib.IMAP4(dc.host, dc.port)
        assert "STARTTLS" in m.capabilities
        assert m.starttls(context)[0] == "OK"
        assert m.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert "STARTTLS" not in m.capabilities
        assert m.authenticate("PLAIN", plain(JUERGEN, JUERGEN_PW))[0] == "OK"
        m.logout()

        m = imaplib.IMAP4_SSL("localhost", dc.tls_port, ssl_context=context)
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        m.logout()

        # A client trusting only the system store must reject the run's certificate.
        with pytest.raises(ssl.SSLCertVerificationError):
            imaplib.IMAP4_SSL(dc.host, dc.tls_port, ssl_context=ssl.create_default_context())


def test_without_plaintext_auth_a_non_loopback_peer_sees_logindisabled(tmp_path, ca):
    class FromOtherAddress(imaplib.IMAP4):
        """Dovecot counts a peer whose address equals the local one as secured."""

        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout,
                                            source_address=("127.0.0.2", 0))

    with Dovecot(tmp_path, USERS, tls=(ca / "cert.pem", ca / "key.pem"),
                 plaintext_auth=False) as dc:
        m = FromOtherAddress(dc.host, dc.port)
        assert "LOGINDISABLED" in m.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            m.login(ALICE, ALICE_PW)
        m.starttls(ssl.create_default_context(cafile=str(ca / "ca.pem")))
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        m.logout()


def test_stop_leaves_no_process_and_no_runtime_directory(tmp_path):
    dc = Dovecot(tmp_path, USERS)
    dc.start()
    pid = dc.pid
    m = imaplib.IMAP4(dc.host, dc.port)
    m.login(ALICE, ALICE_PW)  # a live imap process that must go too
    assert len(_session_members(pid)) >= 5  # master, log, config, anvil, auth, imap ...
    dc.stop()
    assert _session_members(pid) == []
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).returncode == 1
    assert not dc.runtime.exists()
    with pytest.raises((OSError, imaplib.IMAP4.abort)):
        m.noop()
    dc.stop()  # idempotent


def test_bad_config_fails_fast_with_the_log_tail(tmp_path):
    dc = Dovecot(tmp_path, USERS, extra_config="no_such_setting = 1")
    with pytest.raises(DovecotError, match="no_such_setting"):
        dc.start()
    assert dc.pid is None and not dc.runtime.exists()


def test_rejects_credentials_that_would_corrupt_the_passwd_file(tmp_path):
    with pytest.raises(ValueError):
        Dovecot(tmp_path, {"a:b@example.test": "x"})
    with pytest.raises(ValueError):
        Dovecot(tmp_path, {"a@example.test": "new\nline"})
    dc = Dovecot(tmp_path, USERS)
    with pytest.raises(KeyError):
        dc.add_message("mallory@example.test", "INBOX", b"\r\n")
    dc.stop()
    assert not dc.runtime.exists()
