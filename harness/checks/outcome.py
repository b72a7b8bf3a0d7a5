"""Checks on how each run of the client ended: exit status, deadline, message, time.

The outcome is evidence, rarely the verdict: a scenario pairs these with wire and store
checks, because a clean exit with a message missing is a FAIL and a non-zero exit after
refusing a plaintext server is a PASS. Where a rule needs "the client's message", the
python adapter's formatted exception counts as part of stderr.
"""

from __future__ import annotations

import re

from ..verdicts import Evidence
from . import check
from .evidence import excerpt, failed, measured, passed

EXPECT = ("zero", "nonzero", "any")
STREAMS = ("stderr", "any")
TAIL = 600  # characters of output kept in evidence
OUTPUT_SHOWN = 200


def _runs(obs, run: int | None) -> list:
    outcomes = [o for o in obs.outcomes if run is None or o.run == run]
    if not outcomes:
        raise ValueError(f"no outcome recorded{'' if run is None else f' for run {run}'}")
    return outcomes


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= TAIL else "..." + text[-TAIL:]


def _output(outcome, stream: str = "any") -> str:
    parts = [outcome.stderr, outcome.error or ""]
    if stream == "any":
        parts.insert(0, outcome.stdout)
    return "\n".join(p for p in parts if p)


def _status(outcome) -> str:
    if outcome.killed_at_deadline:
        return f"killed at the deadline after {outcome.duration:.2f} s"
    if outcome.exit_status is None:
        return "no exit status (still running or killed)"
    if outcome.exit_status < 0:
        return f"ended by signal {-outcome.exit_status}"
    return f"exit {outcome.exit_status}"


def _evidence(obs, rule: str, expected: str, outcome, what: str) -> Evidence:
    """Evidence about one run: its output's last words, and where its last connection ended."""
    said = _tail(_output(outcome))[-OUTPUT_SHOWN:]
    observed = f"run {outcome.run}: {what}" + (f"; its output ends: {said!r}" if said else "; no output")
    return Evidence(rule, expected, observed, _last_connection(obs, outcome.run), outcome.run)


def _last_connection(obs, run: int) -> str:
    conns = obs.wire.select(run=run)
    if not conns:
        return f"(no connection reached the fakes in run {run})"
    return excerpt(conns[-1], end=True)


RULE_EXIT = "the client's exit status tells whether the sync succeeded"


@check("exit_status", {"expect": str, "run": int}, choices={"expect": EXPECT}, minimum={"run": 0}, doc="""Each
       run (or only run) ended with exit status 0 (expect="zero"), or with a non-zero status of its
       own (expect="nonzero"; being killed or signalled does not count), or any (recorded only).""")
def exit_status(obs, level, expect="zero", run=None):
    evidence, bad = [], []
    for outcome in _runs(obs, run):
        code = outcome.exit_status
        if expect == "zero":
            ok = code == 0 and not outcome.killed_at_deadline
        elif expect == "nonzero":
            ok = code is not None and code > 0 and not outcome.killed_at_deadline
        else:
            ok = True
        item = _evidence(obs, RULE_EXIT, {"zero": "exit 0", "nonzero": "a non-zero exit status",
                                     "any": "any exit"}[expect], outcome, _status(outcome))
        (evidence if ok else bad).append(item)
    if bad:
        return failed(level, bad)
    return passed(level, [Evidence(e.rule, e.expected, e.observed, run=e.run) for e in evidence])


RULE_DEADLINE = "the client finishes before the harness's deadline (never hangs)"


def _deadline(obs, given: float | None) -> float | None:
    if given is not None:
        return given
    for attr in ("deadline", "timeout"):
        value = getattr(obs.scenario, attr, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


@check("not_killed", {"deadline": float}, minimum={"deadline": 0}, doc="""No run had to be killed at the
       deadline; a failure names the deadline (given, or the scenario's).""")
def not_killed(obs, level, deadline=None):
    limit = _deadline(obs, deadline)
    named = f"{limit:g} s" if limit is not None else "the scenario's deadline"
    bad = [_evidence(obs, RULE_DEADLINE, f"finished within {named}", o,
                     f"still running at the {named} deadline; killed after {o.duration:.2f} s")
           for o in _runs(obs, None) if o.killed_at_deadline]
    if bad:
        return failed(level, bad)
    longest = max(o.duration for o in obs.outcomes)
    return passed(level, [Evidence(RULE_DEADLINE, f"finished within {named}",
                                   f"{len(obs.outcomes)} run(s), the longest took {longest:.2f} s")])


RULE_MENTIONS = "a client that fails says why"


@check("error_mentions", {"patterns": list[str], "stream": str}, choices={"stream": STREAMS}, doc="""Every
       run that failed (non-zero exit, signal, kill, or a python exception) explains itself: its stderr
       (or stdout too, with stream="any"; the python exception counts as stderr) matches at least one
       of patterns, case-insensitive regular expressions. Runs that succeeded are not judged.""")
def error_mentions(obs, level, patterns, stream="stderr"):
    if not patterns:
        raise ValueError("error_mentions needs at least one pattern")
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    wanted = " or ".join(f"/{p}/" for p in patterns)
    bad, judged = [], 0
    for outcome in _runs(obs, None):
        failed_run = outcome.exit_status != 0 or outcome.killed_at_deadline or outcome.error
        if not failed_run:
            continue
        judged += 1
        text = _output(outcome, stream)
        if not any(p.search(text) for p in compiled):
            where = "stderr" if stream == "stderr" else "the output"
            shown = _tail(text)[-OUTPUT_SHOWN:]
            said = f"it ends with: {shown!r}" if shown else "it is empty"
            bad.append(Evidence(RULE_MENTIONS, f"{where} matches {wanted}",
                                f"run {outcome.run} ({_status(outcome)}): {where} does not match; {said}",
                                _last_connection(obs, outcome.run), outcome.run))
    if bad:
        return failed(level, bad)
    return passed(level, [Evidence(RULE_MENTIONS, f"failed runs match {wanted}",
                                   f"{judged} failed run(s), each explained")])


RULE_WITHIN = "the client completes in bounded time"


@check("completed_within", {"seconds": float}, minimum={"seconds": 0}, doc="""Every run finished on its own
       within seconds (a killed run never counts as completed).""")
def completed_within(obs, level, seconds):
    bad = [_evidence(obs, RULE_WITHIN, f"finished within {seconds:g} s", o,
                     _status(o) if o.killed_at_deadline else f"took {o.duration:.2f} s")
           for o in _runs(obs, None) if o.killed_at_deadline or o.duration > seconds]
    if bad:
        return failed(level, bad)
    return passed(level, [Evidence(RULE_WITHIN, f"finished within {seconds:g} s",
                                   f"the longest run took {max(o.duration for o in obs.outcomes):.2f} s")])


@check("info_timing", {}, doc="""Measured only (INFO, never a failure): per run its duration and exit,
       the connections it opened, and the bytes the client sent and received.""")
def info_timing(obs, level):
    evidence = []
    runs = sorted({o.run for o in obs.outcomes} | {c.run for c in obs.wire.select()})
    by_run = {o.run: o for o in obs.outcomes}
    for run in runs:
        conns = obs.wire.select(run=run)
        sent = sum(c.bytes_received for c in conns)
        received = sum(c.bytes_sent for c in conns)
        outcome = by_run.get(run)
        head = ""
        if outcome is not None:
            took = "" if outcome.killed_at_deadline else f" after {outcome.duration:.2f} s"
            head = f"{_status(outcome)}{took}; "
        evidence.append(Evidence("timing and volume (measured)", "-",
                                 f"run {run}: {head}{len(conns)} connection(s), peak "
                                 f"{obs.wire.peak_concurrency(run=run)} at once; {sent:,} bytes from the client, "
                                 f"{received:,} bytes to it", run=run))
    return measured(evidence)


RULE_ALERT = "a pre-TLS [ALERT] is not shown as if the server had said it"
_ALERT = re.compile(r"\[ALERT\]\s*(.*)", re.IGNORECASE)
_LINK = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)
_MARKED = re.compile(r"plain ?text|before (the )?tls|pre-?tls|untrusted|unverified|insecure|inject|spoof|ignor|discard",
                     re.IGNORECASE)


def _flat(text: str) -> str:
    return " ".join(text.split()).casefold()


def _pre_tls_alerts(obs, run: int) -> list[tuple]:
    """(connection, response, alert text) for every [ALERT] the fakes sent in plaintext in
    ``run`` whose text they did not also send over TLS in that run (that one is the server's)."""
    sent = [(conn, resp, m.group(1).strip()) for conn in obs.wire.select(run=run) for resp in conn.responses
            if (m := _ALERT.search(resp.line))]
    over_tls = {_flat(text) for _, resp, text in sent if resp.tls}
    return [(conn, resp, text) for conn, resp, text in sent
            if not resp.tls and text and _flat(text) not in over_tls]


def _shown(output: str, text: str) -> tuple[str, str | None]:
    """How ``output`` repeats alert ``text``: ("text" | "link" | "", the output line that does)."""
    links = [_flat(link.rstrip(".,;)")) for link in _LINK.findall(text)]
    for line in output.splitlines():
        flat = _flat(line)
        if _flat(text) in flat:
            return "text", line.strip()
        if any(link in flat for link in links):
            return "link", line.strip()
    return "", None


@check("alert_shown_before_tls", {"run": int}, minimum={"run": 0}, doc="""Measured only (INFO, never a
       failure): whether each run (or only run) repeated, on stdout, stderr or in its python exception,
       the text (or the link) of an [ALERT] the fakes sent in plaintext before TLS, such as one injected
       after the greeting, and not also over TLS. Evidence quotes the alert, the output line that
       repeated it, and whether that line marks it as untrusted; the python adapter captures no
       output, so there only the exception counts.""")
def alert_shown_before_tls(obs, level, run=None):
    evidence = []
    expected = "a pre-TLS alert is not shown, or shown marked as untrusted"
    for outcome in _runs(obs, run):
        alerts = _pre_tls_alerts(obs, outcome.run)
        if not alerts:
            evidence.append(Evidence(RULE_ALERT, expected, f"run {outcome.run}: no [ALERT] reached the client "
                                     "before TLS; nothing to measure", run=outcome.run))
            continue
        output = _output(outcome)
        for conn, resp, text in alerts:
            how, line = _shown(output, text)
            said = f"run {outcome.run}: the client was sent {text!r} before TLS (connection #{conn.id}); "
            if not how:
                said += "its output does not repeat it" + ("" if output.strip() else " (it printed nothing)")
            else:
                what = "the alert's text" if how == "text" else "the alert's link"
                rest = re.sub(re.escape(text), "", line, flags=re.IGNORECASE)  # the alert's own words do not count
                marked = "marked as untrusted" if _MARKED.search(rest) else "not marked as untrusted"
                said += f"its output SHOWS {what} ({marked}): {_tail(line)[-OUTPUT_SHOWN:]!r}"
            evidence.append(Evidence(RULE_ALERT, expected, said, excerpt(conn, response=resp), outcome.run))
    return measured(evidence)
