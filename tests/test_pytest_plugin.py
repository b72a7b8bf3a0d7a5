"""The pytest plugin (harness/pytest_plugin.py): catalog mode, selection, verdicts as outcomes,
xdist, the ini option, plain runs, and the fixtures.

Catalog runs happen in pytest subprocesses (``runpytest_subprocess``) whose ``PYTHONPATH``
starts with this checkout, so they load this checkout's plugin through the entry point and
can import ``tests.clients``. Collection-only checks run in-process: they start no client.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.scenario import DEFAULT_ACCOUNT, SCENARIO_DIR, catalog
from harness.verdicts import Verdict

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = f"{shlex.quote(sys.executable)} -m reference_client"
CARELESS = "tests.clients.careless:sync"
PASSWORD = DEFAULT_ACCOUNT["password"]
TIMEOUT = 180  # seconds for one pytest subprocess; a hung client must not hang CI
# Plugins these runs do not need and whose start-up dominates a short run.
LEAN = ("-p", "no:hypothesispytest", "-p", "no:benchmark")

_junit_names = itertools.count(1)


@pytest.fixture(scope="module")
def scenarios():
    return catalog(SCENARIO_DIR)


def ids(scenarios, predicate=lambda s: True) -> set[str]:
    return {s.id for s in scenarios if predicate(s)}


@pytest.fixture
def project(pytester, monkeypatch):
    """A pytester project whose pytest subprocesses import this checkout first."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)  # this run may itself be an xdist worker
    return pytester


def run(pytester, *args: str):
    """Run pytest in a subprocess; (RunResult, {item name: (verdict, outcome)}) from JUnit XML."""
    junit = pytester.path / f"junit-{next(_junit_names)}.xml"
    result = pytester.runpytest_subprocess(*LEAN, *args, f"--junitxml={junit}", timeout=TIMEOUT)
    return result, junit_outcomes(junit)


def collect(pytester, *args: str):
    """Collect only, in-process (no client runs)."""
    return pytester.runpytest_inprocess(*LEAN, "--collect-only", *args)


def junit_outcomes(path: Path) -> dict[str, tuple[str | None, str]]:
    seen = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        verdict = next((p.get("value") for p in case.iter("property") if p.get("name") == "verdict"), None)
        outcome = next((tag for tag in ("failure", "error", "skipped") if case.find(tag) is not None), "passed")
        seen[case.get("name")] = (verdict, outcome)
    return seen


def scenario_args(*scenario_ids: str) -> list[str]:
    return [a for i in scenario_ids for a in ("--mailconform-scenario", i)]


def output(result) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


# -- catalog mode: the reference client, and selection -----------------------------------------


def test_reference_client_passes_every_tls_scenario_each_an_item_named_by_its_id(project, scenarios):
    expected = ids(scenarios, lambda s: s.id.startswith("imap.tls."))
    assert len(expected) >= 10
    result, seen = run(project, "--mailconform-client", REFERENCE, "--mailconform-scenario", "imap.tls.*")
    result.assert_outcomes(passed=len(expected))
    levels = {s.id: s.level for s in scenarios}
    assert seen == {i: ("INFO" if levels[i] == "INFO" else "PASS", "passed") for i in expected}


SELECTIONS = [
    (["-m", "level_must"], lambda s: s.level == "MUST"),
    (["-m", "level_should"], lambda s: s.level == "SHOULD"),
    (["-m", "area_imap_tls"], lambda s: s.area == "imap.tls"),
    (["-m", "level_must and area_imap_tls"], lambda s: s.level == "MUST" and s.area == "imap.tls"),
    (["-m", "tag_security"], lambda s: "security" in s.tags),
    (["-k", "no-starttls"], lambda s: "no-starttls" in s.id),
    (["--mailconform-scenario", "imap.tls.*", "-k", "no-starttls"], lambda s: s.id == "imap.tls.no-starttls"),
    (["--mailconform-scenario", "imap.tls.*", "-k", "(cert-expired or cert-wrong-host) and not starttls"],
     lambda s: s.id in ("imap.tls.cert-expired", "imap.tls.cert-wrong-host")),
]


@pytest.mark.parametrize("args, wanted", SELECTIONS, ids=[" ".join(a) for a, _ in SELECTIONS])
def test_markers_and_keywords_select_scenarios(pytester, scenarios, args, wanted):
    pool = ids(scenarios, lambda s: s.id.startswith("imap.tls.")) if "imap.tls.*" in args else ids(scenarios)
    expected = ids(scenarios, wanted) & pool
    assert expected and expected < pool  # the selection must leave something out
    result = collect(pytester, "-q", "--mailconform-client", "true", *args)
    assert result.ret == pytest.ExitCode.OK, output(result)
    selected = [line.rsplit("::", 1)[1] for line in result.stdout.lines if "::" in line]
    assert sorted(selected) == sorted(expected)
    result.stdout.fnmatch_lines([f"{len(expected)}/{len(pool)} tests collected ({len(pool) - len(expected)} deselected)*"])


# -- catalog mode: a careless client's verdicts as outcomes --------------------------------------

CARELESS_VERDICTS = {
    "imap.tls.no-starttls": ("FAIL", "failure"),        # logs in over plaintext
    "imap.tls.cert-expired": ("FAIL", "failure"),       # accepts an expired certificate
    "imap.tls.logindisabled": ("PASS", "passed"),       # does STARTTLS when offered
    "imap.auth.not-connected": ("NON-STRICT", "passed"),  # gives up where it SHOULD reconnect
}


def test_careless_client_fails_what_it_violates_with_readable_evidence(project):
    result, seen = run(project, "--mailconform-client-python", CARELESS, "-rP", *scenario_args(*CARELESS_VERDICTS))
    assert seen == CARELESS_VERDICTS, output(result)
    result.assert_outcomes(failed=2, passed=2)
    replay = ("pytest --mailconform-client-python tests.clients.careless:sync "
              "--mailconform-scenario imap.tls.no-starttls --mailconform-seed 0")
    result.stdout.fnmatch_lines([
        "*_ scenario imap.tls.no-starttls _*",
        "FAIL: imap.tls.no-starttls — * [[]MUST[]]",
        "requirement: A client configured for STARTTLS *",
        "reason: * expected no login attempt at all; observed '* LOGIN alice@example.test ***' sent in plaintext *",
        "  check aborts_without_credentials [[]MUST[]]: FAILED",
        "      wire (credentials redacted):",
        "      >> C: * LOGIN alice@example.test ***",
        f"replay: {replay}",
        "client output:",
    ])
    result.stdout.fnmatch_lines(["*_ scenario imap.tls.cert-expired _*", "FAIL: imap.tls.cert-expired — *"])
    # NON-STRICT passes, its verdict and evidence attached as the report section
    result.stdout.fnmatch_lines([
        "*= PASSES =*",
        "*_ scenario imap.auth.not-connected _*",
        "*- Captured mailconform call -*",
        "NON-STRICT: imap.auth.not-connected — * [[]SHOULD[]]",
        "  check exit_status [[]SHOULD[]]: FAILED",
        "replay: pytest --mailconform-client-python tests.clients.careless:sync "
        "--mailconform-scenario imap.auth.not-connected --mailconform-seed 0",
    ])
    assert PASSWORD not in output(result)

    # The replay line is a working command: it reruns that one scenario, with the same verdict.
    argv = shlex.split(replay)
    assert argv[0] == "pytest"
    rerun, seen = run(project, *argv[1:])
    assert seen == {"imap.tls.no-starttls": ("FAIL", "failure")}, output(rerun)


def test_a_scenario_needing_an_undeclared_feature_is_skipped_as_unsupported(project):
    result, seen = run(project, "--mailconform-client-python", CARELESS, "--mailconform-features", "smtp", "-rs",
                       *scenario_args("imap.tls.no-starttls", "imap.tls.logindisabled"))
    assert seen == {"imap.tls.no-starttls": ("UNSUPPORTED", "skipped"),
                    "imap.tls.logindisabled": ("UNSUPPORTED", "skipped")}, output(result)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED [[]*[]] *: UNSUPPORTED: the client does not declare: imap"])


def test_the_password_is_hidden_even_where_the_client_spills_it(project):
    """tests/clients/leaky.py sends the password in an IMAP ID command and raises with it."""
    result, seen = run(project, "--mailconform-client-python", "tests.clients.leaky:sync",
                       "--mailconform-scenario", "imap.tls.logindisabled")
    assert seen == {"imap.tls.logindisabled": ("FAIL", "failure")}, output(result)
    text = output(result)
    assert "RuntimeError: giving up as alice@example.test with password ***" in text  # its output is shown
    assert '"note" "***")' in text  # and the wire around where it stopped
    assert PASSWORD not in text
    junit = max(project.path.glob("junit-*.xml"), key=lambda p: p.stat().st_mtime)
    assert PASSWORD not in junit.read_text()


# -- xdist -----------------------------------------------------------------------------------------

XDIST_VERDICTS = {
    **CARELESS_VERDICTS,
    "imap.auth.temporary-failure": ("NON-STRICT", "passed"),
    "imap.conn.greeting-bye": ("PASS", "passed"),
}


def test_xdist_gives_the_same_verdicts_as_a_serial_run(project):
    args = ["--mailconform-client-python", CARELESS, *scenario_args(*XDIST_VERDICTS)]
    serial, serial_seen = run(project, *args)
    parallel, parallel_seen = run(project, "-n", "2", "-v", *args)
    assert serial_seen == XDIST_VERDICTS, output(serial)
    assert parallel_seen == serial_seen, output(parallel)
    out = parallel.stdout.str()
    assert "[gw0]" in out and "[gw1]" in out  # both workers ran scenarios


# -- the ini option --------------------------------------------------------------------------------


def test_ini_option_names_the_client_like_the_command_line_option(project):
    # A client that exits 0 without syncing: logindisabled FAILs (nothing stored), no-starttls
    # is NON-STRICT (it sent no credential, but exit 0 SHOULD have been an error).
    do_nothing = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'tests/clients/exit_with.py'))} 0"
    expected = {"imap.tls.logindisabled": ("FAIL", "failure"), "imap.tls.no-starttls": ("NON-STRICT", "passed")}
    selection = scenario_args(*expected)

    _, by_option = run(project, "--mailconform-client", do_nothing, *selection)
    assert by_option == expected
    project.makeini(f"[pytest]\nmailconform_client = {do_nothing}\n")
    by_ini_result, by_ini = run(project, *selection)
    assert by_ini == expected, output(by_ini_result)
    by_ini_result.stdout.fnmatch_lines([f"replay: pytest --mailconform-client {shlex.quote(do_nothing)} "
                                        "--mailconform-scenario imap.tls.logindisabled --mailconform-seed 0"])
    # The command line wins over the ini file.
    _, overridden = run(project, "--mailconform-client", REFERENCE, *selection)
    assert overridden == {i: ("PASS", "passed") for i in expected}


# -- plain runs ------------------------------------------------------------------------------------


def test_plain_runs_collect_as_usual_and_load_no_engine(project):
    project.makepyfile(test_plain="def test_arithmetic():\n    assert 1 + 1 == 2\n")
    project.path.joinpath("data.toml").write_text("this is = [not a scenario\n")
    report = project.path / "modules.json"
    project.makeconftest(f"""
        import json, sys

        def pytest_unconfigure(config):
            engine = sorted(m for m in sys.modules if m == "fake_servers" or m.startswith("fake_servers.")
                            or m in ("harness.runner", "harness.scenario", "harness.run_command", "harness.cli")
                            or m.startswith(("harness.adapters", "harness.checks", "harness.reports")))
            plugin = sys.modules.get("harness.pytest_plugin")
            with open({str(report)!r}, "w") as f:
                json.dump({{"engine": engine, "registered": config.pluginmanager.has_plugin("mailconform"),
                           "plugin": getattr(plugin, "__file__", None)}}, f)
    """)
    result = project.runpytest_subprocess(*LEAN, timeout=TIMEOUT)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    loaded = json.loads(report.read_text())
    assert loaded["registered"] and Path(loaded["plugin"]) == ROOT / "harness" / "pytest_plugin.py"
    assert loaded["engine"] == []


# -- fixtures --------------------------------------------------------------------------------------


def test_mailconform_provider_is_started_with_the_default_account_and_stopped_after_the_test(project):
    project.makepyfile(test_provider="""
        import socket, ssl

        import imapclient
        import pytest

        SEEN = {}

        def test_uses_a_provider(mailconform_provider):
            provider = mailconform_provider()
            username, password = provider.first_account()
            assert username == "alice@example.test"
            client = imapclient.IMAPClient(provider.host, port=provider.imap_port, ssl=False, timeout=10)
            client.starttls(ssl.create_default_context(cafile=str(provider.ca_file)))
            client.login(username, password)
            assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 12
            client.logout()
            SEEN.update(host=provider.host, ports=[provider.imap_port, provider.imaps_port],
                        ca_file=provider.ca_file)

        def test_its_ports_refuse_connections_afterwards():
            assert len(SEEN["ports"]) == 2
            for port in SEEN["ports"]:
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((SEEN["host"], port), timeout=5).close()
            assert not SEEN["ca_file"].exists()  # its TLS material is gone too
    """)
    result = project.runpytest_subprocess(*LEAN, timeout=TIMEOUT)
    result.assert_outcomes(passed=2)


def test_mailconform_run_returns_the_verdict_a_client_earns(mailconform_run):
    by_path = mailconform_run(SCENARIO_DIR / "imap" / "tls" / "no-starttls.toml", python=CARELESS)
    assert (by_path.id, by_path.verdict) == ("imap.tls.no-starttls", Verdict.FAIL), by_path.reason
    assert "security" in by_path.tags
    assert by_path.replay == ("mailconform run --client-python tests.clients.careless:sync "
                              "--scenario imap.tls.no-starttls --seed 0")
    by_id = mailconform_run("imap.tls.logindisabled", python=CARELESS)
    assert by_id.verdict is Verdict.PASS, by_id.reason
    reference = mailconform_run("imap.tls.no-starttls")  # the bundled reference client by default
    assert reference.verdict is Verdict.PASS, reference.reason


# -- misconfiguration ------------------------------------------------------------------------------


def test_broken_and_duplicate_scenario_files_are_collection_errors(pytester):
    directory = pytester.mkdir("scenarios")
    shutil.copy(SCENARIO_DIR / "imap" / "tls" / "no-starttls.toml", directory / "a.toml")
    shutil.copy(SCENARIO_DIR / "imap" / "tls" / "no-starttls.toml", directory / "b.toml")
    directory.joinpath("c.toml").write_text('id = "x.y.broken"\ntitle = "no level"\n')
    result = collect(pytester, "--mailconform-client", "true",
                                          "--mailconform-scenarios-dir", "scenarios")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "*ERROR collecting*b.toml*",
        "*b.toml: id 'imap.tls.no-starttls' is already used by *a.toml",
        "*ERROR collecting*c.toml*",
        "*c.toml: missing 'level' (every scenario has *",
    ])
    assert "INTERNALERROR" not in output(result)


@pytest.mark.parametrize("args, message", [
    (["--mailconform-client-python", "no_such_module_here:sync"], "*no module named 'no_such_module_here'*"),
    (["--mailconform-client", "true", "--mailconform-features", "imapp"], "*unknown feature 'imapp'*"),
    (["--mailconform-client", "true", "--mailconform-client-python", CARELESS], "*exclude each other*"),
], ids=["missing-module", "unknown-feature", "two-clients"])
def test_a_bad_client_is_a_usage_error_before_any_scenario(pytester, args, message):
    result = collect(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_catalog_mode_with_paths_collects_scenario_files_not_other_toml(pytester):
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    pytester.path.joinpath("settings.toml").write_text("not = [a scenario\n")
    extra = pytester.mkdir("extra")
    shutil.copy(SCENARIO_DIR / "imap" / "tls" / "logindisabled.toml", extra / "one.toml")
    result = collect(pytester, "-q", "--mailconform-client", "true",
                                          ".", "extra/one.toml")
    assert result.ret == pytest.ExitCode.OK, output(result)
    collected = sorted(line for line in result.stdout.lines if "::" in line)
    assert collected == ["extra/one.toml::imap.tls.logindisabled", "test_mine.py::test_mine"]
