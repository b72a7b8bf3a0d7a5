"""The JSON report: the complete record of a run, versioned, and readable back.

It is the format other tools consume (dashboards, baselines, comparisons of two runs), so its
shape is published as a JSON Schema in ``docs/report-schema.json``; ``schema_version`` changes
only when a field changes meaning or disappears. Additions keep the version.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from harness.verdicts import LEVELS, CheckResult, Evidence, ScenarioResult, Verdict

from . import SCHEMA_VERSION, ClientInfo, ReportError, RunReport, ToolInfo, clean_text
from .atomic import write_bytes

RESULT_KEYS = (
    "id", "title", "verdict", "level", "tags", "reason", "duration", "runs", "replay", "source",
    "requirement", "checks", "evidence", "transcript", "client_output",
)


def to_dict(report: RunReport) -> dict[str, Any]:
    """The report as JSON-ready data, in the documented key order, all text valid Unicode."""
    data = {
        "schema_version": report.schema_version,
        "tool": {"name": report.tool.name, "version": report.tool.version},
        "client": {"description": report.client.description, "features": list(report.client.features)},
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "seed": report.seed,
        "command": report.command,
        "summary": report.summary(),
        "certifications": report.certifications(),
        "results": [_result(r) for r in report.results],
    }
    return _clean(data)


def _result(result: ScenarioResult) -> dict[str, Any]:
    raw = result.to_json()
    raw["verdict"] = Verdict(result.verdict).value
    return {key: raw[key] for key in RESULT_KEYS}


def _clean(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or Infinity
    return value


def dumps(report: RunReport) -> str:
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write(report: RunReport, path: str | os.PathLike[str]) -> Path:
    """Write the report to ``path`` atomically (parents created)."""
    return write_bytes(path, dumps(report).encode("utf-8"))


def read(path: str | os.PathLike[str]) -> RunReport:
    """A report written by :func:`write` (any schema version up to this one), as a ``RunReport``."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a JSON report: {exc}") from None
    try:
        return from_dict(data)
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from None


def from_dict(data: Any) -> RunReport:
    """The inverse of :func:`to_dict`; ``summary`` and ``certifications`` are recomputed, not read."""
    if not isinstance(data, dict):
        raise ReportError("the report is not a JSON object")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportError("schema_version is missing or not an integer")
    if version > SCHEMA_VERSION:
        raise ReportError(f"schema_version {version} is newer than this mailconform reads ({SCHEMA_VERSION})")
    results = data.get("results")
    if not isinstance(results, list):
        raise ReportError("results is missing or not a list")
    tool = _obj(data.get("tool", {}), "tool")
    client = _obj(data.get("client", {}), "client")
    try:
        return RunReport(
            results=[_scenario(r, n) for n, r in enumerate(results)],
            client=ClientInfo(description=_str(client.get("description", ""), "client.description"),
                              features=_strs(client.get("features", []), "client.features")),
            started_at=_str(data.get("started_at", ""), "started_at"),
            finished_at=_str(data.get("finished_at", ""), "finished_at"),
            seed=data.get("seed"),
            command=_str(data.get("command", ""), "command"),
            tool=ToolInfo(name=_str(tool.get("name", ""), "tool.name"),
                          version=_str(tool.get("version", ""), "tool.version")),
            schema_version=version,
        )
    except ValueError as exc:
        if isinstance(exc, ReportError):
            raise
        raise ReportError(str(exc)) from None


def _scenario(item: Any, n: int) -> ScenarioResult:
    where = f"results[{n}]"
    item = _obj(item, where)
    for key in ("id", "verdict", "level"):
        if key not in item:
            raise ReportError(f"{where}: {key} is missing")
    where = f"{where} ({item['id']!r})"
    try:
        verdict = Verdict(item["verdict"])
    except ValueError:
        spelled = ", ".join(v.value for v in Verdict)
        raise ReportError(f"{where}: unknown verdict {item['verdict']!r} (one of {spelled})") from None
    level = _level(item["level"], where)
    checks = [_check(c, f"{where}.checks[{i}]", level) for i, c in enumerate(item.get("checks") or [])]
    if not checks and item.get("evidence"):
        # A minimal report (CONTRACT.md) has evidence but no checks: keep it under one check.
        evidence = [_evidence(e, f"{where}.evidence[{i}]") for i, e in enumerate(item["evidence"])]
        checks = [CheckResult(check="evidence", passed=None, level=level, evidence=evidence)]
    duration = item.get("duration", 0.0)
    return ScenarioResult(
        id=_str(item["id"], f"{where}.id"),
        title=_str(item.get("title", ""), f"{where}.title"),
        level=level,
        verdict=verdict,
        tags=_strs(item.get("tags", []), f"{where}.tags"),
        checks=checks,
        reason=_str(item.get("reason", ""), f"{where}.reason"),
        duration=float(duration) if isinstance(duration, (int, float)) else 0.0,
        runs=_int(item.get("runs", 0), f"{where}.runs"),
        replay=_str(item.get("replay", ""), f"{where}.replay"),
        source=_str(item.get("source", ""), f"{where}.source"),
        requirement=_str(item.get("requirement", ""), f"{where}.requirement"),
        transcript=_str(item.get("transcript", ""), f"{where}.transcript"),
        client_output=_str(item.get("client_output", ""), f"{where}.client_output"),
    )


def _check(item: Any, where: str, default_level: str) -> CheckResult:
    item = _obj(item, where)
    passed = item.get("passed")
    if passed is not None and not isinstance(passed, bool):
        raise ReportError(f"{where}.passed must be true, false or null")
    error = item.get("error")
    return CheckResult(
        check=_str(item.get("check", ""), f"{where}.check"),
        passed=passed,
        level=_level(item.get("level", default_level), where),
        evidence=[_evidence(e, f"{where}.evidence[{i}]") for i, e in enumerate(item.get("evidence") or [])],
        security=bool(item.get("security", False)),
        error=None if error is None else _str(error, f"{where}.error"),
    )


def _evidence(item: Any, where: str) -> Evidence:
    item = _obj(item, where)
    run = item.get("run")
    return Evidence(
        rule=_str(item.get("rule", ""), f"{where}.rule"),
        expected=_str(item.get("expected", ""), f"{where}.expected"),
        observed=_str(item.get("observed", ""), f"{where}.observed"),
        wire=_str(item.get("wire", ""), f"{where}.wire"),
        run=None if run is None else _int(run, f"{where}.run"),
    )


def _level(value: Any, where: str) -> str:
    if value not in LEVELS:
        raise ReportError(f"{where}: level must be one of {', '.join(LEVELS)}, not {value!r}")
    return value


def _obj(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ReportError(f"{where} must be an object")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ReportError(f"{where} must be a string")
    return value


def _strs(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReportError(f"{where} must be a list of strings")
    return list(value)


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ReportError(f"{where} must be an integer")
    return value
