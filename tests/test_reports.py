"""The report writers: JSON (schema, round trip), JUnit XML (mapping, escaping), HTML (escaping,
layout), and atomic writing. Results are built by hand, one per verdict."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.reports import (
    ClientInfo, ReportError, RunReport, ToolInfo, area, clean_text, excerpt, group_by_area, utc_timestamp,
)
from harness.reports import atomic, html, json_report, junit
from harness.verdicts import CheckResult, Evidence, ScenarioResult, Verdict
from tests.schema_subset import KEYWORDS, errors, keywords

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "report-schema.json"

HOSTILE = (
    "S: * OK <script>alert('x')</script> ]]> & &amp; \"quoted\"\r\n"
    "S: NUL[\x00] BEL[\x07] ESC[\x1b[31m] DEL[\x7f] C1[\x9b] RLO[\u202e]\r\n"
    + b"S: bad utf-8 [\xff\xfe]\r\n".decode("utf-8", "surrogateescape")
    + "S: lone surrogate [\ud800]\r\n"
)
ATTRIBUTE_BREAKER = "\"'><img src=x onerror=alert(1)>"


def evidence(rule: str, run: int | None = 1, wire: str = "C: a001 LOGIN alice ***\r\n") -> Evidence:
    return Evidence(rule=rule, expected="no LOGIN before TLS", observed="LOGIN sent in plaintext", wire=wire, run=run)


def result(scenario_id: str, verdict: Verdict, *, level: str = "MUST", tags: list[str] | None = None,
           reason: str = "", passed: bool | None = True, transcript: str = "", error: str | None = None,
           security: bool = False) -> ScenarioResult:
    check_level = "INFO" if level == "INFO" else level
    return ScenarioResult(
        id=scenario_id, title=f"title of {scenario_id}", level=level, verdict=verdict,
        tags=list(tags or []),
        checks=[CheckResult(check="no_credentials_before_tls", passed=passed, level=check_level,
                            evidence=[evidence(f"rule of {scenario_id}")], security=security, error=error)],
        reason=reason, duration=0.25, runs=1,
        replay=f"mailconform run --scenario {scenario_id} --seed 7",
        source="RFC 3501 §6.2.1", requirement="a client sends no credential before TLS",
        transcript=transcript or f"S: * OK ready\r\nC: a001 CAPABILITY\r\n",
        client_output="client: done\n",
    )


def all_verdicts(transcript: str = "") -> list[ScenarioResult]:
    """One result per verdict, across three areas, two personas."""
    return [
        result("imap.tls.pass", Verdict.PASS, tags=["persona:icloud"], transcript=transcript),
        result("imap.tls.non-strict", Verdict.NON_STRICT, level="SHOULD", passed=False,
               reason="IDLE renewed: expected before 29 min; observed after 31 min", tags=["persona:gmail"]),
        result("imap.tls.fail", Verdict.FAIL, passed=False, reason="credential before TLS: expected none; observed LOGIN",
               tags=["security", "persona:icloud"], transcript=transcript, security=True),
        result("imap.auth.info", Verdict.INFO, level="INFO", passed=None, reason="measured", tags=["persona:icloud"]),
        result("imap.auth.unsupported", Verdict.UNSUPPORTED, reason="needs feature oauth2"),
        result("smtp.tls.skipped", Verdict.SKIPPED, reason="deselected"),
        result("smtp.tls.error", Verdict.ERROR, passed=None, error="wire log missing",
               reason="no_credentials_before_tls: wire log missing", tags=["persona:gmail"]),
        result("smtp.auth.xfail", Verdict.XFAIL, passed=False, reason="535 retried 5 times", tags=["persona:icloud"]),
        result("smtp.auth.xpass", Verdict.XPASS, reason="passed, but the baseline lists it", tags=["persona:gmail"]),
    ]


def make_report(results: list[ScenarioResult] | None = None, **overrides) -> RunReport:
    fields = dict(
        results=all_verdicts() if results is None else results,
        client=ClientInfo(description="mbsync -c {config} -a", features=["imap", "idle"]),
        started_at="2024-05-01T10:00:00Z", finished_at="2024-05-01T10:03:20Z", seed=7,
        command="mailconform run --client 'mbsync -c {config} -a' --seed 7",
        tool=ToolInfo(name="mailconform", version="0.1.0"),
    )
    fields.update(overrides)
    return RunReport(**fields)


# -- the report value ----------------------------------------------------------------------

def test_summary_counts_every_verdict_once():
    summary = make_report().summary()
    assert list(summary) == [v.value for v in Verdict]
    assert set(summary.values()) == {1}
    assert make_report(results=[]).summary() == {v.value: 0 for v in Verdict}


def test_certifications_count_pass_xfail_info_as_passed():
    certs = make_report().certifications()
    # icloud: PASS, FAIL, INFO, XFAIL -> 3/4; gmail: NON-STRICT, ERROR, XPASS -> 0/3
    assert certs == {"gmail": "0/3", "icloud": "3/4"}


def test_failed_is_true_for_fail_error_xpass_only():
    assert make_report().failed
    for verdict in Verdict:
        report = make_report(results=[result("imap.x.y", verdict)])
        assert report.failed is verdict.fails_run


def test_timestamps_must_be_utc():
    aware = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert make_report(started_at=aware).started_at == "2024-05-01T10:00:00Z"
    assert make_report(started_at="2024-05-01T10:00:00+00:00").started_at == "2024-05-01T10:00:00Z"
    with pytest.raises(ValueError, match="UTC"):
        make_report(started_at="2024-05-01T12:00:00+02:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        make_report(finished_at="yesterday")
    with pytest.raises(ValueError, match="naive"):
        utc_timestamp(dt.datetime(2024, 5, 1))


def test_area_is_the_id_up_to_the_second_dot():
    assert area("imap.tls.cert-expired") == "imap.tls"
    assert area("imap.tls") == "imap.tls"
    assert area("srv") == "srv"
    assert list(group_by_area(all_verdicts())) == ["imap.tls", "imap.auth", "smtp.tls", "smtp.auth"]


def test_clean_text_replaces_what_utf8_cannot_carry():
    assert clean_text(b"ok \xff") == "ok \ufffd"
    cleaned = clean_text(HOSTILE)
    cleaned.encode("utf-8")  # does not raise
    assert "\ufffd" in cleaned and "\x00" in cleaned and "<script>" in cleaned


def test_excerpt_keeps_start_and_end():
    text = "A" * 1000 + "B" * 1000
    short = excerpt(text, 300)
    assert short.startswith("A" * 200) and short.endswith("B" * 100)
    assert "1700 characters omitted" in short
    assert excerpt("short", 300) == "short"


# -- JSON ----------------------------------------------------------------------------------

TOP_KEYS = ["schema_version", "tool", "client", "started_at", "finished_at", "seed", "command",
            "summary", "certifications", "results"]
RESULT_KEYS = ["id", "title", "verdict", "level", "tags", "reason", "duration", "runs", "replay", "source",
               "requirement", "checks", "evidence", "transcript", "client_output"]


def test_json_has_the_documented_shape(tmp_path):
    path = json_report.write(make_report(), tmp_path / "out" / "report.json")
    data = json.loads(path.read_text("utf-8"))
    assert list(data) == TOP_KEYS
    assert data["schema_version"] == 1
    assert data["tool"] == {"name": "mailconform", "version": "0.1.0"}
    assert data["client"] == {"description": "mbsync -c {config} -a", "features": ["imap", "idle"]}
    assert data["seed"] == 7
    assert data["certifications"] == {"gmail": "0/3", "icloud": "3/4"}
    assert all(list(r) == RESULT_KEYS for r in data["results"])
    assert [r["verdict"] for r in data["results"]] == [
        "PASS", "NON-STRICT", "FAIL", "INFO", "UNSUPPORTED", "SKIPPED", "ERROR", "XFAIL", "XPASS"]
    fail = data["results"][2]
    assert fail["evidence"] == [{"rule": "rule of imap.tls.fail", "expected": "no LOGIN before TLS",
                                 "observed": "LOGIN sent in plaintext", "wire": "C: a001 LOGIN alice ***\r\n", "run": 1}]
    assert fail["checks"][0]["security"] is True and fail["checks"][0]["passed"] is False


def test_json_round_trip(tmp_path):
    report = make_report()
    again = json_report.read(json_report.write(report, tmp_path / "r.json"))
    assert again == report
    assert again.results[0].verdict is Verdict.PASS
    assert json_report.dumps(again) == json_report.dumps(report)


def test_json_carries_hostile_text_as_valid_unicode(tmp_path):
    path = json_report.write(make_report(results=all_verdicts(HOSTILE)), tmp_path / "r.json")
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict: invalid bytes and lone surrogates were replaced
    transcript = json.loads(raw)["results"][0]["transcript"]
    assert "\x00" in transcript and "<script>" in transcript and "]]>" in transcript
    assert transcript.count("\ufffd") == 3  # two invalid bytes and one lone surrogate
    assert json_report.read(path).results[0].transcript == transcript


def test_json_non_finite_duration_is_null(tmp_path):
    broken = result("imap.x.nan", Verdict.PASS)
    broken.duration = float("nan")
    data = json.loads(json_report.dumps(make_report(results=[broken])))
    assert data["results"][0]["duration"] is None
    assert json_report.from_dict(data).results[0].duration == 0.0


def test_read_accepts_the_contract_minimum(tmp_path):
    minimal = {"schema_version": 1, "client": {}, "results": [
        {"id": "imap.tls.x", "verdict": "NON-STRICT", "level": "SHOULD", "tags": [],
         "evidence": [{"rule": "r", "expected": "e", "observed": "o"}]}]}
    path = tmp_path / "min.json"
    path.write_text(json.dumps(minimal))
    report = json_report.read(path)
    (only,) = report.results
    assert only.verdict is Verdict.NON_STRICT
    assert [e.rule for e in only.evidence] == ["r"]


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not a JSON report"),
    (b"[]", "not a JSON object"),
    (b'{"schema_version": 2, "results": []}', "newer than this mailconform reads"),
    (b'{"schema_version": 1}', "results is missing"),
    (b'{"schema_version": 1, "results": [{"id": "imap.a.b", "verdict": "NONSTRICT", "level": "MUST"}]}',
     r"results\[0\] \('imap.a.b'\): unknown verdict 'NONSTRICT'"),
    (b'{"schema_version": 1, "results": [{"id": "imap.a.b", "verdict": "PASS", "level": "MAY"}]}',
     "level must be one of MUST, SHOULD, INFO"),
    (b'{"schema_version": 1, "results": [{"id": "imap.a.b", "verdict": "PASS", "level": "MUST", "tags": "x"}]}',
     "tags must be a list of strings"),
    (b'{"schema_version": 1, "started_at": "noon", "results": []}', "started_at is not ISO 8601"),
])
def test_read_errors_name_the_file_and_the_place(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ReportError, match=message) as info:
        json_report.read(path)
    assert str(info.value).startswith(str(path))


# -- JSON Schema ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text("utf-8"))


def test_schema_uses_only_keywords_the_test_validator_checks(schema):
    assert set(keywords(schema)) <= KEYWORDS


def test_schema_spells_the_verdicts_and_levels_of_the_code(schema):
    assert schema["$defs"]["verdict"]["enum"] == [v.value for v in Verdict]
    assert schema["properties"]["summary"]["required"] == [v.value for v in Verdict]
    assert schema["$defs"]["result"]["required"] == RESULT_KEYS
    assert schema["required"] == TOP_KEYS


def test_written_reports_conform_to_the_schema(tmp_path, schema):
    for report in (make_report(), make_report(results=all_verdicts(HOSTILE), seed=None, started_at="",
                                              finished_at=""), make_report(results=[])):
        data = json.loads(json_report.write(report, tmp_path / "r.json").read_text("utf-8"))
        assert errors(data, schema, schema) == []


def test_the_schema_validator_rejects_bad_reports(schema):
    good = json.loads(json_report.dumps(make_report()))
    assert errors(good, schema, schema) == []
    bad = json.loads(json_report.dumps(make_report()))
    bad["results"][1]["verdict"] = "NONSTRICT"
    del bad["results"][2]["evidence"][0]["observed"]
    bad["summary"]["MAYBE"] = 1
    bad["started_at"] = "2024-05-01T12:00:00+02:00"
    bad["results"][0]["runs"] = -1
    found = errors(bad, schema, schema)
    assert len(found) == 5, found


# -- JUnit XML -----------------------------------------------------------------------------

def _junit(tmp_path, report: RunReport) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.parse(junit.write(report, tmp_path / "ci" / "junit.xml")).getroot()
    suite = root.find("testsuite")
    return suite, {case.get("name"): case for case in suite.iter("testcase")}


def test_junit_counts_and_cases(tmp_path):
    suite, cases = _junit(tmp_path, make_report())
    assert suite.get("name") == "mailconform"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("9", "2", "1", "3")
    assert suite.get("time") == "2.250"
    assert suite.get("timestamp") == "2024-05-01T10:00:00Z"
    assert len(cases) == 9
    assert cases["imap.tls.fail"].get("classname") == "imap.tls"
    assert cases["smtp.auth.xfail"].get("classname") == "smtp.auth"
    assert cases["imap.tls.pass"].get("time") == "0.250"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["seed"] == "7" and props["certification:icloud"] == "3/4"


def _outcome(case: ET.Element) -> str | None:
    tags = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
    assert len(tags) <= 1
    return tags[0] if tags else None


def test_junit_verdict_mapping(tmp_path):
    _, cases = _junit(tmp_path, make_report())
    assert {name: _outcome(case) for name, case in cases.items()} == {
        "imap.tls.pass": None,
        "imap.tls.non-strict": None,  # a SHOULD missed does not fail CI
        "imap.tls.fail": "failure",
        "imap.auth.info": None,
        "imap.auth.unsupported": "skipped",
        "smtp.tls.skipped": "skipped",
        "smtp.tls.error": "error",
        "smtp.auth.xfail": "skipped",
        "smtp.auth.xpass": "failure",
    }
    failure = cases["imap.tls.fail"].find("failure")
    assert failure.get("message") == "credential before TLS: expected none; observed LOGIN"
    assert failure.get("type") == "FAIL"
    assert "expected: no LOGIN before TLS" in failure.text and "observed: LOGIN sent in plaintext" in failure.text
    assert "mailconform run --scenario imap.tls.fail" in failure.text
    assert cases["smtp.auth.xpass"].find("failure").get("message").startswith("XPASS: passed although the baseline")
    assert cases["smtp.auth.xfail"].find("skipped").get("message") == "expected failure (baseline)"
    assert cases["imap.auth.unsupported"].find("skipped").get("message") == "UNSUPPORTED: needs feature oauth2"
    assert cases["smtp.tls.error"].find("error").get("message") == "no_credentials_before_tls: wire log missing"
    note = cases["imap.tls.non-strict"].find("system-out").text
    assert note.startswith("NON-STRICT") and "IDLE renewed" in note
    assert cases["imap.tls.pass"].find("system-err").text == "client: done\n"


def test_junit_survives_hostile_transcripts(tmp_path):
    hostile_id = result("imap.tls.hostile", Verdict.FAIL, passed=False, reason=ATTRIBUTE_BREAKER + "\x00\x1b",
                        transcript=HOSTILE)
    report = make_report(results=all_verdicts(HOSTILE) + [hostile_id])
    raw = junit.write(report, tmp_path / "j.xml").read_bytes()
    raw.decode("utf-8")
    assert b"\x00" not in raw and b"\x1b" not in raw and b"\x07" not in raw
    _, cases = _junit(tmp_path, report)
    out = cases["imap.tls.fail"].find("system-out").text
    assert "<script>alert('x')</script>" in out and "]]>" in out and '"quoted"' in out
    assert "NUL[]" in out and "BEL[]" in out and "\ufffd\ufffd" in out and "\u202e" in out
    assert cases["imap.tls.hostile"].find("failure").get("message") == ATTRIBUTE_BREAKER


def test_junit_strips_only_what_xml_forbids():
    text = "tab\tnl\ncr\r ok é 𝄞 \ufffe\uffff\x0b\x0c\x00"
    assert junit.xml_text(text) == "tab\tnl\ncr\r ok é 𝄞 "


def test_junit_system_out_is_an_excerpt(tmp_path):
    long = result("imap.big.sync", Verdict.PASS, transcript="S: * 1 FETCH\r\n" * 20000)
    _, cases = _junit(tmp_path, make_report(results=[long]))
    out = cases["imap.big.sync"].find("system-out").text
    assert len(out) < junit.TRANSCRIPT_LIMIT + 200 and "characters omitted" in out


# -- HTML ----------------------------------------------------------------------------------

class Page(HTMLParser):
    """What a browser would build: elements with attributes, and the text they hold."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def tags(self, name: str) -> list[dict]:
        return [attrs for tag, attrs in self.elements if tag == name]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def _html(tmp_path, report: RunReport) -> tuple[str, Page]:
    markup = html.write(report, tmp_path / "site" / "report.html").read_text("utf-8")
    return markup, Page(markup)


def test_html_is_self_contained(tmp_path):
    markup, page = _html(tmp_path, make_report(results=all_verdicts(HOSTILE)))
    assert page.tags("script") == [] and page.tags("link") == [] and page.tags("img") == []
    assert not any("src" in attrs for _, attrs in page.elements)
    assert all(a["href"].startswith("#") for a in page.tags("a"))
    assert len(page.tags("style")) == 1


def test_html_header_and_table(tmp_path):
    _, page = _html(tmp_path, make_report())
    text = page.all_text
    for needle in ("mbsync -c {config} -a", "imap, idle", "2024-05-01T10:00:00Z", "took 200 s",
                   "mailconform run --client 'mbsync -c {config} -a' --seed 7", "icloud", "3/4", "0/3",
                   "The run fails"):
        assert needle in text
    rows = page.tags("details")
    assert [r["id"] for r in rows] == ["s-" + r.id for r in all_verdicts()]
    assert [r["class"] for r in rows][:3] == ["row v-PASS", "row v-NON_STRICT", "row v-FAIL"]
    sections = [t for t, _ in page.elements if t in ("section", "h2")]
    assert sections.count("section") == 4
    for verdict in Verdict:  # badges and legend
        assert f"badge v-{verdict.name}" in {a.get("class") for a in page.tags("span")}
    assert "a MUST was violated; fails the run" in text
    # the problems list links FAIL, ERROR and XPASS rows
    assert [a["href"] for a in page.tags("a")] == ["#s-imap.tls.fail", "#s-smtp.tls.error", "#s-smtp.auth.xpass"]


def test_html_row_details(tmp_path):
    _, page = _html(tmp_path, make_report())
    text = page.all_text
    for needle in ("a client sends no credential before TLS", "RFC 3501 §6.2.1", "rule of imap.tls.fail",
                   "no LOGIN before TLS", "LOGIN sent in plaintext", "C: a001 LOGIN alice ***", "client: done",
                   "mailconform run --scenario imap.tls.fail --seed 7", "no_credentials_before_tls", "security"):
        assert needle in text


def test_html_escapes_everything_hostile(tmp_path):
    hostile = result(ATTRIBUTE_BREAKER, Verdict.FAIL, passed=False, reason=ATTRIBUTE_BREAKER, transcript=HOSTILE)
    hostile.title = "</summary></details><script>alert(2)</script>"
    hostile.tags = [ATTRIBUTE_BREAKER]
    hostile.checks[0].evidence[0].observed = "<b onclick=x>"
    markup, page = _html(tmp_path, make_report(results=all_verdicts(HOSTILE) + [hostile]))
    assert page.tags("script") == [] and page.tags("img") == [] and page.tags("b") == [
        a for a in page.tags("b") if not a.get("onclick")]
    assert not any(k.startswith("on") for _, attrs in page.elements for k in attrs)
    assert len(page.tags("details")) == 10  # the hostile title closed nothing
    text = page.all_text
    assert "<script>alert('x')</script>" in text and "]]>" in text and ATTRIBUTE_BREAKER in text
    # control and bidi characters are shown, not obeyed
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202e]", markup)
    assert "NUL[\\x00]" in text and "BEL[\\x07]" in text and "ESC[\\x1b[31m]" in text
    assert "DEL[\\x7f]" in text and "C1[\\x9b]" in text and "RLO[<U+202E>]" in text
    assert markup.count('<span class="ctl"') == 3 * 6  # three results carry the hostile transcript
    assert "[\ufffd\ufffd]" in text and "[\ufffd]" in text
    markup.encode("utf-8")


def test_html_transcript_is_an_excerpt(tmp_path):
    long = result("imap.big.sync", Verdict.PASS, transcript="S: * 1 FETCH\r\n" * 40000)
    markup, _ = _html(tmp_path, make_report(results=[long]))
    assert "characters omitted" in markup and len(markup) < html.TRANSCRIPT_LIMIT + 30000


def test_html_without_personas_or_problems(tmp_path):
    _, page = _html(tmp_path, make_report(results=[result("imap.tls.pass", Verdict.PASS)]))
    assert "Persona certifications" not in page.all_text
    assert page.tags("nav") == [] and "The run passes" in page.all_text


# -- atomic writing ------------------------------------------------------------------------

def _leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def test_atomic_write_creates_parents_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "a" / "b" / "report.bin"
    assert atomic.write_bytes(target, b"new") == target
    assert target.read_bytes() == b"new"
    assert _leftovers(target.parent, "report.bin") == []


def test_atomic_write_that_fails_midway_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_bytes(b"old complete report")

    def half_then_fail(fd, data):
        os.write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_write_all", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        json_report.write(make_report(), target)
    assert target.read_bytes() == b"old complete report"
    assert _leftovers(tmp_path, "report.json") == []


def test_atomic_write_that_fails_to_sync_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "junit.xml"
    target.write_bytes(b"<old/>")

    def no_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", no_fsync)
    with pytest.raises(OSError, match="Input/output"):
        junit.write(make_report(), target)
    monkeypatch.undo()
    assert target.read_bytes() == b"<old/>"
    assert _leftovers(tmp_path, "junit.xml") == []


def test_a_report_that_cannot_be_rendered_leaves_the_old_file(tmp_path):
    target = tmp_path / "report.html"
    target.write_bytes(b"old")
    broken = make_report()
    broken.results.append("not a result")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        html.write(broken, target)
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, "report.html") == []


def test_atomic_write_keeps_an_existing_mode_and_honours_the_umask(tmp_path):
    existing = tmp_path / "shared.json"
    existing.write_bytes(b"x")
    existing.chmod(0o640)
    atomic.write_bytes(existing, b"y")
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = atomic.write_bytes(tmp_path / "fresh.json", b"z")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_every_writer_creates_its_directory(tmp_path):
    report = make_report()
    for writer, name in ((json_report.write, "r.json"), (junit.write, "r.xml"), (html.write, "r.html")):
        path = writer(report, tmp_path / "deep" / name.split(".")[1] / name)
        assert path.is_file() and path.stat().st_size > 0
