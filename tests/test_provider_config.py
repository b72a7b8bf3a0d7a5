"""Provider files and personas load strictly: a typo is an error that points at its line."""

from __future__ import annotations

import imapclient
import pytest

from fake_servers.provider_config import ConfigError, from_mapping, load_file, load_persona, personas


def write(tmp_path, text: str):
    path = tmp_path / "provider.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_file(write(tmp_path, text))
    return str(info.value)


def test_unknown_top_level_key_names_line_and_closest_key(tmp_path):
    message = error_of(tmp_path, 'seed = 1\ncerts = "expired"\n')
    assert "provider.toml:2:" in message
    assert "did you mean 'cert'" in message


def test_unknown_imap_setting_names_line_and_closest_key(tmp_path):
    message = error_of(tmp_path, '[imap]\nstarttls = true\nlogin_disabld = false\n')
    assert "provider.toml:3:" in message and "did you mean 'login_disabled'" in message


def test_unknown_fault_action_names_line_and_closest_action(tmp_path):
    message = error_of(tmp_path, '[[faults]]\non = "command"\ncommand = "LOGIN"\naction = "replay"\nstatus = "NO"\n')
    assert "provider.toml:4:" in message and "did you mean 'reply'" in message


def test_unknown_fault_event_is_an_error(tmp_path):
    message = error_of(tmp_path, '[[faults]]\non = "comand"\naction = "close"\n')
    assert "provider.toml:2:" in message and "did you mean 'command'" in message


def test_wrong_type_is_an_error_naming_the_path(tmp_path):
    message = error_of(tmp_path, '[imap]\nstarttls = "yes"\n')
    assert "imap.starttls" in message and "expected bool" in message


def test_unknown_certificate_kind_suggests_one(tmp_path):
    assert "did you mean 'expired'" in error_of(tmp_path, 'cert = "expird"\n')


def test_toml_syntax_error_names_the_file(tmp_path):
    message = error_of(tmp_path, '[imap\n')
    assert "provider.toml" in message


def test_message_needs_raw_or_file(tmp_path):
    message = error_of(tmp_path, '[[accounts]]\nusername = "a"\npassword = "b"\n'
                                 '[[accounts.folders]]\nname = "INBOX"\n[[accounts.folders.messages]]\nflags = []\n')
    assert "exactly one of 'raw' or 'file'" in message


def test_every_persona_loads():
    assert {"generic-dovecot", "gmail", "outlook365"} <= set(personas())
    for name in personas():
        load_persona(name)


def test_unknown_persona_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'gmail'"):
        load_persona("gmale")


def test_a_loaded_file_builds_the_provider_it_describes(tmp_path):
    (tmp_path / "note.eml").write_bytes(b"Subject: from a file\r\n\r\nbody\r\n")
    spec = load_file(write(tmp_path, '''
seed = 7
[imap]
starttls = false
login_disabled = false
[[accounts]]
username = "jürgen.müller@example.test"
password = "pässword"
[[accounts.folders]]
name = "INBOX"
generate = 4
[[accounts.folders.messages]]
file = "note.eml"
flags = ["\\\\Seen"]
internal_date = "2024-03-01T12:00:00+01:00"
[[accounts.folders]]
name = "Entwürfe"
special_use = ["\\\\Drafts"]
'''))
    with spec.build() as provider:
        client = imapclient.IMAPClient(provider.host, port=provider.imap_port, ssl=False, timeout=10)
        client.plain_login("jürgen.müller@example.test", "pässword")
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] == 5
        first = client.fetch([1], ["BODY.PEEK[]", "FLAGS"])[1]
        assert first[b"BODY[]"] == b"Subject: from a file\r\n\r\nbody\r\n"
        assert first[b"FLAGS"] == (b"\\Seen",)
        names = [name for _, _, name in client.list_folders()]
        assert "Entwürfe" in names
        client.logout()


def test_a_persona_can_be_extended_by_a_file():
    spec = from_mapping({"persona": "gmail", "imap": {"send_uidnext": False}})
    assert spec.data["imap"]["mechanisms"] == ["PLAIN", "XOAUTH2"]
    assert spec.data["imap"]["send_uidnext"] is False


# -- [discovery] -------------------------------------------------------------------------------------


def test_discovery_error_names_line_and_closest_word(tmp_path):
    message = error_of(tmp_path, '[discovery]\ndomain = "example.test"\n\n[discovery.autodiscover]\n'
                                 'root = "not_found"\nautodiscover = { answer = "sucess" }\n')
    assert "provider.toml:6:" in message and "discovery.autodiscover.autodiscover.answer" in message
    assert "did you mean 'success'" in message
    message = error_of(tmp_path, '[discovery]\ndomain = "example.test"\n[[discovery.srv]]\nservice = "_imaps._tcp"\n'
                                 'target = "imap.example.test"\nprot = 993\n')
    assert "provider.toml:6:" in message and "did you mean 'port'" in message


def test_a_provider_without_discovery_has_none(tmp_path):
    with load_file(write(tmp_path, "seed = 1\n")).build() as provider:
        assert provider.discovery is None


def test_discovery_starts_with_the_provider_on_its_ports_and_stops_with_it(tmp_path):
    import ssl
    import urllib.request

    from fake_servers.discovery import resolve_to_fakes

    spec = load_file(write(tmp_path, '''
[[accounts]]
username = "alice@example.test"
password = "pw"
[discovery]
domain = "example.test"
[discovery.autoconfig]
[discovery.oauth]
uses = 1
'''))
    provider = spec.build().start()
    try:
        discovery = provider.discovery
        assert discovery.wire is provider.wire and discovery.store is provider.store and discovery.tls is provider.tls
        assert discovery.endpoints == {"imap": provider.imap_port, "imaps": provider.imaps_port,
                                       "smtp": provider.smtp_port, "smtps": provider.smtps_port}
        assert discovery.token_url == f"https://login.example.test:{discovery.https_port}/oauth2/token"
        tls = ssl.create_default_context(cafile=str(provider.ca_file))
        with resolve_to_fakes(discovery.connect_to):
            with urllib.request.urlopen("https://autoconfig.example.test/mail/config-v1.1.xml", context=tls,
                                        timeout=5) as reply:
                document = reply.read().decode()
            # the mail servers' certificate names the scenario's hosts too
            client = imapclient.IMAPClient("imap.example.test", port=provider.imaps_port, ssl=True, ssl_context=tls,
                                           timeout=5)
            client.login("alice@example.test", "pw")
            client.logout()
        assert f"<port>{provider.imaps_port}</port>" in document and f"<port>{provider.smtps_port}</port>" in document
        assert [c.protocol for c in provider.wire.select()][:1] == ["http"]
    finally:
        provider.stop()
    import socket

    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", discovery.https_port), timeout=2).close()
