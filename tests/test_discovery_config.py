"""The ``[discovery]`` table is loaded strictly: a typo is an error naming the closest valid
word (and, from a file, its line), never a silent 404."""

from __future__ import annotations

import pytest

from fake_servers.discovery import DiscoveryConfigError, discovery_config, load_discovery_file
from fake_servers.provider_config import ConfigError


def error(table: dict) -> str:
    with pytest.raises(DiscoveryConfigError) as info:
        discovery_config(table, "discovery")
    return str(info.value)


@pytest.mark.parametrize("table, message", [
    ({"autodiscovr": {}}, "discovery: unknown key 'autodiscovr'; did you mean 'autodiscover'?"),
    ({"autodiscover": {"autodiscovr": "success"}}, "unknown endpoint 'autodiscovr'"),
    ({"autodiscover": {"root": "sucess"}}, "did you mean 'success'?"),
    ({"autodiscover": {"root": {"answer": "success", "imap": {"prot": 1}}}}, "did you mean 'port'?"),
    ({"autodiscover": {"root": {"answer": "success", "imap": {"port": "imapss"}}}}, "did you mean 'imaps'?"),
    ({"autodiscover": {"root": {"answer": "not_found", "url": "https://x.test/"}}},
     "'url' means nothing for answer 'not_found'"),
    ({"autodiscover": {"root": {"answer": "redirect_url"}}}, "answer 'redirect_url' needs 'url'"),
    ({"autodiscover": {"root": {"answer": "redirect_addr", "address": "nobody"}}}, "expected an email address"),
    ({"autodiscover": {"root": {"answer": "national_cloud", "cloud": "chna"}}}, "did you mean 'china'?"),
    ({"autodiscover": {"root": {"answer": "success", "delay": -1}}}, "must be at least 0"),
    ({"autodiscover": {"root": {"answer": "http_redirect", "location": "ftp://x.test/"}}}, "expected an http(s) URL"),
    ({"names": "a.test"}, "discovery.names: expected array"),
    ({"names": ["not a name"]}, "is not a host name"),
    ({"srv": [{"service": "_imaps._tcp", "target": "imap.example.test"}]}, "missing 'port'"),
    ({"srv": [{"service": "imaps", "target": ".", "port": 1}]}, "expected '_service._tcp'"),
    ({"srv": [{"service": "_imaps._tcp", "target": "x.test", "port": 70000}]}, "a port is 0..65535"),
    ({"autoconfig": {"incoming": [{"hostname": "imap.example.test", "port": 993, "socket": "ssl"}]}},
     "did you mean 'SSL'?"),
    ({"autoconfig": {"well_known": "stal"}}, "did you mean 'stall'?"),
    ({"autoconfig": {"outgoing": [{"type": "imap", "hostname": "x.test", "port": 25}]}}, "'imap' is not one of smtp"),
    ({"oauth": {"signing": "RS256"}}, "is not one of none, HS256"),
    ({"oauth": {"lifetme": 5}}, "did you mean 'lifetime'?"),
    ({"oauth": {"uses": True}}, "expected int, got bool"),
    ({"certs": {"mail.example.test": "expird"}}, "did you mean 'expired'?"),
])
def test_strict_errors(table, message):
    assert message in error(table)


def test_defaults_and_derived_names():
    config = discovery_config({
        "domain": "Example.Test",
        "autodiscover": {"root": {"answer": "redirect_url", "url": "https://ad.other.test/autodiscover/autodiscover.xml"},
                         "autodiscover": {"answer": "national_cloud"},
                         "http": {"answer": "http_redirect", "location": "https://third.test/x"},
                         "mail.example.test": "success"},
        "srv": [{"service": "_imaps._tcp", "target": "imap.example.test", "port": "imaps"},
                {"service": "_imap._tcp", "target": "."}],
        "oauth": {"identity": "mallory@evil.test"},
    })
    assert config.domain == "example.test"
    assert config.names == ()
    for name in ("example.test", "autodiscover.example.test", "autoconfig.example.test", "login.example.test",
                 "ad.other.test", "autodiscover-s.partner.outlook.cn", "third.test", "mail.example.test",
                 "evil.test"):
        assert name in config.all_names(), name
    assert config.autodiscover["mail.example.test"].answer == "success"
    assert config.autodiscover["root"].imap.port == "imaps"
    assert config.srv[1].target == "." and config.srv[1].port == 0
    assert config.oauth.host == "login.example.test" and config.oauth.path == "/oauth2/token"
    assert not config.autoconfig.enabled
    assert discovery_config({"autoconfig": {}}).autoconfig.enabled


def test_starttls_setting_picks_the_plaintext_listener():
    config = discovery_config({"autodiscover": {"root": {"answer": "success", "imap": {"security": "starttls"},
                                                         "smtp": {"security": "none"}}}})
    assert (config.autodiscover["root"].imap.port, config.autodiscover["root"].smtp.port) == ("imap", "smtp")


def test_a_file_error_names_file_and_line(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text('id = "x"\n\n[discovery]\ndomain = "example.test"\n\n[discovery.autodiscover.root]\n'
                    'answer = "success"\nimap = { host = "imap.example.test", prot = 993 }\n')
    with pytest.raises(ConfigError, match=r"scenario\.toml:8: .*did you mean 'port'\?"):
        load_discovery_file(path)
    path.write_text('[discovery]\ndomain = "example.test"\nsrv = []\n')
    assert load_discovery_file(path).domain == "example.test"


def test_the_documented_example_loads():
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "discovery.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    config = discovery_config(tomllib.loads(block)["discovery"])
    assert config.autodiscover["autodiscover"].delay == 0.5
    assert config.certs == {"mail.example.test": "untrusted"}
