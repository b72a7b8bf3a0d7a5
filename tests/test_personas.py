"""Provider personas and their certifications.

Every persona (``fake_servers/personas/*.toml``) loads and builds, cites a source for each of its
IMAP and SMTP settings, and behaves as its file says; every persona has a certification
(``scenarios/personas/<persona>/``) whose scenarios name it as their provider, carry its
``persona:<name>`` tag, and are counted by the report's certification: "compatible with the
icloud persona: 12/12".
"""

from __future__ import annotations

import imaplib
import os
import re
import smtplib
import ssl
import tomllib
from pathlib import Path

import pytest

from fake_servers.provider_config import PERSONA_DIR, load_persona, personas
from harness.reports import RunReport
from harness.scenario import SCENARIO_DIR, Scenario, catalog, load
from harness.verdicts import ScenarioResult, Verdict

ROOT = Path(__file__).resolve().parent.parent
CERTIFICATIONS = SCENARIO_DIR / "personas"
# The personas of CATALOG.md §7; a new persona file needs a certification as well.
CATALOG_PERSONAS = {"gmail", "outlook365", "exchange-onprem-imap", "yahoo", "aol", "icloud", "generic-dovecot"}
BEHAVIOUR_TABLES = ("imap", "imap.texts", "smtp", "smtp.texts")


def certification(name: str) -> list[Scenario]:
    return [load(path) for path in sorted((CERTIFICATIONS / name).glob("*.toml"))]


def raw(scenario: Scenario) -> dict:
    return tomllib.loads(scenario.path.read_text(encoding="utf-8"))


# -- the personas -----------------------------------------------------------------------------


def test_the_catalog_personas_all_exist():
    assert CATALOG_PERSONAS <= set(personas())


@pytest.mark.parametrize("name", personas())
def test_persona_loads_and_builds(name):
    spec = load_persona(name)
    assert spec.data.get("description"), f"{name}: a persona says in one line what it reproduces"
    with spec.build() as provider:
        assert provider.imap_port and provider.imaps_port and provider.smtp_port and provider.smtps_port


def _has_comment(line: str) -> bool:
    """Whether a TOML line has a comment: a # outside strings (basic, with escapes, or literal)."""
    quote, escaped = None, False
    for char in line:
        if quote == '"' and escaped:
            escaped = False
        elif quote == '"' and char == "\\":
            escaped = True
        elif quote is not None:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            return True
    return False


def _uncited_settings(text: str) -> list[str]:
    """Settings of the [imap]/[smtp] tables with no comment: on their line, or on the line(s)
    just above them (past other settings of the same block), or on their table's header."""
    table, uncited = "", []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        header = re.match(r"^\[\[?([^\]]+)\]\]?", stripped)
        if header:
            table = header.group(1).strip()
            continue
        setting = re.match(r"^([A-Za-z_][\w-]*)\s*=", stripped)
        if not setting or table not in BEHAVIOUR_TABLES:
            continue
        if _has_comment(stripped):
            continue  # a trailing comment after the value
        above = number - 1
        while above >= 0 and re.match(r"^[A-Za-z_][\w-]*\s*=", lines[above].strip()):
            above -= 1
        before = lines[above].strip() if above >= 0 else ""
        if before.startswith("#") or (before.startswith("[") and "#" in before):
            continue
        uncited.append(f"[{table}] {setting.group(1)} (line {number + 1})")
    return uncited


@pytest.mark.parametrize("name", personas())
def test_every_persona_setting_cites_its_source(name):
    text = (PERSONA_DIR / f"{name}.toml").read_text(encoding="utf-8")
    assert _uncited_settings(text) == []


def test_the_citation_rule_notices_a_bare_setting():
    assert _uncited_settings('[smtp]\nsize_limit = 5\n') == ["[smtp] size_limit (line 2)"]
    assert _uncited_settings('[smtp]\n# seed 003\nsize_limit = 5\nmax_recipients = 2\n') == []
    assert _uncited_settings('[smtp.texts]  # their wording\ngreeting = "220 x # y"\n') == []
    assert _uncited_settings('[smtp]\ngreeting = "220 x # not a comment"\n') == ["[smtp] greeting (line 2)"]
    assert _uncited_settings('[imap]\nhierarchy_delimiter = "/"  # "[Gmail]/Sent Mail"\n') == []
    assert _uncited_settings('[imap.texts]\ngreeting = "a \\" # b"\n') == ["[imap.texts] greeting (line 2)"]


def test_icloud_persona_has_the_documented_limits():
    smtp = load_persona("icloud").data["smtp"]
    assert (smtp["daily_messages"], smtp["daily_recipients"], smtp["max_recipients"]) == (1000, 1000, 500)
    assert smtp["size_limit"] == 20 * 1024 * 1024


def _started(name: str):
    provider = load_persona(name).build()
    provider.start()
    return provider


def _context(provider) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(provider.ca_file))


def test_yahoo_persona_answers_bad_to_search_with_not():
    provider = _started("yahoo")
    try:
        client = imaplib.IMAP4_SSL(provider.host, provider.imaps_port, ssl_context=_context(provider))
        with pytest.raises(imaplib.IMAP4.error, match="Application-specific password required"):
            client.login("user@yahoo.test", "account password")
        client.login("user@yahoo.test", "abcdefghijklmnop")
        client.select("INBOX")
        status, data = client.uid("SEARCH", "ALL")
        assert status == "OK" and len(data[0].split()) == 20
        with pytest.raises(imaplib.IMAP4.error):
            client.uid("SEARCH", "NOT", "SEEN")
        client.logout()
    finally:
        provider.stop()


def test_exchange_onprem_persona_offers_one_mechanism_per_protocol():
    provider = _started("exchange-onprem-imap")
    try:
        provider.add_account("alice@example.test", "secret")
        imap = imaplib.IMAP4(provider.host, provider.imap_port)
        imap.starttls(_context(provider))
        mechanisms = sorted(c for c in imap.capabilities if c.startswith("AUTH="))
        assert mechanisms == ["AUTH=PLAIN"]
        imap.logout()
        smtp = smtplib.SMTP(provider.host, provider.smtp_port, timeout=5)
        smtp.starttls(context=_context(provider))
        smtp.ehlo()
        assert smtp.esmtp_features["auth"].split() == ["LOGIN"]
        smtp.quit()
    finally:
        provider.stop()


def test_icloud_persona_offers_no_starttls_and_advertises_its_size():
    provider = _started("icloud")
    try:
        imap = imaplib.IMAP4(provider.host, provider.imap_port)
        assert "STARTTLS" not in imap.capabilities
        imap.logout()
        smtp = smtplib.SMTP(provider.host, provider.smtp_port, timeout=5)
        smtp.ehlo()
        assert not smtp.has_extn("starttls") and not smtp.has_extn("auth")
        smtp.quit()
        smtps = smtplib.SMTP_SSL(provider.host, provider.smtps_port, context=_context(provider), timeout=5)
        smtps.ehlo()
        assert smtps.esmtp_features["size"] == "20971520"
        smtps.quit()
    finally:
        provider.stop()


# -- the certifications -----------------------------------------------------------------------


@pytest.mark.parametrize("name", personas())
def test_every_persona_has_a_certification(name):
    scenarios = certification(name)
    assert len(scenarios) >= 5, f"{name}: a certification of {len(scenarios)} scenario(s) says little"
    imap = [s for s in scenarios if s.needs == ["imap"] and any(c.name == "store_matches_server" for c in s.checks)]
    smtp = [s for s in scenarios if "smtp" in s.needs and any(c.name == "outbox_sent" for c in s.checks)]
    assert imap, f"{name}: no basic sync (an IMAP scenario judged by store_matches_server)"
    assert smtp, f"{name}: no basic send (an SMTP scenario judged by outbox_sent)"


@pytest.mark.parametrize("name", personas())
def test_each_certification_scenario_names_its_persona(name):
    for scenario in certification(name):
        where = scenario.path.relative_to(ROOT)
        assert scenario.id.startswith(f"persona.{name}."), where
        assert raw(scenario)["provider"]["persona"] == name, where
        tags = [t for t in scenario.tags if t.startswith("persona:")]
        assert tags == [f"persona:{name}"], where
        assert scenario.source and scenario.requirement, where
        assert scenario.deadline <= 30, f"{where}: keep certification scenarios fast"


def test_persona_scenarios_live_only_in_their_certification():
    for scenario in catalog():
        tagged = [t.removeprefix("persona:") for t in scenario.tags if t.startswith("persona:")]
        in_dir = scenario.path.parent.parent == CERTIFICATIONS
        assert bool(tagged) == in_dir, scenario.path
        if in_dir:
            assert tagged == [scenario.path.parent.name], scenario.path
    assert {p.name for p in CERTIFICATIONS.iterdir() if p.is_dir()} == set(personas())


def _results(verdict_of) -> list[ScenarioResult]:
    return [ScenarioResult(id=s.id, title=s.title, level=s.level, verdict=verdict_of(s), tags=list(s.tags))
            for s in catalog(patterns=["persona.*"])]


def test_the_report_certifies_each_persona_over_its_whole_set():
    sizes = {name: len(certification(name)) for name in personas()}
    report = RunReport(results=_results(lambda s: Verdict.INFO if s.level == "INFO" else Verdict.PASS))
    assert report.certifications() == {name: f"{n}/{n}" for name, n in sorted(sizes.items())}

    failing = {f"persona.icloud.{n}" for n in ("smtp-daily-quota", "imap-app-password-required")}
    unsupported = {s.id for s in catalog(patterns=["persona.icloud.*"]) if "smtp" in s.needs}
    verdicts = {"persona.icloud.smtp-daily-quota": Verdict.FAIL,
                "persona.icloud.imap-app-password-required": Verdict.NON_STRICT}

    def verdict(s):
        if s.id in failing:
            return verdicts[s.id]
        if s.id in unsupported:
            return Verdict.UNSUPPORTED  # counted, not passed: an IMAP-only client is not certified
        return Verdict.XFAIL if s.id == "persona.icloud.imap-sync" else Verdict.PASS

    counts = RunReport(results=_results(verdict)).certifications()
    passed = sizes["icloud"] - len(unsupported | failing)
    assert counts["icloud"] == f"{passed}/{sizes['icloud']}"
    assert counts["gmail"] == f"{sizes['gmail']}/{sizes['gmail']}"


def test_a_persona_scenario_run_is_counted_by_the_certification(tmp_path, monkeypatch):
    from harness.adapters.command import CommandAdapter
    from harness.cli import REFERENCE_CLIENT, REFERENCE_FEATURES
    from harness.runner import RunOptions, run_scenario

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    (scenario,) = catalog(patterns=["persona.icloud.imap-starttls-not-offered"])
    adapter = CommandAdapter(REFERENCE_CLIENT, features=REFERENCE_FEATURES)
    result = run_scenario(scenario, adapter, RunOptions(workdir=tmp_path))
    assert result.verdict is Verdict.PASS, result.reason
    assert "persona:icloud" in result.tags
    assert RunReport(results=[result]).certifications() == {"icloud": "1/1"}
