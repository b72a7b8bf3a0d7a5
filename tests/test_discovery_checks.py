"""The discovery and OAuth checks, judged on real data: each passes a client that honours its rule
and fails one that breaks it.

Providers are real (IMAP, SMTP and the discovery fakes: DNS, Autodiscover, autoconfig, the
token endpoint); clients are real too: the small in-process clients of
``tests/clients/discovery_clients.py`` run through the python adapter, which resolves the
scenario's names to the fakes (MAILCONFORM_CONNECT_TO), curl with ``--connect-to``, and a few
clients written inline. Tests are named ``test_<check>__pass_...`` / ``test_<check>__fail_...``
(tests/test_checks.py's meta test holds every check to that). The last section loads every
discovery scenario and runs it end to end, against the careful client and careless ones.
"""

from __future__ import annotations

import imaplib
import re
import ssl
import subprocess
import traceback
from pathlib import Path
from types import SimpleNamespace

import pytest

from fake_servers import FakeProvider
from fake_servers.discovery import discovery_config, resolve_to_fakes
from fake_servers.imap.config import ImapConfig
from harness.adapters.context import ClientContext
from harness.adapters.python import PythonAdapter
from harness.discovery import exchanges, facts_of, followed
from harness.observation import Observation
from harness.outcome import Outcome
from harness.runner import RunOptions, run_scenario
from harness.scenario import SCENARIO_DIR, load
from harness.verdicts import Verdict

from .clients import discovery_clients as clients
from .conftest import PASSWORD, USER, populate
from .judging import judge

WAIT = 5.0
CLIENTS = "tests.clients.discovery_clients"
OAUTH_IMAP = ImapConfig(mechanisms=("XOAUTH2",))


# -- a provider with discovery, and clients run the way the runner runs them -------------------------


@pytest.fixture
def make():
    """``make({"autodiscover": {...}}, imap=...)``: a started provider with the discovery fakes
    and the conftest account (5 INBOX messages); stopped at teardown."""
    started: list[FakeProvider] = []

    def build(table: dict | None = None, *, imap: ImapConfig | None = None, messages: int = 3) -> FakeProvider:
        config = discovery_config({"domain": "example.test", **(table or {})})
        provider = FakeProvider(imap=imap, discovery=config).start()
        started.append(provider)
        populate(provider, messages)
        return provider

    yield build
    for provider in started:
        provider.stop()


def context(provider: FakeProvider, tmp_path: Path, *, run: int = 1, discover: bool = True) -> ClientContext:
    """The context the runner builds: told nothing of the servers when the client discovers."""
    told = {} if discover else dict(imap_host=provider.host, imap_port=provider.imaps_port, imap_security="tls")
    for name in ("Maildir", "state"):
        (tmp_path / name).mkdir(exist_ok=True)
    discovery = provider.discovery
    return ClientContext(scenario="test.discovery", run=run, username=USER, password=PASSWORD, email=USER,
                         ca_file=provider.ca_file, maildir=tmp_path / "Maildir", state_dir=tmp_path / "state",
                         outbox=tmp_path / "outbox", dns=discovery.dns_address, connect_to=discovery.connect_to_env,
                         oauth_token_url=discovery.token_url, autodiscover_email=USER if discover else None, **told)


def drive(provider, tmp_path, client: str, *, runs: int = 1, discover: bool = True, deadline: float = 30) -> list:
    """Run ``tests.clients.discovery_clients:<client>`` through the python adapter, ``runs`` times."""
    adapter = PythonAdapter(f"{CLIENTS}:{client}", "imap,autodiscover,oauth2")
    outcomes = []
    for run in range(1, runs + 1):
        if run > 1:
            provider.next_run()
        outcomes.append(adapter.run(context(provider, tmp_path, run=run, discover=discover), deadline))
    return outcomes


def inline(provider, tmp_path, fn, *, run: int = 1, discover: bool = True) -> list:
    """Run ``fn(ctx)`` here, inside the scenario's names, as an in-process client would run."""
    ctx = context(provider, tmp_path, run=run, discover=discover)
    status, error = 0, None
    with resolve_to_fakes(ctx.connect_to_map()) as resolver:
        try:
            fn(ctx)
        except Exception:  # noqa: BLE001 - the client's failure is evidence
            status, error = 1, traceback.format_exc()
    return [Outcome(run, status, False, 0.1, "", "", error, lookups=list(resolver.looked_up))]


def observe(provider, tmp_path, outcomes) -> Observation:
    for conn in provider.wire.select():
        assert conn.wait_closed(WAIT), f"connection #{conn.id} is still open"
    return Observation(scenario=SimpleNamespace(id="test.discovery", client=SimpleNamespace(imap_security="tls")),
                       wire=provider.wire, outcomes=outcomes, maildir=tmp_path / "Maildir", outbox=tmp_path / "outbox",
                       username=USER, password=PASSWORD, secrets=(PASSWORD.encode(),), discovery=facts_of(provider))


def failing(result):
    assert result.passed is False
    assert result.evidence
    for e in result.evidence:
        assert e.rule and e.expected and e.observed
        assert PASSWORD not in e.observed and PASSWORD not in e.wire
    return result.evidence[0]


def passing(result):
    assert result.passed is True, [(e.observed, e.wire) for e in result.evidence]
    return result.evidence[0] if result.evidence else None


SUCCESS = {"autodiscover": {"autodiscover": "success"}}
MAIL_HOST = {"autodiscover": {"autodiscover": {"answer": "success", "imap": {"host": "mail.example.test"}}}}
HTTP_STEP = {"autodiscover": {
    "http": {"answer": "http_redirect", "location": "https://mail.example.test/autodiscover/autodiscover.xml"},
    "mail.example.test": {"answer": "unauthorized", "then": "success"}}}
ELSEWHERE = {"autodiscover": {
    "http": {"answer": "http_redirect", "location": "https://autodiscover.outlook.test/autodiscover/autodiscover.xml"},
    "autodiscover.outlook.test": {"answer": "unauthorized", "then": "success"}}}
LOOP = {"autodiscover": {"autodiscover": "loop"}}
HTTP_REDIRECT_URL = {"autodiscover": {
    "root": {"answer": "redirect_url", "url": "http://mail.example.test/autodiscover/autodiscover.xml"},
    "autodiscover": {"answer": "redirect_url", "url": "https://mail.example.test/autodiscover/autodiscover.xml"},
    "mail.example.test": "success"}}
AUTOCONFIG = {"autoconfig": {
    "incoming": [{"hostname": "imap.example.test", "port": "imap", "socket": "plain"},
                 {"hostname": "imap.example.test", "port": "imaps", "socket": "SSL"}]}}
SRV = {"srv": [{"service": "_imaps._tcp", "target": "imap.example.test", "port": "imaps"},
               {"service": "_imap._tcp", "target": "."}]}


# -- the HTTP record, read back ------------------------------------------------------------------------


def test_exchanges_pair_requests_with_answers_and_redirects(make, tmp_path):
    provider = make(HTTP_REDIRECT_URL)
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    observe(provider, tmp_path, outcomes)
    found = exchanges(provider.wire)
    assert [(e.scheme, e.request.host, e.status) for e in found] == [
        ("https", "example.test", 200), ("https", "autodiscover.example.test", 200),
        ("https", "mail.example.test", 200)]
    assert [e.redirect.kind if e.redirect else None for e in found] == ["redirectUrl", "redirectUrl", None]
    assert [(a.request.host, b.request.host) for a, b in followed(found)] == [("autodiscover.example.test",
                                                                               "mail.example.test")]
    assert ("imap.example.test", provider.imaps_port) in outcomes[0].lookups


# -- no_credentials_over_http ----------------------------------------------------------------------------


def test_no_credentials_over_http__pass_basic_only_after_the_https_401(make, tmp_path):
    provider = make(HTTP_STEP)
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    obs = observe(provider, tmp_path, outcomes)
    assert any(e.scheme == "https" and e.credentials for e in exchanges(provider.wire))  # Basic went, over https
    e = passing(judge("no_credentials_over_http", obs))
    assert "1 plain-http request(s) (to autodiscover.example.test), none carried credentials" in e.observed


def test_no_credentials_over_http__fail_basic_on_the_http_get_step(make, tmp_path):
    provider = make(HTTP_STEP)
    obs = observe(provider, tmp_path, drive(provider, tmp_path, "basic_over_http"))
    result = judge("no_credentials_over_http", obs)
    e = failing(result)
    assert result.security
    assert "GET http://autodiscover.example.test/autodiscover/autodiscover.xml carried an Authorization: Basic" \
        in e.observed
    assert ">> C: GET /autodiscover/autodiscover.xml HTTP/1.1" in e.wire and "Authorization: Basic ***" in e.wire


def test_no_credentials_over_http__fail_password_in_a_query_string_curl(make, tmp_path):
    """curl with --connect-to, the way a command client is pointed at the fakes."""
    provider = make(HTTP_STEP)
    discovery = provider.discovery
    command = ["curl", "-sS", "--max-time", "5", "-o", "/dev/null"]
    for entry in discovery.connect_to_entries:
        command += ["--connect-to", entry]
    url = f"http://autodiscover.example.test/autodiscover/autodiscover.xml?user={USER}&pw={PASSWORD}"
    subprocess.run(command + [url.replace(" ", "%20")], check=True, timeout=10)
    obs = observe(provider, tmp_path, [Outcome(1, 0, False, 0.1, "", "")])
    e = failing(judge("no_credentials_over_http", obs))
    assert e.observed.startswith("GET http://autodiscover.example.test/autodiscover/autodiscover.xml?user=alice@"
                                 "example.test&pw=*** carried the password (in the request) over plain http")
    assert "correct%20horse" not in e.wire and "pw=***" in e.wire


# -- no_credentials_to_untrusted_hosts ---------------------------------------------------------------------


def test_no_credentials_to_untrusted_hosts__pass_keeps_the_password_from_a_redirected_host(make, tmp_path):
    provider = make(ELSEWHERE)
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 1  # nothing else answers: discovery fails, the password stays home
    obs = observe(provider, tmp_path, outcomes)
    assert any(e.request.host == "autodiscover.outlook.test" and e.status == 401 for e in exchanges(provider.wire))
    e = passing(judge("no_credentials_to_untrusted_hosts", obs))
    assert e.observed == "0 request(s) carried credentials, all to those domains"


def test_no_credentials_to_untrusted_hosts__pass_the_domain_of_a_redirect_addr(make, tmp_path):
    provider = make({"autodiscover": {
        "autodiscover": {"answer": "redirect_addr", "address": "alice@contoso.test"},
        "autodiscover.contoso.test": {"answer": "unauthorized", "then": "success", "imap": {"login_name": USER}}}})
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    e = passing(judge("no_credentials_to_untrusted_hosts", observe(provider, tmp_path, outcomes)))
    assert e.expected == "credentials only to contoso.test, example.test"
    assert e.observed == "1 request(s) carried credentials, all to those domains"


def test_no_credentials_to_untrusted_hosts__pass_a_domain_the_scenario_trusts(make, tmp_path):
    provider = make(ELSEWHERE)
    obs = observe(provider, tmp_path, drive(provider, tmp_path, "trusts_redirects"))
    passing(judge("no_credentials_to_untrusted_hosts", obs, {"trusted": ["outlook.test"]}))


def test_no_credentials_to_untrusted_hosts__fail_answers_the_redirected_hosts_401(make, tmp_path):
    provider = make(ELSEWHERE)
    outcomes = drive(provider, tmp_path, "trusts_redirects")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    result = judge("no_credentials_to_untrusted_hosts", observe(provider, tmp_path, outcomes))
    e = failing(result)
    assert result.security
    assert e.observed == ("POST https://autodiscover.outlook.test/autodiscover/autodiscover.xml carried credentials to "
                          "autodiscover.outlook.test, reached by following HTTP redirect to "
                          "https://autodiscover.outlook.test/autodiscover/autodiscover.xml from "
                          "autodiscover.example.test")
    assert "Authorization: Basic ***" in e.wire and "S: HTTP/1.1 200 OK" in e.wire


# -- max_redirects ------------------------------------------------------------------------------------------


def test_max_redirects__pass_stops_after_ten_hops_of_a_loop(make, tmp_path):
    provider = make(LOOP)
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 1 and "autodiscovery failed" in outcomes[0].error
    obs = observe(provider, tmp_path, outcomes)
    e = passing(judge("max_redirects", obs, {"n": 10}))
    assert e.observed == "at most 10 followed in a run (11 redirect answer(s) offered)"


def test_max_redirects__pass_counts_a_redirect_addr_once(make, tmp_path):
    provider = make({"autodiscover": {
        "autodiscover": {"answer": "redirect_addr", "address": "alice@corp.example.test"},
        "autodiscover.corp.example.test": {"answer": "success", "imap": {"login_name": USER}}}})
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    e = passing(judge("max_redirects", observe(provider, tmp_path, outcomes), {"n": 1}))
    assert e.observed.startswith("at most 1 followed in a run")


def test_max_redirects__fail_a_client_that_follows_fifteen(make, tmp_path):
    provider = make(LOOP)
    outcomes = inline(provider, tmp_path, lambda ctx: clients.discover_and_sync(ctx, clients.Habits(max_hops=15)))
    e = failing(judge("max_redirects", observe(provider, tmp_path, outcomes), {"n": 10}))
    assert e.observed.startswith("15 redirects followed in run 1; hop 11 followed redirectUrl "
                                 "https://autodiscover.example.test/autodiscover/autodiscover.xml with POST")
    assert ">> C: POST /autodiscover/autodiscover.xml" in e.wire


# -- https_only_redirects -------------------------------------------------------------------------------------


def test_https_only_redirects__pass_skips_the_http_redirect_url(make, tmp_path):
    provider = make(HTTP_REDIRECT_URL)
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    e = passing(judge("https_only_redirects", observe(provider, tmp_path, outcomes)))
    assert e.observed == "1 redirect(s) to http offered, none followed; 1 other redirect(s) followed"


def test_https_only_redirects__fail_follows_the_http_redirect_url(make, tmp_path):
    provider = make(HTTP_REDIRECT_URL)
    obs = observe(provider, tmp_path, drive(provider, tmp_path, "follows_http"))
    e = failing(judge("https_only_redirects", obs))
    assert "answered redirectUrl http://mail.example.test/autodiscover/autodiscover.xml" in e.observed
    assert "POST http://mail.example.test/autodiscover/autodiscover.xml over plain http" in e.observed


# -- used_discovered_servers ------------------------------------------------------------------------------------


def test_used_discovered_servers__pass_connects_where_autodiscover_said(make, tmp_path):
    provider = make(MAIL_HOST)
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    e = passing(judge("used_discovered_servers", observe(provider, tmp_path, outcomes), {"protocols": ["imap"]}))
    assert e.observed == "1 connection(s), to imap/imaps; names looked up: mail.example.test"


def test_used_discovered_servers__pass_dns_lookups_of_a_command_client(make, tmp_path):
    """A client resolving through MAILCONFORM_DNS: its A queries are the names it used."""
    from .discovery_support import dns_query

    provider = make(MAIL_HOST)
    reply = dns_query(provider.discovery.dns_port, "mail.example.test", "A")
    assert reply.answers
    with imaplib.IMAP4_SSL("127.0.0.1", provider.imaps_port,
                           ssl_context=ssl.create_default_context(cafile=str(provider.ca_file))) as client:
        client.login(USER, PASSWORD)
    obs = observe(provider, tmp_path, [Outcome(1, 0, False, 0.1, "", "")])
    passing(judge("used_discovered_servers", obs, {"protocols": ["imap"]}))


def test_used_discovered_servers__fail_guessed_host_name(make, tmp_path):
    provider = make(MAIL_HOST)
    outcomes = inline(provider, tmp_path,
                      lambda ctx: clients.discover_and_sync(ctx, clients.Habits(guess_host="imap.example.test")))
    assert outcomes[0].exit_status == 0, outcomes[0].error
    e = failing(judge("used_discovered_servers", observe(provider, tmp_path, outcomes), {"protocols": ["imap"]}))
    assert e.observed == (f"the client went to imap.example.test:{provider.imaps_port} (imaps; resolved in-process, "
                          "run 1), which no discovery answer named")
    assert "IMAP mail.example.test" in e.expected


def test_used_discovered_servers__fail_dns_lookup_of_a_guessed_name(make, tmp_path):
    from .discovery_support import dns_query

    provider = make(MAIL_HOST)
    dns_query(provider.discovery.dns_port, "imap.example.test", "A")
    obs = observe(provider, tmp_path, [Outcome(1, 0, False, 0.1, "", "")])
    e = failing(judge("used_discovered_servers", obs, {"require": False}))
    assert e.observed.startswith("the client looked up imap.example.test (DNS A query")
    assert "C: A imap.example.test" in e.wire


def test_used_discovered_servers__fail_another_port(make, tmp_path):
    provider = make(SUCCESS)
    outcomes = inline(provider, tmp_path, lambda ctx: clients.discover_and_sync(
        ctx, clients.Habits(use_port=provider.imap_port)))
    e = failing(judge("used_discovered_servers", observe(provider, tmp_path, outcomes), {"protocols": ["imap"]}))
    assert f"went to the imap port ({provider.imap_port}), which no discovery answer named" in e.observed


def test_used_discovered_servers__fail_never_connected(make, tmp_path):
    provider = make({})
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 1
    e = failing(judge("used_discovered_servers", observe(provider, tmp_path, outcomes)))
    assert e.observed == "the client never connected to a mail server (imap, smtp)"


# -- no_plaintext_servers -----------------------------------------------------------------------------------------


def test_no_plaintext_servers__pass_takes_the_ssl_entry(make, tmp_path):
    provider = make(AUTOCONFIG)
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    obs = observe(provider, tmp_path, outcomes)
    e = passing(judge("no_plaintext_servers", obs))
    assert e.observed == (f"plaintext-only: IMAP imap.example.test:{provider.imap_port} (none); "
                          "the client never connected")
    passing(judge("used_discovered_servers", obs, {"protocols": ["imap"]}))


def test_no_plaintext_servers__pass_starttls_on_the_plaintext_entry(make, tmp_path):
    provider = make(AUTOCONFIG)
    outcomes = inline(provider, tmp_path, lambda ctx: clients.sync_inbox(ctx, _login(ctx, clients.Server(
        "imap.example.test", provider.imap_port, "starttls"))))
    assert outcomes[0].exit_status == 0, outcomes[0].error
    e = passing(judge("no_plaintext_servers", observe(provider, tmp_path, outcomes)))
    assert "1 connection(s) to its port, none used without TLS" in e.observed


def test_no_plaintext_servers__fail_logs_in_on_the_plaintext_entry(make, tmp_path):
    provider = make(AUTOCONFIG)
    obs = observe(provider, tmp_path, drive(provider, tmp_path, "plaintext_entries"))
    result = judge("no_plaintext_servers", obs)
    e = failing(result)
    assert result.security  # the LOGIN carried the password
    assert re.match(rf"'\w+ LOGIN {USER} \*\*\*' sent without TLS on connection #\d+ \(imap/imap, run 1\), the "
                    rf"port of IMAP imap.example.test:{provider.imap_port} \(none\) from the autoconfig incoming\[0\]$",
                    e.observed), e.observed


def _login(ctx, server):
    client = clients._imap(ctx, server)
    client.login(USER, PASSWORD)
    return client


# -- srv_not_available_respected -----------------------------------------------------------------------------------


def test_srv_not_available_respected__pass_uses_imaps_only(make, tmp_path):
    provider = make(SRV)
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 0, outcomes[0].error
    obs = observe(provider, tmp_path, outcomes)
    e = passing(judge("srv_not_available_respected", obs))
    assert e.observed == "none; the client connected to imap/imaps"
    passing(judge("used_discovered_servers", obs, {"protocols": ["imap"]}))


def test_srv_not_available_respected__fail_tries_the_unavailable_service(make, tmp_path):
    provider = make(SRV)

    def ignores_the_dot(ctx):
        assert clients.srv(ctx, "_imap._tcp.example.test") == []  # "." : not available
        clients.sync_inbox(ctx, _login(ctx, clients.Server("imap.example.test", provider.imap_port, "starttls")))

    outcomes = inline(provider, tmp_path, ignores_the_dot)
    assert outcomes[0].exit_status == 0, outcomes[0].error
    e = failing(judge("srv_not_available_respected", observe(provider, tmp_path, outcomes)))
    assert f"the imap port ({provider.imap_port}) serves _imap._tcp.example.test, whose SRV target is \".\"" \
        in e.observed


# -- national_cloud_reported (measured) -----------------------------------------------------------------------------


def test_national_cloud_reported__measures_without_judging(make, tmp_path):
    provider = make({"autodiscover": {"autodiscover": "national_cloud"}})
    outcomes = drive(provider, tmp_path, "careful")
    assert outcomes[0].exit_status == 1
    result = judge("national_cloud_reported", observe(provider, tmp_path, outcomes), level="INFO")
    assert result.passed is None and result.level == "INFO"
    offered, said = result.evidence
    assert "redirectUrl https://autodiscover-s.partner.outlook.cn/autodiscover/autodiscover.xml; the client did " \
           "not follow it" in offered.observed
    assert said.observed.startswith("run 1 (exit 1): its output says:") and "not supported" in said.observed

    follower = make({"autodiscover": {"autodiscover": {"answer": "national_cloud", "cloud": "usgov"}}})
    path = tmp_path / "follower"
    path.mkdir()

    def follows(ctx):  # takes the redirect and sends its password along
        pox = {"Content-Type": "text/xml"}
        _, _, body = clients._open(ctx, "https://autodiscover.example.test/autodiscover/autodiscover.xml",
                                   data=clients._pox_body(USER), headers=pox)
        kind, url = clients._pox_answer(body)
        assert kind == "redirectUrl"
        status, _, _ = clients._open(ctx, url, data=clients._pox_body(USER),
                                     headers={**pox, "Authorization": clients._basic(ctx)})
        assert status == 401  # the cloud wants its own Azure AD token

    outcomes = inline(follower, path, follows)
    assert outcomes[0].exit_status == 0, outcomes[0].error
    result = judge("national_cloud_reported", observe(follower, path, outcomes), level="INFO")
    assert result.passed is None
    assert result.evidence[0].observed.endswith("the client followed it (1 request(s) to the cloud endpoint, "
                                                "1 with credentials)")
    assert result.evidence[-1].observed == "run 1 (exit 0): it printed nothing"


# -- OAuth ------------------------------------------------------------------------------------------------------------


def test_oauth_token_refreshed__pass_refreshes_after_the_refusal(make, tmp_path):
    provider = make({"oauth": {"until_run": 1}}, imap=OAUTH_IMAP)
    outcomes = drive(provider, tmp_path, "careful", runs=2, discover=False)
    assert [o.exit_status for o in outcomes] == [0, 0], outcomes
    obs = observe(provider, tmp_path, outcomes)
    assert [g.grant_type for g in obs.discovery.grants] == ["password", "refresh_token"]
    e = passing(judge("oauth_token_refreshed", obs, level="SHOULD"))
    assert e.observed.startswith("run 2: refused token …")
    assert "after 1 token request(s) (refresh_token grant)" in e.observed


def test_oauth_token_refreshed__pass_no_token_refused(make, tmp_path):
    provider = make({"oauth": {}}, imap=OAUTH_IMAP)
    outcomes = drive(provider, tmp_path, "careful", discover=False)
    e = passing(judge("oauth_token_refreshed", observe(provider, tmp_path, outcomes), level="SHOULD"))
    assert e.observed == "no token was refused: 1 OAuth login(s), 1 token(s), all accepted"


def test_oauth_token_refreshed__fail_gives_up_on_the_expired_token(make, tmp_path):
    provider = make({"oauth": {"until_run": 1}}, imap=OAUTH_IMAP)
    outcomes = drive(provider, tmp_path, "oauth_without_refresh", runs=2, discover=False)
    assert [o.exit_status for o in outcomes] == [0, 1]
    e = failing(judge("oauth_token_refreshed", observe(provider, tmp_path, outcomes), level="SHOULD"))
    assert e.run == 2 and "was refused" in e.observed and "did not authenticate again" in e.observed
    assert "AUTHENTICATE XOAUTH2" in e.wire


def test_oauth_token_refreshed__fail_never_uses_oauth(make, tmp_path):
    provider = make({"oauth": {}})
    with imaplib.IMAP4_SSL("127.0.0.1", provider.imaps_port,
                           ssl_context=ssl.create_default_context(cafile=str(provider.ca_file))) as client:
        client.login(USER, PASSWORD)
    obs = observe(provider, tmp_path, [Outcome(1, 0, False, 0.1, "", "")])
    e = failing(judge("oauth_token_refreshed", obs, level="SHOULD"))
    assert e.observed.startswith("the client never authenticated with XOAUTH2 or OAUTHBEARER (0 token(s) issued); "
                                 "it authenticated otherwise on 1 connection(s)")


MISMATCH = {"oauth": {"identity": "mallory@example.test"}}


def test_oauth_identity_refused__pass_checks_the_id_token(make, tmp_path):
    provider = make(MISMATCH, imap=OAUTH_IMAP)
    outcomes = drive(provider, tmp_path, "careful", discover=False)
    assert outcomes[0].exit_status == 1 and "identity mismatch" in outcomes[0].error
    e = passing(judge("oauth_identity_refused", observe(provider, tmp_path, outcomes)))
    assert e.observed == ("the endpoint issued 1 token(s) for mallory@example.test (asked for by alice@example.test); "
                          "the client never presented one")


def test_oauth_identity_refused__pass_presents_it_as_itself_and_is_refused(make, tmp_path):
    provider = make(MISMATCH, imap=OAUTH_IMAP)
    outcomes = inline(provider, tmp_path, lambda ctx: clients.oauth_sync(ctx, check_identity=False), discover=False)
    assert outcomes[0].exit_status == 1
    e = passing(judge("oauth_identity_refused", observe(provider, tmp_path, outcomes)))
    assert e.observed == ("the endpoint issued 2 token(s) for mallory@example.test; the client presented one 2 "
                          "time(s) (as alice@example.test), never logged in as them")  # the first, and its refresh


def test_oauth_identity_refused__fail_logs_in_as_the_other_identity(make, tmp_path):
    provider = make(MISMATCH, imap=OAUTH_IMAP)
    outcomes = drive(provider, tmp_path, "oauth_trusts_identity", discover=False)
    assert outcomes[0].exit_status == 0, outcomes[0].error
    result = judge("oauth_identity_refused", observe(provider, tmp_path, outcomes))
    e = failing(result)
    assert result.security
    assert re.search(r"logged in as mallory@example.test; then '\w+ EXAMINE INBOX', '\w+ UID SEARCH ALL'",
                     e.observed), e.observed


# -- the discovery scenarios, end to end ------------------------------------------------------------------

DISCOVERY_FILES = sorted([*SCENARIO_DIR.glob("discovery/**/*.toml"), SCENARIO_DIR / "imap/auth/xoauth2-expired.toml",
                          SCENARIO_DIR / "imap/auth/identity-mismatch.toml"])
CATALOG_ROWS = {"autodiscover.pox.success", "autodiscover.pox.redirect-addr", "autodiscover.pox.redirect-url",
                "autodiscover.pox.redirect-loop", "autodiscover.http-redirect", "autodiscover.srv",
                "autodiscover.wrong-server", "autodiscover.all-fail", "autodiscover.national-cloud",
                "autoconfig.mozilla", "srv.rfc6186", "imap.auth.xoauth2-expired", "imap.auth.identity-mismatch"}


def test_every_discovery_row_of_the_catalog_has_a_scenario():
    assert {load(path).id for path in DISCOVERY_FILES} == CATALOG_ROWS


@pytest.mark.parametrize("path", DISCOVERY_FILES, ids=lambda p: p.stem)
def test_discovery_scenario_loads(path):
    scenario = load(path)
    assert scenario.source and scenario.requirement and scenario.checks
    assert "discovery" in scenario.provider.data
    assert ("oauth2" in scenario.needs) == scenario.id.startswith("imap.auth.")
    assert scenario.client.discover == ("autodiscover" in scenario.needs)
    assert scenario.deadline <= 30


def _run(scenario_id: str, client: str, tmp_path):
    path = next(p for p in DISCOVERY_FILES if load(p).id == scenario_id)
    adapter = PythonAdapter(f"{CLIENTS}:{client}", "imap,smtp,autodiscover,oauth2")
    return run_scenario(load(path), adapter, RunOptions(workdir=tmp_path))


@pytest.mark.parametrize("scenario_id", sorted(CATALOG_ROWS))
def test_careful_client_earns_the_expected_verdict(scenario_id, tmp_path):
    result = _run(scenario_id, "careful", tmp_path)
    want = Verdict.INFO if result.level == "INFO" else Verdict.PASS
    assert result.verdict is want, (result.reason, [(c.check, c.passed, c.error, [e.observed for e in c.evidence])
                                                     for c in result.checks], result.client_output)


CARELESS = [
    ("autodiscover.http-redirect", "basic_over_http", Verdict.FAIL, "no_credentials_over_http"),
    ("autodiscover.http-redirect", "trusts_redirects", Verdict.FAIL, "no_credentials_to_untrusted_hosts"),
    ("autodiscover.pox.redirect-url", "follows_http", Verdict.FAIL, "https_only_redirects"),
    ("autoconfig.mozilla", "plaintext_entries", Verdict.FAIL, "no_plaintext_servers"),
    ("imap.auth.xoauth2-expired", "oauth_without_refresh", Verdict.NON_STRICT, "oauth_token_refreshed"),
    ("imap.auth.identity-mismatch", "oauth_trusts_identity", Verdict.FAIL, "oauth_identity_refused"),
]


@pytest.mark.parametrize("scenario_id, client, verdict, check", CARELESS, ids=[f"{c[0]}-{c[1]}" for c in CARELESS])
def test_careless_client_fails_what_it_violates(scenario_id, client, verdict, check, tmp_path):
    result = _run(scenario_id, client, tmp_path)
    assert result.verdict is verdict, (result.reason, result.client_output)
    assert result.reason.startswith(next(c for c in result.checks if c.check == check).evidence[0].rule)
    if verdict is Verdict.FAIL and check != "https_only_redirects":
        assert "security" in result.tags
    assert PASSWORD not in result.transcript and PASSWORD not in result.client_output


def test_a_client_without_discovery_is_unsupported(tmp_path):
    adapter = PythonAdapter(f"{CLIENTS}:careful", "imap")
    path = next(p for p in DISCOVERY_FILES if load(p).id == "autodiscover.pox.success")
    assert run_scenario(load(path), adapter, RunOptions(workdir=tmp_path)).verdict is Verdict.UNSUPPORTED
