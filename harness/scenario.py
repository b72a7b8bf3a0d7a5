"""Scenarios: one TOML file each, loaded strictly.

A QA engineer writes a scenario without reading our code, so every mistake is reported with
the file, the line and the closest valid word; a typo never silently disables a check.

```toml
id = "imap.tls.no-starttls"
title = "Server without STARTTLS"
level = "MUST"
requirement = "A client set for STARTTLS sends no credential and no mail data when the server offers no STARTTLS."
source = "RFC 3501 §6.2.1; RFC 8314 §3; seed 001 'Server does not support SSL'"
tags = ["tls", "security"]
needs = ["imap"]

[client]
imap_security = "starttls"

[provider.imap]
starttls = false
login_disabled = false

[[checks]]
check = "aborts_without_credentials"
```
"""

from __future__ import annotations

import difflib
import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fake_servers.faults import Rule, RuleError
from fake_servers.provider_config import ConfigError, ProviderSpec, from_mapping, key_line

from .verdicts import LEVELS

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
FEATURES = ("imap", "smtp", "idle", "twoway", "autodiscover", "oauth2")
SECURITY = ("tls", "starttls", "none")

DEFAULT_ACCOUNT = {
    "username": "alice@example.test",
    "password": "correct horse battery staple",
    "folders": [
        {"name": "INBOX", "generate": 12},
        {"name": "Sent", "special_use": ["\\Sent"], "generate": 3},
        {"name": "Drafts", "special_use": ["\\Drafts"]},
        {"name": "Trash", "special_use": ["\\Trash"]},
    ],
}

TOP_KEYS = {"id": str, "title": str, "level": str, "requirement": str, "source": str, "tags": list,
            "needs": list, "runs": int, "deadline": (int, float), "client": dict, "provider": dict,
            "between_runs": list, "checks": list, "notes": str}
REQUIRED = ("id", "title", "level", "requirement", "source")
CLIENT_KEYS = {"imap_security": str, "smtp_security": str, "username": str, "password": str,
               "imap_endpoint": str}
ENDPOINTS = ("auto", "plain", "implicit", "closed")
BETWEEN_KEYS = {"after": int, "actions": list}
STATE_ACTIONS = ("uidvalidity", "expunge", "new_mail")


class ScenarioError(ValueError):
    """A scenario file that cannot be loaded: file:line: what, and the closest valid word."""


@dataclass(frozen=True)
class ClientSetup:
    imap_security: str = "starttls"
    smtp_security: str = "starttls"
    username: str | None = None  # default: the provider's first account
    password: str | None = None
    # Which port the client is pointed at: "auto" (the one its security setting wants),
    # "plain", "implicit" (a deliberate mismatch), or "closed" (nothing listens there).
    imap_endpoint: str = "auto"


@dataclass(frozen=True)
class CheckUse:
    name: str
    level: str | None
    params: Mapping[str, Any]


@dataclass(frozen=True)
class BetweenRuns:
    after: int
    actions: tuple[Mapping[str, Any], ...]


@dataclass
class Scenario:
    id: str
    title: str
    level: str
    requirement: str
    source: str
    provider: ProviderSpec
    tags: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=lambda: ["imap"])
    runs: int = 1
    deadline: float = 30.0
    client: ClientSetup = ClientSetup()
    between_runs: list[BetweenRuns] = field(default_factory=list)
    checks: list[CheckUse] = field(default_factory=list)
    path: Path | None = None
    notes: str = ""

    @property
    def area(self) -> str:
        """``imap.tls`` for ``imap.tls.no-starttls``: how reports group scenarios."""
        return ".".join(self.id.split(".")[:2])

    def matches(self, patterns: list[str] | None) -> bool:
        return not patterns or any(fnmatch.fnmatchcase(self.id, p) or p == self.id for p in patterns)


def _suggest(word: str, valid) -> str:
    match = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (valid: {', '.join(sorted(valid))})"


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, message: str, key: str | None = None) -> ScenarioError:
        line = key_line(self.text, key) if key else None
        where = f"{self.path}:{line}" if line else str(self.path)
        return ScenarioError(f"{where}: {message}")

    def keys(self, table: Any, valid: Mapping[str, Any], what: str) -> None:
        if not isinstance(table, Mapping):
            raise self.fail(f"{what} must be a table")
        for key, value in table.items():
            if key not in valid:
                raise self.fail(f"unknown key {key!r} in {what}{_suggest(key, valid)}", key)
            want = valid[key]
            wants = want if isinstance(want, tuple) else (want,)
            if (isinstance(value, bool) and bool not in wants) or not isinstance(value, wants):
                names = " or ".join(t.__name__ for t in wants)
                raise self.fail(f"{what}.{key} must be {names}, not {type(value).__name__} {value!r}", key)

    def choice(self, value: str, valid, what: str) -> str:
        if value not in valid:
            raise self.fail(f"{what} {value!r} is not valid{_suggest(value, valid)}", value)
        return value

    def load(self, data: dict) -> Scenario:
        self.keys(data, TOP_KEYS, "the scenario")
        for key in REQUIRED:
            if key not in data:
                raise self.fail(f"missing {key!r} (every scenario has {', '.join(REQUIRED)})")
        level = self.choice(data["level"], LEVELS, "level")
        needs = [self.choice(f, FEATURES, "feature") for f in data.get("needs", ["imap"])]
        client_table = data.get("client", {})
        self.keys(client_table, CLIENT_KEYS, "[client]")
        client = ClientSetup(**client_table)
        self.choice(client.imap_security, SECURITY, "client.imap_security")
        self.choice(client.smtp_security, SECURITY, "client.smtp_security")
        self.choice(client.imap_endpoint, ENDPOINTS, "client.imap_endpoint")
        runs = data.get("runs", 1)
        if runs < 1:
            raise self.fail("runs must be at least 1", "runs")
        provider_data = dict(data.get("provider", {}))
        provider_data.setdefault("accounts", [DEFAULT_ACCOUNT])
        try:
            provider = from_mapping(provider_data, "provider", self.path.parent)
        except ConfigError as exc:
            raise self.fail(str(exc), exc.key) from None
        between = []
        for i, table in enumerate(data.get("between_runs", [])):
            self.keys(table, BETWEEN_KEYS, f"between_runs[{i}]")
            after = table.get("after", 1)
            if not 1 <= after < runs:
                raise self.fail(f"between_runs[{i}].after must name a run before the last (1..{runs - 1})", "after")
            actions = tuple(table.get("actions", []))
            for j, action in enumerate(actions):
                name = action.get("action") if isinstance(action, Mapping) else None
                if name not in STATE_ACTIONS:
                    raise self.fail(f"between_runs[{i}].actions[{j}]: {name!r} is not a state action"
                                    f"{_suggest(str(name), STATE_ACTIONS)}", str(name))
                try:
                    Rule.from_dict({"on": "run", **action}, f"between_runs[{i}].actions[{j}]")
                except RuleError as exc:
                    raise self.fail(str(exc), exc.key) from None
            between.append(BetweenRuns(after, actions))
        checks = [self.check(i, table, level) for i, table in enumerate(data.get("checks", []))]
        if not checks:
            raise self.fail("a scenario needs at least one [[checks]] entry")
        return Scenario(
            id=data["id"], title=data["title"], level=level, requirement=data["requirement"],
            source=data["source"], provider=provider, tags=list(data.get("tags", [])), needs=needs, runs=runs,
            deadline=float(data.get("deadline", 30.0)), client=client, between_runs=between, checks=checks,
            path=self.path, notes=data.get("notes", ""),
        )

    def check(self, i: int, table: Any, default_level: str) -> CheckUse:
        from . import checks as registry

        if not isinstance(table, Mapping) or "check" not in table:
            raise self.fail(f"checks[{i}] needs 'check' (the check's name)")
        name = table["check"]
        if name not in registry.CHECKS:
            raise self.fail(f"unknown check {name!r}{_suggest(str(name), registry.CHECKS)}", str(name))
        level = table.get("level")
        if level is not None:
            self.choice(level, LEVELS, f"checks[{i}].level")
        params = {k: v for k, v in table.items() if k not in ("check", "level")}
        try:
            registry.validate(name, params)
        except ValueError as exc:
            bad = next((k for k in params if k not in registry.CHECKS[name].params), None)
            raise self.fail(f"checks[{i}] ({name}): {exc}", bad) from None
        return CheckUse(name, level, params)


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    scenario = _Loader(path, text).load(data)
    return scenario


def catalog(directory: Path = SCENARIO_DIR, patterns: list[str] | None = None) -> list[Scenario]:
    """Every scenario under ``directory`` (sorted by id), optionally filtered by id globs."""
    scenarios = [load(p) for p in sorted(directory.rglob("*.toml"))]
    seen: dict[str, Path] = {}
    for s in scenarios:
        if s.id in seen:
            raise ScenarioError(f"{s.path}: id {s.id!r} is already used by {seen[s.id]}")
        seen[s.id] = s.path
    return sorted((s for s in scenarios if s.matches(patterns)), key=lambda s: s.id)
