"""JUnit XML, for CI systems that show test results (Jenkins, GitLab, GitHub annotations).

Mapping (one ``<testcase>`` per scenario, ``classname`` = area, ``name`` = scenario id):

==============  ==============================================================
PASS, INFO      passed
NON-STRICT      passed, with a ``NON-STRICT`` note in ``<system-out>``: only MUST
                violations fail a CI job, as only they fail ``mailconform run``
FAIL, XPASS     ``<failure>``; the message is the reason, the text the evidence
ERROR           ``<error>``
UNSUPPORTED,    ``<skipped>`` with the verdict and reason as message
SKIPPED
XFAIL           ``<skipped message="expected failure (baseline)">``
==============  ==============================================================

``<system-out>`` holds the wire transcript (an excerpt: CI pages choke on megabytes),
``<system-err>`` the client's output. Characters XML 1.0 cannot carry are removed.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.verdicts import ScenarioResult, Verdict

from . import RunReport, area, clean_text, excerpt, one_line
from .atomic import write_bytes

SUITE_NAME = "mailconform"
XFAIL_MESSAGE = "expected failure (baseline)"
TRANSCRIPT_LIMIT = 64 * 1024
OUTPUT_LIMIT = 16 * 1024

FAILURES = frozenset({Verdict.FAIL, Verdict.XPASS})
ERRORS = frozenset({Verdict.ERROR})
SKIPS = frozenset({Verdict.UNSUPPORTED, Verdict.SKIPPED, Verdict.XFAIL})

# XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str | bytes) -> str:
    """Text an XML 1.0 document can hold: valid Unicode, forbidden characters removed."""
    return _NOT_XML.sub("", clean_text(value))


def build(report: RunReport) -> ET.Element:
    counts = _counts(report.results)
    root = ET.Element("testsuites", {k: str(v) for k, v in counts.items()})
    root.set("name", SUITE_NAME)
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, **{k: str(v) for k, v in counts.items()}})
    if report.started_at:
        suite.set("timestamp", report.started_at)
    _properties(suite, report)
    for result in report.results:
        suite.append(_testcase(result))
    return root


def _counts(results: list[ScenarioResult]) -> dict[str, object]:
    verdicts = [Verdict(r.verdict) for r in results]
    return {
        "tests": len(verdicts),
        "failures": sum(v in FAILURES for v in verdicts),
        "errors": sum(v in ERRORS for v in verdicts),
        "skipped": sum(v in SKIPS for v in verdicts),
        "time": f"{sum(r.duration for r in results):.3f}",
    }


def _properties(suite: ET.Element, report: RunReport) -> None:
    values = {
        "tool": f"{report.tool.name} {report.tool.version}",
        "client": report.client.description,
        "features": ",".join(report.client.features),
        "seed": "" if report.seed is None else str(report.seed),
        "command": report.command,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
    }
    values.update({f"certification:{k}": v for k, v in report.certifications().items()})
    props = ET.SubElement(suite, "properties")
    for name, value in values.items():
        ET.SubElement(props, "property", name=xml_text(name), value=xml_text(value))


def _testcase(result: ScenarioResult) -> ET.Element:
    verdict = Verdict(result.verdict)
    case = ET.Element("testcase", {
        "classname": xml_text(area(result.id)),
        "name": xml_text(result.id),
        "time": f"{result.duration:.3f}",
    })
    reason = one_line(result.reason, 500)
    if verdict in FAILURES:
        message = reason or verdict.value
        if verdict is Verdict.XPASS:
            message = f"XPASS: passed although the baseline expects a failure; update the baseline. {reason}".strip()
        child = ET.SubElement(case, "failure", message=xml_text(message), type=verdict.value)
        child.text = xml_text(_details(result))
    elif verdict in ERRORS:
        child = ET.SubElement(case, "error", message=xml_text(reason or "the harness could not decide"), type="ERROR")
        child.text = xml_text(_details(result))
    elif verdict is Verdict.XFAIL:
        child = ET.SubElement(case, "skipped", message=XFAIL_MESSAGE)
        child.text = xml_text(_details(result))
    elif verdict in SKIPS:
        ET.SubElement(case, "skipped", message=xml_text(f"{verdict.value}: {reason}" if reason else verdict.value))
    out = _system_out(result, verdict)
    if out:
        ET.SubElement(case, "system-out").text = xml_text(out)
    if result.client_output:
        ET.SubElement(case, "system-err").text = xml_text(excerpt(result.client_output, OUTPUT_LIMIT))
    return case


def _details(result: ScenarioResult) -> str:
    """Evidence as a person reads it in a CI log: rule, expected, observed, wire."""
    lines = [f"{result.id} [{result.level}] {result.title}".rstrip()]
    if result.reason:
        lines.append(result.reason)
    for ev in result.evidence:
        lines.append("")
        lines.append(f"- {ev.rule}" + (f" (run {ev.run})" if ev.run is not None else ""))
        lines.append(f"  expected: {ev.expected}")
        lines.append(f"  observed: {ev.observed}")
        if ev.wire:
            lines.append("  wire:")
            lines.extend("    " + line for line in ev.wire.splitlines())
    for label, value in (("requirement", result.requirement), ("source", result.source), ("replay", result.replay)):
        if value:
            lines.append(f"{label}: {value}")
    return "\n".join(lines)


def _system_out(result: ScenarioResult, verdict: Verdict) -> str:
    parts = []
    if verdict is Verdict.NON_STRICT:
        parts.append(f"NON-STRICT (a SHOULD was missed; not a failure): {result.reason}\n\n{_details(result)}\n")
    elif verdict is Verdict.INFO:
        parts.append(f"INFO (measured only): {result.reason}\n")
    if result.transcript:
        parts.append(excerpt(result.transcript, TRANSCRIPT_LIMIT))
    return "\n".join(parts)


def dumps(report: RunReport) -> bytes:
    root = build(report)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write(report: RunReport, path: str | os.PathLike[str]) -> Path:
    """Write the JUnit XML report to ``path`` atomically (parents created)."""
    return write_bytes(path, dumps(report))
