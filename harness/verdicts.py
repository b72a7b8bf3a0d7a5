"""Verdicts and their evidence, and how check results combine into a scenario's verdict.

A verdict must be true: a harness that passes a broken client or fails a good one is worse
than none. So every verdict carries what was checked, what was expected, what was seen,
and the wire excerpt that shows it.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Iterable


class Verdict(str, enum.Enum):
    PASS = "PASS"
    NON_STRICT = "NON-STRICT"  # a SHOULD missed
    FAIL = "FAIL"  # a MUST violated
    INFO = "INFO"  # measured only
    UNSUPPORTED = "UNSUPPORTED"  # the client lacks a feature the scenario needs
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"  # the harness could not decide
    XFAIL = "XFAIL"  # failed, as the baseline expects
    XPASS = "XPASS"  # passed, although the baseline expects a failure: update the baseline

    @property
    def fails_run(self) -> bool:
        """Whether ``mailconform run`` exits non-zero because of this verdict."""
        return self in (Verdict.FAIL, Verdict.ERROR, Verdict.XPASS)


LEVELS = ("MUST", "SHOULD", "INFO")


@dataclass
class Evidence:
    rule: str
    expected: str
    observed: str
    wire: str = ""
    run: int | None = None


@dataclass
class CheckResult:
    check: str
    passed: bool | None  # None: measured only, or undecidable (see ``error``)
    level: str
    evidence: list[Evidence] = field(default_factory=list)
    security: bool = False
    error: str | None = None  # the check itself could not decide

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {self.level!r}")


@dataclass
class ScenarioResult:
    id: str
    title: str
    level: str
    verdict: Verdict
    tags: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    reason: str = ""  # one line a person reads first
    duration: float = 0.0
    runs: int = 0
    replay: str = ""  # the command that replays this scenario
    source: str = ""
    requirement: str = ""
    transcript: str = ""  # the whole wire log, redacted, for the report's expandable view
    client_output: str = ""

    @property
    def evidence(self) -> list[Evidence]:
        return [e for c in self.checks for e in c.evidence]

    def to_json(self) -> dict:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["evidence"] = [asdict(e) for e in self.evidence]
        return data


def combine(level: str, checks: Iterable[CheckResult]) -> tuple[Verdict, str, bool]:
    """(verdict, reason, security) for a scenario of ``level`` from its check results."""
    checks = list(checks)
    errors = [c for c in checks if c.error]
    if errors:
        return Verdict.ERROR, f"{errors[0].check}: {errors[0].error}", False
    failed = [c for c in checks if c.passed is False]
    must = [c for c in failed if c.level == "MUST"]
    should = [c for c in failed if c.level == "SHOULD"]
    security = any(c.security for c in failed)
    if must:
        return Verdict.FAIL, _reason(must[0]), security
    if should:
        return Verdict.NON_STRICT, _reason(should[0]), security
    if level == "INFO" or (checks and all(c.level == "INFO" for c in checks)):
        return Verdict.INFO, "measured", False
    return Verdict.PASS, "", False


def _reason(check: CheckResult) -> str:
    if check.evidence:
        e = check.evidence[0]
        return f"{e.rule}: expected {e.expected}; observed {e.observed}"
    return check.check


def apply_baseline(verdict: Verdict, expected_failure: bool) -> Verdict:
    """A baseline lists scenarios known to fail: FAIL→XFAIL, and a listed PASS→XPASS."""
    if not expected_failure:
        return verdict
    if verdict in (Verdict.FAIL, Verdict.NON_STRICT):
        return Verdict.XFAIL
    if verdict is Verdict.PASS:
        return Verdict.XPASS
    return verdict
