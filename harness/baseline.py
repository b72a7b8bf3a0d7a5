"""Baselines: the scenarios a client is known to fail, so CI can go green and stay honest.

A listed scenario that fails becomes XFAIL; a listed one that passes becomes XPASS, which fails
the run until the entry is removed, so a baseline cannot quietly outlive the bug it records.

The file is plain text, one scenario id per line; ``#`` starts a comment, and a comment after
an id is the note kept with it (the reason it failed)::

    # mailconform baseline for: mbsync -c {config} -a
    imap.tls.caps-not-refreshed   # FAIL: capabilities re-read after STARTTLS: expected …
    imap.idle.timeout-29min       # NON-STRICT: IDLE renewed before 29 min: expected …

Plain text rather than TOML because it is a list and nothing more: ``sort``, ``grep`` and a
review diff all work on it line by line, and there is no quoting to get wrong. When mailconform
rewrites a baseline it keeps the comment block at the top and each id's note; comments on lines
of their own further down are not kept.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

from harness.reports import RunReport, one_line
from harness.reports.atomic import write_text
from harness.verdicts import ScenarioResult, Verdict, apply_baseline

# What a scenario id may contain (catalog ids look like ``imap.tls.cert-expired``).
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/+@=-]*", re.ASCII)
# Results of a run that belong in a baseline made from it.
KNOWN_FAILURES = frozenset({Verdict.FAIL, Verdict.NON_STRICT, Verdict.XFAIL})


class BaselineError(ValueError):
    """A baseline file that cannot be read; says where (``file:line``) and why."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


@dataclass
class Baseline:
    """Scenario ids known to fail, each with a note (usually the verdict and reason)."""

    notes: dict[str, str] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)  # comment lines at the top, without ``#``
    path: Path | None = None

    # -- reading -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Baseline:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BaselineError(str(path), None, f"cannot read the baseline: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise BaselineError(str(path), line, "not UTF-8 text") from None
        baseline = cls.parse(text, str(path))
        baseline.path = path
        return baseline

    @classmethod
    def parse(cls, text: str, path: str = "<baseline>") -> Baseline:
        notes: dict[str, str] = {}
        first_seen: dict[str, int] = {}
        header: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            content, _, comment = line.partition("#")
            content = content.strip()
            if not content:
                if not notes and comment.strip() and not _is_standard_header(comment.strip()):
                    header.append(comment.strip())
                continue
            words = content.split()
            if len(words) > 1:
                raise BaselineError(path, number, f"one scenario id per line, not {len(words)} words: {content!r} "
                                                  "(notes go after '#')")
            scenario_id = words[0]
            if not _ID.fullmatch(scenario_id):
                raise BaselineError(path, number, f"not a scenario id: {scenario_id!r} (ids use letters, digits "
                                                  "and . _ - : / + @ =; this file is plain text, one id per line)")
            if scenario_id in first_seen:
                raise BaselineError(path, number, f"{scenario_id} is already listed on line {first_seen[scenario_id]}")
            first_seen[scenario_id] = number
            notes[scenario_id] = comment.strip()
        return cls(notes=notes, header=header)

    # -- using ---------------------------------------------------------------------------

    def expects_failure(self, scenario_id: str) -> bool:
        return scenario_id in self.notes

    def apply(self, result: ScenarioResult) -> ScenarioResult:
        """The result as judged against this baseline (FAIL→XFAIL, a listed PASS→XPASS)."""
        verdict = apply_baseline(Verdict(result.verdict), self.expects_failure(result.id))
        if verdict == result.verdict:
            return result
        reason = result.reason
        if verdict is Verdict.XPASS:
            where = f" ({self.path})" if self.path else ""
            reason = f"passed, but the baseline{where} lists it as a known failure: remove it from the baseline"
        return replace(result, verdict=verdict, reason=reason)

    def apply_all(self, results: Iterable[ScenarioResult]) -> list[ScenarioResult]:
        return [self.apply(r) for r in results]

    def __contains__(self, scenario_id: object) -> bool:
        return scenario_id in self.notes

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.notes))

    def __len__(self) -> int:
        return len(self.notes)

    # -- making and updating -------------------------------------------------------------

    @classmethod
    def from_report(cls, report: RunReport) -> Baseline:
        """Every scenario that failed in ``report`` (FAIL, NON-STRICT, or XFAIL), with its reason."""
        notes = {r.id: _note(r) for r in report.results if Verdict(r.verdict) in KNOWN_FAILURES}
        header = [f"mailconform baseline for: {one_line(report.client.description or 'a client')}"]
        if report.started_at or report.command:
            header.append(f"from the run of {report.started_at or 'unknown date'}: {one_line(report.command, 300)}")
        return cls(notes=notes, header=header)

    def updated(self, report: RunReport) -> Baseline:
        """This baseline after ``report``: fixed scenarios dropped, new failures added.

        Scenarios the run did not include keep their entries, so a run of a selection does not
        erase the rest of the baseline; an XFAIL keeps its existing note.
        """
        ran = {r.id: r for r in report.results}
        notes = {}
        for scenario_id, note in self.notes.items():
            result = ran.get(scenario_id)
            if result is None or Verdict(result.verdict) in KNOWN_FAILURES:
                notes[scenario_id] = note or (_note(result) if result else "")
        for scenario_id, result in ran.items():
            if scenario_id not in notes and Verdict(result.verdict) in KNOWN_FAILURES:
                notes[scenario_id] = _note(result)
        return Baseline(notes=notes, header=list(self.header) or Baseline.from_report(report).header, path=self.path)

    def render(self) -> str:
        lines = [f"# {one_line(line, 300)}" for line in self.header]
        lines += [f"# {line}" for line in STANDARD_HEADER]
        width = max((len(i) for i in self.notes), default=0)
        for scenario_id in sorted(self.notes):
            note = one_line(self.notes[scenario_id], 2000)
            lines.append(f"{scenario_id.ljust(width)}  # {note}" if note else scenario_id)
        return "\n".join(lines) + "\n"

    def write(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the baseline (sorted ids, notes as comments) atomically to ``path`` or where it was loaded."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path: this baseline was not loaded from a file")
        return write_text(target, self.render())


STANDARD_HEADER = (
    "One scenario id per line; text after '#' is a comment. A listed scenario that fails is XFAIL;",
    "one that passes is XPASS, which fails the run until its line is removed.",
)


def _is_standard_header(comment: str) -> bool:
    return comment in STANDARD_HEADER


def _note(result: ScenarioResult) -> str:
    verdict = Verdict(result.verdict)
    reason = one_line(result.reason, 200)
    if verdict is Verdict.XFAIL:
        return reason
    return f"{verdict.value}: {reason}" if reason else verdict.value
