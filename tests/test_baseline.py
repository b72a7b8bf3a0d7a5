"""Baseline files: loading (and its errors), judging results against one, making one from a run."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from harness.baseline import Baseline, BaselineError
from harness.reports import ClientInfo, RunReport, json_report, junit
from harness.verdicts import ScenarioResult, Verdict, apply_baseline

GOOD = """\
# mailconform baseline for: mbsync
# known since 1.4.2

imap.tls.caps-not-refreshed   # FAIL: capabilities re-read after STARTTLS
imap.idle.timeout-29min
   smtp.auth.too-many-attempts  #   NON-STRICT: retried at once   \n\
# a comment between entries
"""


def result(scenario_id: str, verdict: Verdict, reason: str = "") -> ScenarioResult:
    return ScenarioResult(id=scenario_id, title="t", level="MUST", verdict=verdict, reason=reason)


def write(tmp_path, text: str | bytes, name: str = "baseline.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_load(tmp_path):
    baseline = Baseline.load(write(tmp_path, GOOD))
    assert list(baseline) == ["imap.idle.timeout-29min", "imap.tls.caps-not-refreshed", "smtp.auth.too-many-attempts"]
    assert len(baseline) == 3
    assert baseline.expects_failure("imap.tls.caps-not-refreshed")
    assert "imap.idle.timeout-29min" in baseline
    assert not baseline.expects_failure("imap.tls.no-starttls")
    assert not baseline.expects_failure("imap.tls")  # ids match exactly, not by prefix
    assert baseline.notes["smtp.auth.too-many-attempts"] == "NON-STRICT: retried at once"
    assert baseline.notes["imap.idle.timeout-29min"] == ""
    assert baseline.header == ["mailconform baseline for: mbsync", "known since 1.4.2"]
    assert baseline.path == tmp_path / "baseline.txt"


def test_load_accepts_crlf_bom_and_an_empty_file(tmp_path):
    crlf = Baseline.load(write(tmp_path, "\ufeffimap.a.b\r\nimap.a.c # x\r\n"))
    assert list(crlf) == ["imap.a.b", "imap.a.c"]
    assert len(Baseline.load(write(tmp_path, "", "empty.txt"))) == 0


@pytest.mark.parametrize("text, line, message", [
    ("imap.a.b\nimap.a.c FAIL\n", 2, "one scenario id per line, not 2 words: 'imap.a.c FAIL'"),
    ('ids = ["imap.a.b"]\n', 1, "one scenario id per line, not 3 words"),
    ("\n\n[xfail]\n", 3, r"not a scenario id: '\[xfail\]'.*plain text, one id per line"),
    ("imap.a.b\n'imap.a.c'\n", 2, "not a scenario id"),
    ("imap.a.b\n# c\nimap.a.b  # again\n", 3, "imap.a.b is already listed on line 1"),
])
def test_bad_syntax_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(BaselineError, match=message) as info:
        Baseline.load(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_bad_encoding_and_missing_file(tmp_path):
    path = write(tmp_path, b"imap.a.b\nimap.a.c\n# caf\xe9\n")
    with pytest.raises(BaselineError, match=r":3: not UTF-8 text"):
        Baseline.load(path)
    with pytest.raises(BaselineError, match="cannot read the baseline") as info:
        Baseline.load(tmp_path / "nope.txt")
    assert info.value.line is None


def test_apply_follows_apply_baseline_for_every_verdict():
    baseline = Baseline.parse("imap.a.listed\n")
    for verdict in Verdict:
        for scenario_id, listed in (("imap.a.listed", True), ("imap.a.other", False)):
            judged = baseline.apply(result(scenario_id, verdict, "why"))
            assert judged.verdict is apply_baseline(verdict, listed)


def test_apply_maps_failures_to_xfail_and_passes_to_xpass(tmp_path):
    baseline = Baseline.load(write(tmp_path, "imap.a.fail\nimap.a.should\nimap.a.fixed\nimap.a.broken\n"))
    fail = baseline.apply(result("imap.a.fail", Verdict.FAIL, "LOGIN before TLS"))
    assert (fail.verdict, fail.reason) == (Verdict.XFAIL, "LOGIN before TLS")
    assert baseline.apply(result("imap.a.should", Verdict.NON_STRICT)).verdict is Verdict.XFAIL
    fixed = baseline.apply(result("imap.a.fixed", Verdict.PASS))
    assert fixed.verdict is Verdict.XPASS and fixed.verdict.fails_run
    assert "remove it from the baseline" in fixed.reason and str(tmp_path) in fixed.reason
    assert baseline.apply(result("imap.a.broken", Verdict.ERROR)).verdict is Verdict.ERROR
    untouched = result("imap.a.new", Verdict.FAIL)
    assert baseline.apply(untouched) is untouched
    assert [r.verdict for r in baseline.apply_all([untouched, result("imap.a.fail", Verdict.FAIL)])] == [
        Verdict.FAIL, Verdict.XFAIL]


def test_xfail_and_xpass_reach_the_reports(tmp_path):
    baseline = Baseline.parse("imap.a.fail\nimap.a.fixed\n")
    report = RunReport(results=baseline.apply_all([
        result("imap.a.fail", Verdict.FAIL, "still broken"), result("imap.a.fixed", Verdict.PASS)]))
    assert report.summary()["XFAIL"] == 1 and report.summary()["XPASS"] == 1
    assert report.failed  # the XPASS
    cases = {c.get("name"): c for c in ET.parse(junit.write(report, tmp_path / "j.xml")).getroot().iter("testcase")}
    assert cases["imap.a.fail"].find("skipped").get("message") == "expected failure (baseline)"
    assert cases["imap.a.fixed"].find("failure") is not None


def _run() -> RunReport:
    return RunReport(
        results=[
            result("smtp.auth.invalid", Verdict.FAIL, "535 retried:\nexpected 1 retry; observed 5"),
            result("imap.tls.caps", Verdict.NON_STRICT, "capabilities not refreshed"),
            result("imap.auth.known", Verdict.XFAIL, "still failing"),
            result("imap.auth.fixed", Verdict.XPASS, "passed"),
            *(result(f"imap.other.{v.name.lower()}", v) for v in
              (Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED, Verdict.SKIPPED, Verdict.ERROR)),
        ],
        client=ClientInfo(description="mbsync -a"), started_at="2024-05-01T10:00:00Z",
        command="mailconform run --client 'mbsync -a'",
    )


def test_from_report_lists_failures_sorted_with_reasons(tmp_path):
    baseline = Baseline.from_report(_run())
    assert list(baseline) == ["imap.auth.known", "imap.tls.caps", "smtp.auth.invalid"]
    path = baseline.write(tmp_path / "sub" / "baseline.txt")
    text = path.read_text("utf-8")
    ids = [line.split()[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert ids == sorted(ids) == list(baseline)
    assert "smtp.auth.invalid  # FAIL: 535 retried: expected 1 retry; observed 5" in text
    assert "imap.tls.caps      # NON-STRICT: capabilities not refreshed" in text
    assert text.startswith("# mailconform baseline for: mbsync -a\n# from the run of 2024-05-01T10:00:00Z")
    again = Baseline.load(path)
    assert again.notes == baseline.notes and again.header == baseline.header
    assert again.render() == text  # rewriting is stable


def test_from_a_saved_json_report(tmp_path):
    path = json_report.write(_run(), tmp_path / "run.json")
    assert list(Baseline.from_report(json_report.read(path))) == list(Baseline.from_report(_run()))


def test_updated_drops_fixed_adds_new_keeps_unrun(tmp_path):
    old = Baseline.load(write(tmp_path, "# mine\nimap.auth.known  # kept note\nimap.auth.fixed\nimap.not.run  # n\n"))
    new = old.updated(_run())
    assert list(new) == ["imap.auth.known", "imap.not.run", "imap.tls.caps", "smtp.auth.invalid"]
    assert new.notes["imap.auth.known"] == "kept note"
    assert new.header == ["mine"]
    assert new.write() == old.path
    assert list(Baseline.load(old.path)) == list(new)


def test_write_needs_a_path():
    with pytest.raises(ValueError, match="no path"):
        Baseline.parse("imap.a.b").write()
