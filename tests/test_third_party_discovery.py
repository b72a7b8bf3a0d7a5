"""A discovery client that is not ours: maildiscover (PyPI), through the python adapter, against
the discovery fakes. The assertions state what it really does (docs/clients.md), good or bad.
"""

from __future__ import annotations

import pytest

pytest.importorskip("maildiscover", reason="maildiscover is in the discovery-clients extra")

from harness.adapters.context import ClientContext  # noqa: E402
from harness.adapters.python import PythonAdapter  # noqa: E402

from .discovery_client_support import PASSWORD, USER, make_env  # noqa: E402,F401  (fixture)
from .netutil import twisted_errors  # noqa: E402,F401

SPEC = "clients.maildiscover_client:run"
DEADLINE = 60.0


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """Whatever the client sends, the fakes must not log an error."""


def context(env) -> ClientContext:
    if "connect_to" not in ClientContext.__dataclass_fields__:
        pytest.skip("this harness has no MAILCONFORM_CONNECT_TO in its client context")
    return ClientContext(scenario="test", run=env.provider.wire.run, username=USER, password=PASSWORD, email=USER,
                         ca_file=env.provider.ca_file, maildir=env.home / "Maildir", state_dir=env.home / "state",
                         autodiscover_email=USER, dns=env.discovery.dns_address,
                         connect_to=env.discovery.connect_to_env)


def run_maildiscover(env):
    return PythonAdapter(SPEC, "imap,smtp,autodiscover").run(context(env), DEADLINE)


def test_mozilla_autoconfig_servers_are_used(make_env):
    env = make_env({"autoconfig": {}})
    outcome = run_maildiscover(env)
    assert outcome.exit_status == 0, outcome.error
    assert env.stored() == env.served() and sum(env.stored().values()) == 3
    # RFC 6186 first (nothing there), then autoconfig at the provider's host; no plain http
    questions = env.dns_questions()
    assert {"SRV _imaps._tcp.example.test", "SRV _imap._tcp.example.test",
            "SRV _submission._tcp.example.test"} <= set(questions)
    assert "SRV _submissions._tcp.example.test" not in questions  # RFC 8314's record is not asked
    assert env.urls() == ["GET https://autoconfig.example.test/mail/config-v1.1.xml"]
    assert env.http()[0].target == "/mail/config-v1.1.xml?emailaddress=alice@example.test"
    assert {c.server for c in env.mail_connections()} == {"imaps"}
    # its first URL is Thunderbird's central ISPDB: refused by the name map, never on the network
    assert ("autoconfig.thunderbird.net", 443) in outcome.lookups


def test_plaintext_only_autoconfig_entry_is_never_used(make_env):
    env = make_env({"autoconfig": {"incoming": [{"hostname": "imap.example.test", "port": "imap",
                                                 "socket": "plain"}]}})
    outcome = run_maildiscover(env)
    assert outcome.exit_status == 1
    assert "NothingDiscovered" in outcome.error and "no IMAP server with TLS" in outcome.error
    assert env.mail_connections() == []


def test_rfc6186_not_available_target_respected(make_env):
    env = make_env({"srv": [{"service": "_imaps._tcp", "target": "."},
                            {"service": "_imap._tcp", "target": "imap.example.test", "port": "imap"}]})
    outcome = run_maildiscover(env)
    assert outcome.exit_status == 0, outcome.error
    assert env.stored() == env.served()
    [conn] = env.mail_connections()
    assert conn.server == "imap"  # STARTTLS, as _imap._tcp means; the "." imaps was not tried
    assert all(cmd.tls for cmd in conn.commands if cmd.name in ("AUTHENTICATE", "LOGIN"))


def test_no_pox_autodiscover(make_env):
    env = make_env({"autodiscover": {"root": "success", "autodiscover": "success"}})
    outcome = run_maildiscover(env)
    assert outcome.exit_status == 1 and "NothingDiscovered" in outcome.error
    assert [u for u in env.urls() if "autodiscover.xml" in u] == []
    assert env.mail_connections() == []


def test_a_stalled_autoconfig_endpoint_hangs_it_until_the_deadline(make_env):
    """requests is called without a timeout: maildiscover waits as long as the server does."""
    from clients import maildiscover_client

    env = make_env({"autoconfig": {"autoconfig": "stall"}})
    outcome = PythonAdapter(SPEC, "imap,smtp,autodiscover").run(context(env), 1.5)
    assert outcome.killed_at_deadline and outcome.exit_status is None
    assert env.urls() == ["GET https://autoconfig.example.test/mail/config-v1.1.xml"]
    env.discovery.stop()  # drops the stalled connection: the abandoned call goes on and returns
    assert maildiscover_client._lock.acquire(timeout=30)
    maildiscover_client._lock.release()
    assert env.mail_connections() == []
