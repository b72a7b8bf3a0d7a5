"""The HTML report: one self-contained page a person reads after a run, or a vendor publishes.

Autobahn|Testsuite style: scenarios grouped by area, one row each with a coloured verdict, and
each row opens (``<details>``, no script) onto what was required, the evidence, and the wire.
Everything shown came from a client or a fake that may be hostile, so every string is escaped,
and control and bidi characters are shown as visible marks instead of being interpreted.
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import os
import re
from pathlib import Path

from harness.verdicts import CheckResult, ScenarioResult, Verdict

from . import RunReport, clean_text, excerpt, group_by_area
from .atomic import write_bytes

TRANSCRIPT_LIMIT = 256 * 1024
OUTPUT_LIMIT = 64 * 1024

LEGEND = {
    Verdict.PASS: "behaved as the requirement says",
    Verdict.NON_STRICT: "a SHOULD was missed; does not fail the run",
    Verdict.FAIL: "a MUST was violated; fails the run",
    Verdict.INFO: "measured only; no requirement",
    Verdict.UNSUPPORTED: "the client lacks a feature the scenario needs",
    Verdict.SKIPPED: "not run",
    Verdict.ERROR: "the harness could not decide; fails the run",
    Verdict.XFAIL: "failed, as the baseline expects",
    Verdict.XPASS: "passed although the baseline expects a failure; update the baseline (fails the run)",
}
PROBLEMS = (Verdict.FAIL, Verdict.ERROR, Verdict.XPASS)

# Shown as marks, not obeyed: C0/C1 controls (but tab and newline), DEL, and the characters
# that reorder text (a transcript must read in the order the bytes came).
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _mark(match: re.Match[str]) -> str:
    # Spelled in ASCII (\x00, <U+202E>) rather than as control pictures, which many monospace
    # fonts lack; the span's colour tells them from the same text sent literally.
    code = ord(match.group())
    shown = f"\\x{code:02x}" if code < 0x100 else f"&lt;U+{code:04X}&gt;"
    return f'<span class="ctl" title="U+{code:04X}">{shown}</span>'


def h(value: object) -> str:
    """Escaped text for element content; invisible characters made visible."""
    text = clean_text(value if isinstance(value, (str, bytes)) else str(value)).replace("\r\n", "\n")
    return _INVISIBLE.sub(_mark, _html.escape(text, quote=True))


def attr(value: object) -> str:
    """Escaped text for an attribute value (quoted with ``"``); invisible characters dropped."""
    text = clean_text(value if isinstance(value, (str, bytes)) else str(value))
    return _html.escape(_INVISIBLE.sub("", text), quote=True)


def anchor(scenario_id: str) -> str:
    return "s-" + re.sub(r"[^A-Za-z0-9._:-]", "_", scenario_id)


def badge(verdict: Verdict, text: str | None = None) -> str:
    return (f'<span class="badge v-{verdict.name}" title="{attr(LEGEND[verdict])}">'
            f"{h(verdict.value if text is None else text)}</span>")


def _title(report: RunReport) -> str:
    return f"mailconform: {report.client.description or 'client'}"


def render(report: RunReport) -> str:
    title = _title(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{h(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        _header(report),
        _problems(report),
        "<main>",
        *(_area(name, results) for name, results in group_by_area(report.results).items()),
        "</main>",
        _legend(),
        "</body></html>\n",
    ]
    return "\n".join(p for p in parts if p)


def _header(report: RunReport) -> str:
    meta = [
        ("client", h(report.client.description or "(not described)")),
        ("features", h(", ".join(report.client.features) or "none declared")),
        ("started", h(report.started_at or "unknown") + _elapsed(report)),
        ("seed", h("none" if report.seed is None else report.seed)),
        ("reproduce", f"<code>{h(report.command)}</code>" if report.command else "unknown"),
        ("tool", h(f"{report.tool.name} {report.tool.version} (report schema {report.schema_version})")),
    ]
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta)
    counts = report.summary()
    summary = "".join(
        f'<li class="{"" if counts[v.value] else "zero"}">{badge(v)} <b>{counts[v.value]}</b></li>' for v in Verdict
    )
    outcome = ('<p class="outcome bad">The run fails: FAIL, ERROR or XPASS present.</p>' if report.failed
               else '<p class="outcome good">The run passes: no FAIL, ERROR or XPASS.</p>')
    certs = ""
    if report.certifications():
        items = []
        for persona, score in report.certifications().items():
            passed, total = (int(n) for n in score.split("/"))
            state = "full" if passed == total else "partial"
            items.append(f'<li class="cert {state}"><span>{h(persona)}</span> <b>{h(score)}</b></li>')
        certs = ('<h2>Persona certifications</h2><p class="note">PASS, XFAIL and INFO count as compatible.</p>'
                 f'<ul class="certs">{"".join(items)}</ul>')
    return (f'<header><h1>{h(_title(report))}</h1><dl class="meta">{rows}</dl>'
            f'<h2>Summary <small>{len(report.results)} scenarios</small></h2><ul class="summary">{summary}</ul>'
            f"{outcome}{certs}</header>")


def _elapsed(report: RunReport) -> str:
    try:
        start = _dt.datetime.fromisoformat(report.started_at)
        end = _dt.datetime.fromisoformat(report.finished_at)
    except ValueError:
        return ""
    return h(f" (took {(end - start).total_seconds():.0f} s)")


def _problems(report: RunReport) -> str:
    bad = [r for r in report.results if Verdict(r.verdict) in PROBLEMS]
    if not bad:
        return ""
    links = "".join(
        f'<li>{badge(Verdict(r.verdict))} <a href="#{attr(anchor(r.id))}">{h(r.id)}</a> {h(r.reason)}</li>' for r in bad
    )
    return f'<nav class="problems"><h2>What fails the run</h2><ul>{links}</ul></nav>'


def _area(name: str, results: list[ScenarioResult]) -> str:
    counts: dict[Verdict, int] = {}
    for r in results:
        counts[Verdict(r.verdict)] = counts.get(Verdict(r.verdict), 0) + 1
    tally = " ".join(badge(v, f"{v.value} {counts[v]}") for v in Verdict if v in counts)
    rows = "\n".join(_row(r) for r in results)
    return (f'<section class="area"><h2>{h(name)} <span class="tally">{tally}</span></h2>'
            '<div class="table" role="table">'
            '<div class="thead" role="row"><span role="columnheader">scenario</span>'
            '<span role="columnheader">verdict</span><span role="columnheader">level</span>'
            f'<span role="columnheader">reason</span></div>\n{rows}</div></section>')


def _row(result: ScenarioResult) -> str:
    verdict = Verdict(result.verdict)
    tags = "".join(f'<span class="tag{" security" if t == "security" else ""}">{h(t)}</span>' for t in result.tags)
    return (f'<details class="row v-{verdict.name}" id="{attr(anchor(result.id))}">'
            f'<summary role="row"><span class="id" role="cell"><code>{h(result.id)}</code>'
            f'<span class="title">{h(result.title)}</span></span>'
            f'<span role="cell">{badge(verdict)}</span><span class="level" role="cell">{h(result.level)}</span>'
            f'<span class="reason" role="cell">{h(result.reason)}{tags}</span></summary>'
            f'<div class="detail">{_detail(result)}</div></details>')


def _detail(result: ScenarioResult) -> str:
    facts = [("requirement", result.requirement), ("source", result.source), ("replay", result.replay),
             ("runs", str(result.runs)), ("duration", f"{result.duration:.3f} s")]
    out = ['<dl class="facts">' + "".join(
        f"<dt>{k}</dt><dd>{f'<code>{h(v)}</code>' if k == 'replay' else h(v)}</dd>" for k, v in facts if v
    ) + "</dl>"]
    if result.checks:
        items = "".join(_check(c) for c in result.checks)
        out.append(f'<h3>Checks</h3><ul class="checks">{items}</ul>')
    if result.evidence:
        out.append("<h3>Evidence</h3>")
        for ev in result.evidence:
            run = f' <span class="run">run {h(ev.run)}</span>' if ev.run is not None else ""
            wire = f'<pre class="wire">{h(ev.wire)}</pre>' if ev.wire else ""
            out.append(f'<div class="evidence"><p class="rule">{h(ev.rule)}{run}</p>'
                       f'<table><tr><th>expected</th><td>{h(ev.expected)}</td></tr>'
                       f'<tr><th>observed</th><td>{h(ev.observed)}</td></tr></table>{wire}</div>')
    if result.transcript:
        out.append(f'<h3>Wire transcript</h3><pre class="transcript">{h(excerpt(result.transcript, TRANSCRIPT_LIMIT))}</pre>')
    if result.client_output:
        out.append(f'<h3>Client output</h3><pre class="output">{h(excerpt(result.client_output, OUTPUT_LIMIT))}</pre>')
    return "\n".join(out)


def _check(check: CheckResult) -> str:
    word = _check_word(check.passed, check.error)
    security = ' <span class="tag security">security</span>' if check.security and check.passed is False else ""
    error = f" — {h(check.error)}" if check.error else ""
    return f'<li><code>{h(check.check)}</code> {h(check.level)} <b class="c-{word}">{word}</b>{security}{error}</li>'


def _check_word(passed: bool | None, error: str | None) -> str:
    if error:
        return "undecided"
    return {True: "passed", False: "failed", None: "measured"}[passed]


def _legend() -> str:
    rows = "".join(f"<tr><td>{badge(v)}</td><td>{h(text)}</td></tr>" for v, text in LEGEND.items())
    return f'<footer><h2>Verdicts</h2><table class="legend">{rows}</table></footer>'


def write(report: RunReport, path: str | os.PathLike[str]) -> Path:
    """Write the HTML report to ``path`` atomically (parents created)."""
    return write_bytes(path, render(report).encode("utf-8"))


CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;padding:1.5rem 2rem;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
h1{font-size:1.5rem;margin:0 0 .75rem}
h2{font-size:1.1rem;margin:1.25rem 0 .5rem}
h2 small{font-weight:normal;color:var(--muted)}
h3{font-size:.95rem;margin:1rem 0 .35rem}
header{border-bottom:1px solid var(--line);padding-bottom:1rem}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:0}
dl.meta dt,dl.facts dt{color:var(--muted)}
dl.meta dd,dl.facts dd{margin:0;overflow-wrap:anywhere}
ul.summary,ul.certs{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:.5rem 1.25rem}
ul.summary li.zero{opacity:.4}
.outcome{font-weight:600;margin:.75rem 0 0}
.outcome.bad{color:#cf222e}.outcome.good{color:#1f883d}
.note{color:var(--muted);margin:0 0 .4rem}
.cert{border:1px solid var(--line);border-radius:6px;padding:.2rem .6rem}
.cert.full{border-color:#1f883d;background:#dafbe1}.cert.partial{border-color:#d4a72c;background:#fff8c5}
.badge{display:inline-block;min-width:6.5em;text-align:center;padding:.1rem .45rem;border-radius:999px;font-size:12px;font-weight:600;letter-spacing:.02em;white-space:nowrap}
.tally .badge{min-width:0;font-weight:500}
.v-PASS.badge{background:#1f883d;color:#fff}
.v-NON_STRICT.badge{background:#d4a72c;color:#3b2300}
.v-FAIL.badge{background:#cf222e;color:#fff}
.v-INFO.badge{background:#0969da;color:#fff}
.v-UNSUPPORTED.badge{background:#6e7781;color:#fff}
.v-SKIPPED.badge{background:#d0d7de;color:#1f2328}
.v-ERROR.badge{background:#8250df;color:#fff}
.v-XFAIL.badge{background:#ffd8b5;color:#5c2a00}
.v-XPASS.badge{background:#bf3989;color:#fff}
nav.problems{margin-top:1rem;padding:.5rem 1rem;border:1px solid #cf222e;border-radius:6px;background:#fff5f5}
nav.problems h2{margin-top:.25rem}
nav.problems ul{list-style:none;padding:0;margin:0}
nav.problems li{margin:.2rem 0;overflow-wrap:anywhere}
section.area h2{border-bottom:1px solid var(--line);padding-bottom:.25rem}
.tally{font-size:12px;margin-left:.5rem}
.table{border:1px solid var(--line);border-radius:6px;overflow:hidden}
.thead,summary{display:grid;grid-template-columns:minmax(12em,2fr) 8em 4.5em minmax(10em,4fr);gap:0 .75rem;align-items:start;padding:.35rem .75rem}
.thead{border-left:4px solid transparent;background:var(--soft);font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase}
details.row{border-top:1px solid var(--line);border-left:4px solid transparent}
details.row.v-FAIL,details.row.v-XPASS{border-left-color:#cf222e}
details.row.v-ERROR{border-left-color:#8250df}
details.row.v-NON_STRICT{border-left-color:#d4a72c}
summary{cursor:pointer;list-style:none}
summary::-webkit-details-marker{display:none}
summary .id code::before{content:"\\25B8";display:inline-block;width:1em;color:var(--muted)}
details[open] summary .id code::before{content:"\\25BE"}
summary:hover{background:var(--soft)}
.id code{font-weight:600;overflow-wrap:anywhere}
.title{display:block;color:var(--muted);padding-left:1em}
.level{color:var(--muted);font-size:12px;padding-top:.15rem}
.reason{overflow-wrap:anywhere}
.tag{display:inline-block;margin-left:.4rem;padding:0 .35rem;border:1px solid var(--line);border-radius:4px;font-size:11px;color:var(--muted)}
.tag.security{border-color:#cf222e;color:#cf222e;font-weight:600}
.detail{padding:.25rem 1rem 1rem 2.5rem;background:#fcfcfd;border-top:1px dashed var(--line)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem}
ul.checks{margin:0;padding-left:1.2rem}
.c-passed{color:#1f883d}.c-failed{color:#cf222e}.c-measured{color:#0969da}.c-undecided{color:#8250df}
.evidence{border:1px solid var(--line);border-radius:6px;padding:.4rem .75rem;margin:.4rem 0;background:#fff}
.rule{font-weight:600;margin:.1rem 0 .3rem}
.run{font-weight:normal;color:var(--muted)}
.evidence table{border-collapse:collapse}
.evidence th{text-align:left;color:var(--muted);font-weight:normal;padding:.1rem 1rem .1rem 0;vertical-align:top}
.evidence td{overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:.5rem .75rem;max-height:28rem;overflow:auto;margin:.3rem 0}
.ctl{color:#cf222e;background:#ffebe9;border-radius:2px}
footer{margin-top:2rem;border-top:1px solid var(--line)}
table.legend td{padding:.15rem .75rem .15rem 0}
"""
