"""imap.tls.alert-spoofing and its check, alert_shown_before_tls (INFO: measured, never judged).

End to end through ``mailconform run``: the reference client discards what it received before
TLS and never prints a pre-TLS alert; a client that echoes every server line shows it. The
check's finer cases (an alert the server also sent over TLS, a link only, an alert shown
marked as untrusted, a python exception) are judged on wire logs built by hand.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fake_servers.wire import WireLog
from harness import checks
from harness.observation import Observation
from harness.outcome import Outcome
from harness.verdicts import Verdict, combine

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = "imap.tls.alert-spoofing"
ALERT = "Your password has expired, visit http://phish.example.test/renew to keep your mailbox"
ECHO_CLIENT = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'tests' / 'clients' / 'echo_server.py'))}"


def run_cli(tmp_path, *args: str) -> tuple[int, dict, str]:
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--scenario", SCENARIO, "--json", str(report),
                           "--html", str(tmp_path / "report.html"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc.returncode, json.loads(report.read_text()) if report.exists() else {}, proc.stderr


def alert_evidence(report: dict) -> str:
    (result,) = report["results"]
    assert result["id"] == SCENARIO
    check = next(c for c in result["checks"] if c["check"] == "alert_shown_before_tls")
    assert check["passed"] is None and check["level"] == "INFO"
    (evidence,) = check["evidence"]
    assert "[ALERT] " + ALERT in evidence["wire"] and "[injected]" in evidence["wire"]
    return evidence["observed"]


def test_reference_client_does_not_show_the_pre_tls_alert(tmp_path):
    code, report, err = run_cli(tmp_path)
    assert report["results"][0]["verdict"] == "INFO", err
    assert code == 0  # INFO never fails a run
    observed = alert_evidence(report)
    assert f"was sent {ALERT!r} before TLS" in observed and "its output does not repeat it" in observed


def test_a_client_that_echoes_the_server_shows_the_pre_tls_alert(tmp_path):
    code, report, err = run_cli(tmp_path, "--client", ECHO_CLIENT)
    assert report["results"][0]["verdict"] == "INFO", err
    assert code == 0
    observed = alert_evidence(report)
    assert "its output SHOWS the alert's text (not marked as untrusted)" in observed
    assert f"'server: * OK [ALERT] {ALERT}'" in observed


# -- the check on hand-made wire logs -----------------------------------------------------------------


def observation(tmp_path, responses: list[tuple[bool, str]], *outcomes: Outcome) -> Observation:
    """One IMAP connection in run 1 that received ``responses`` ((over TLS, line) pairs)."""
    wire = WireLog()
    conn = wire.open("imap", "imap", "127.0.0.1:40000")
    for tls, line in responses:
        status = line.split(" ", 2)[1] if line.startswith("* ") else None
        conn.add_response(time.monotonic(), tls, "untagged", None, status, "ALERT", line,
                          injected=not tls)
    conn.closed("closed")
    return Observation(scenario=SimpleNamespace(id=SCENARIO), wire=wire,
                       outcomes=list(outcomes) or [Outcome(1, 0, False, 0.1, "", "")], maildir=tmp_path / "Maildir",
                       outbox=tmp_path / "outbox", username="alice@example.test", password="secret-password")


def measure(obs: Observation, params: dict | None = None) -> list[str]:
    result = checks.run("alert_shown_before_tls", obs, "INFO", params or {})
    assert result.error is None, result.error
    assert result.passed is None and result.level == "INFO"
    assert combine("INFO", [result])[0] is Verdict.INFO
    return [e.observed for e in result.evidence]


def test_an_alert_the_server_also_sends_over_tls_is_not_counted(tmp_path):
    obs = observation(tmp_path, [(False, f"* OK [ALERT] {ALERT}"), (True, f"* OK [ALERT] {ALERT}")],
                      Outcome(1, 0, False, 0.1, f"alert: {ALERT}\n", ""))
    assert measure(obs) == ["run 1: no [ALERT] reached the client before TLS; nothing to measure"]


def test_showing_only_the_link_is_reported(tmp_path):
    obs = observation(tmp_path, [(False, f"* OK [ALERT] {ALERT}")],
                      Outcome(1, 0, False, 0.1, "", "notice: go to http://phish.example.test/renew now\n"))
    (observed,) = measure(obs)
    assert "SHOWS the alert's link (not marked as untrusted): 'notice: go to http://phish" in observed


def test_an_alert_shown_as_untrusted_is_told_apart(tmp_path):
    obs = observation(tmp_path, [(False, f"* NO [ALERT] {ALERT}")],
                      Outcome(1, 0, False, 0.1, "", f"warning: ignoring plaintext alert before TLS: {ALERT}\n"))
    (observed,) = measure(obs)
    assert "SHOWS the alert's text (marked as untrusted)" in observed


def test_the_alert_text_itself_does_not_mark_it_untrusted(tmp_path):
    text = "untrusted device detected, verify at https://phish.example.test"
    obs = observation(tmp_path, [(False, f"* OK [ALERT] {text}")], Outcome(1, 0, False, 0.1, f"ALERT: {text}\n", ""))
    (observed,) = measure(obs)
    assert "(not marked as untrusted)" in observed


def test_a_python_clients_exception_counts_as_output_and_runs_are_separate(tmp_path):
    obs = observation(tmp_path, [(False, f"* OK [ALERT] {ALERT}")],
                      Outcome(1, 1, False, 0.1, "", "", error=f"RuntimeError: server says {ALERT}"),
                      Outcome(2, 0, False, 0.1, "", ""))
    first, second = measure(obs)
    assert "SHOWS the alert's text" in first
    assert second == "run 2: no [ALERT] reached the client before TLS; nothing to measure"
    (only_second,) = measure(obs, {"run": 2})
    assert only_second == second


@pytest.mark.parametrize(("params", "says"), [
    ({"runs": 1}, "did you mean 'run'?"),
    ({"run": "1"}, "'run' must be an integer"),
    ({"run": -1}, "at least 0"),
])
def test_the_check_is_registered_strictly(params, says):
    spec = checks.CHECKS["alert_shown_before_tls"]
    assert spec.doc and list(spec.params) == ["run"]
    checks.validate("alert_shown_before_tls", {"run": 1})
    with pytest.raises(ValueError, match=re.escape(says)):
        checks.validate("alert_shown_before_tls", params)
