"""What one ``mailconform run`` produced, as a value the report writers share.

The writers (``json_report``, ``junit``, ``html``) turn a :class:`RunReport` into files; they
all go through ``atomic.write_bytes`` so a report on disk is either the old one or the new one.
Transcripts carry bytes a hostile server chose, so every writer cleans text with the helpers here
before it formats anything.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Iterable

from harness.verdicts import ScenarioResult, Verdict

SCHEMA_VERSION = 1
TOOL_NAME = "mailconform"
PERSONA_PREFIX = "persona:"

# Verdicts that count as "compatible" for a persona certification.
CERTIFIED = frozenset({Verdict.PASS, Verdict.XFAIL, Verdict.INFO})


class ReportError(ValueError):
    """A report file that cannot be read back (bad JSON, wrong shape, newer schema)."""


def _tool_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - always present on 3.11
        return "0+unknown"
    try:
        return version(TOOL_NAME)
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class ToolInfo:
    name: str = TOOL_NAME
    version: str = field(default_factory=_tool_version)


@dataclass
class ClientInfo:
    description: str = ""  # e.g. the command template or ``package.module:callable``
    features: list[str] = field(default_factory=list)  # as declared to the adapter


def utc_timestamp(when: _dt.datetime | None = None) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second: ``2024-05-01T10:00:00Z``."""
    when = when or _dt.datetime.now(_dt.timezone.utc)
    if when.tzinfo is None:
        raise ValueError("a naive datetime is ambiguous; give it a timezone")
    return when.astimezone(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _check_utc(name: str, value: str | _dt.datetime) -> str:
    if isinstance(value, _dt.datetime):
        return utc_timestamp(value)
    if value == "":
        return value
    try:
        parsed = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} is not ISO 8601: {value!r}") from None
    if parsed.utcoffset() != _dt.timedelta(0):
        raise ValueError(f"{name} must be in UTC (…Z or +00:00): {value!r}")
    return parsed.isoformat().replace("+00:00", "Z")  # one spelling, the one the schema publishes


@dataclass
class RunReport:
    """One client against a selection of scenarios: what the three report formats render."""

    results: list[ScenarioResult] = field(default_factory=list)
    client: ClientInfo = field(default_factory=ClientInfo)
    started_at: str = ""  # ISO 8601 UTC; a timezone-aware datetime is accepted and converted
    finished_at: str = ""
    seed: int | str | None = None
    command: str = ""  # the command line that reproduces the run
    tool: ToolInfo = field(default_factory=ToolInfo)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.started_at = _check_utc("started_at", self.started_at)
        self.finished_at = _check_utc("finished_at", self.finished_at)

    def summary(self) -> dict[str, int]:
        """Count of results per verdict, every verdict present (zeros too), in ``Verdict`` order."""
        counts = {v.value: 0 for v in Verdict}
        for result in self.results:
            counts[Verdict(result.verdict).value] += 1
        return counts

    def certifications(self) -> dict[str, str]:
        """``{"icloud": "13/14"}`` for each ``persona:…`` tag; PASS, XFAIL and INFO count as passed."""
        totals: dict[str, list[int]] = {}
        for result in self.results:
            for persona in personas_of(result):
                passed_total = totals.setdefault(persona, [0, 0])
                passed_total[1] += 1
                if Verdict(result.verdict) in CERTIFIED:
                    passed_total[0] += 1
        return {name: f"{p}/{t}" for name, (p, t) in sorted(totals.items())}

    @property
    def failed(self) -> bool:
        """Whether the run fails (exit status 1): any FAIL, ERROR or XPASS."""
        return any(Verdict(r.verdict).fails_run for r in self.results)

    @property
    def duration(self) -> float:
        return sum(r.duration for r in self.results)


def personas_of(result: ScenarioResult) -> list[str]:
    return [t[len(PERSONA_PREFIX):] for t in result.tags if t.startswith(PERSONA_PREFIX) and len(t) > len(PERSONA_PREFIX)]


def area(scenario_id: str) -> str:
    """The group a scenario is shown under: its id up to the second dot (``imap.tls``)."""
    return ".".join(scenario_id.split(".")[:2])


def group_by_area(results: Iterable[ScenarioResult]) -> dict[str, list[ScenarioResult]]:
    """Results by area, areas in order of first appearance (the catalog's order)."""
    groups: dict[str, list[ScenarioResult]] = {}
    for result in results:
        groups.setdefault(area(result.id), []).append(result)
    return groups


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str | bytes) -> str:
    """Text that encodes as UTF-8: invalid bytes and lone surrogates become U+FFFD.

    Transcripts may have been decoded with ``surrogateescape`` or may hold raw bytes; either way
    a writer must not crash on them, and must not pass them on unchanged.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return _SURROGATE.sub("\ufffd", value)  # one U+FFFD per undecodable byte, as bytes.decode gives


def excerpt(text: str, limit: int) -> str:
    """At most about ``limit`` characters: the start and the end, which show how it began and failed."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[… {omitted} characters omitted; the JSON report has them all …]\n{text[-tail:]}"


_SPACES = re.compile(r"\s+")


def one_line(text: str, limit: int = 200) -> str:
    """Text collapsed to one line (for comments, messages and attributes)."""
    line = _SPACES.sub(" ", clean_text(text)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


__all__ = [
    "CERTIFIED",
    "ClientInfo",
    "PERSONA_PREFIX",
    "ReportError",
    "RunReport",
    "SCHEMA_VERSION",
    "ToolInfo",
    "area",
    "clean_text",
    "excerpt",
    "group_by_area",
    "one_line",
    "personas_of",
    "utc_timestamp",
]
