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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fake_servers.faults import Rule, RuleError
from fake_servers.provider_config import ConfigError, ProviderSpec, from_mapping, key_line, load_persona, read_toml

from .outbox import OutboxItem, message_id, recipients
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
            "between_runs": list, "checks": list, "notes": str, "outbox": list}
REQUIRED = ("id", "title", "level", "requirement", "source")
CLIENT_KEYS = {"imap_security": str, "smtp_security": str, "username": str, "password": str,
               "imap_endpoint": str, "smtp_endpoint": str, "discover": bool}
ENDPOINTS = ("auto", "plain", "implicit", "closed")
BETWEEN_KEYS = {"after": int, "actions": list}
STATE_ACTIONS = ("uidvalidity", "expunge", "new_mail")
OUTBOX_KEYS = {
    "raw": str,  # one message, byte-exact (give raw, file or generate)
    "file": str,  # one message from a file, relative to the scenario file
    "generate": int,  # this many generated messages (From: the account's address, a unique Message-ID)
    "name": str,  # the slug of the file names, NNN-<name>.eml (default: the file's stem, or "generated")
    "size": int,  # generated: the size of each message in bytes
    "to": list,  # generated: To addresses (default bob@example.test)
    "recipients": int,  # generated: this many more made-up recipients per message
    "eight_bit": bool,  # generated: an 8-bit UTF-8 body (Content-Transfer-Encoding: 8bit)
    "utf8_address": bool,  # generated: one more recipient with a non-ASCII local part (needs SMTPUTF8)
    "run": int,  # the run before which the files appear in the outbox (default 1)
}
GENERATED_ONLY = ("size", "to", "recipients", "eight_bit", "utf8_address")


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
    smtp_endpoint: str = "auto"  # the same for the submission server
    # true: the client is not told the IMAP/SMTP host, port or security, only the address
    # (MAILCONFORM_AUTODISCOVER_EMAIL), MAILCONFORM_DNS and MAILCONFORM_CONNECT_TO: it must discover
    # the servers from [provider.discovery]. Needs "autodiscover".
    discover: bool = False


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
    outbox: list[OutboxItem] = field(default_factory=list)

    def outbox_files(self, sender: str, seed: int = 0) -> list[tuple[int, str, bytes]]:
        """(run, file name, bytes) of every outbox message, numbered in the order of the file."""
        files, number = [], 1
        for index, item in enumerate(self.outbox):
            for name, raw in item.messages(sender, seed=seed, index=index, scenario=self.id, first=number):
                files.append((item.run, name, raw))
            number += item.count
        return files

    @property
    def area(self) -> str:
        """``imap.tls`` for ``imap.tls.no-starttls``: how reports group scenarios."""
        return ".".join(self.id.split(".")[:2])

    def matches(self, patterns: list[str] | None) -> bool:
        return not patterns or any(fnmatch.fnmatchcase(self.id, p) or p == self.id for p in patterns)


def _suggest(word: str, valid) -> str:
    match = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (valid: {', '.join(sorted(valid))})"


# -- where a key is written: file:line in every error -------------------------------------------

_TOKEN = re.compile(r"""(?P<nl>\n)|[ \t\r]+|\#[^\n]*
    |(?P<str>\"\"\"(?:\\.|[^\\])*?\"\"\"|'''.*?'''|"(?:\\.|[^"\\\n])*"|'[^'\n]*')
    |(?P<punct>[\[\]{}=,.])|(?P<bare>[^\s\[\]{}=,.\#"']+)""", re.X | re.S)


class _Spots:
    """Where each key of a valid TOML text is written: path (keys, array indices) -> line.

    tomllib returns values without positions, and a key such as ``n`` or ``count`` recurs in
    many tables, so the line of an error is found by its path, not by searching for the word.
    String values are kept too, because some errors name a value (``action = "replay"``).
    """

    def __init__(self, text: str) -> None:
        self.toks: list[tuple[str, str, int]] = []
        line = 1
        for m in _TOKEN.finditer(text):
            if m.lastgroup:
                self.toks.append((m.lastgroup, m.group(), line))
            line += m.group().count("\n")
        self.toks.append(("end", "", line))
        self.i = 0
        self.lines: dict[tuple, int] = {}
        self.values: dict[tuple, str] = {}
        try:
            self._document()
        except IndexError:  # not TOML after all: keep what was found
            pass

    def _tok(self, ahead: int = 0) -> tuple[str, str, int]:
        kind, text, line = self.toks[self.i + ahead]
        if kind == "end":
            raise IndexError("end of text")
        return kind, text, line

    def _skip_newlines(self) -> None:
        while self._tok()[0] == "nl":
            self.i += 1

    def _key(self) -> tuple[str, ...]:
        parts = []
        while True:
            kind, text, _ = self._tok()
            parts.append(text[1:-1] if kind == "str" else text)
            self.i += 1
            if self.toks[self.i][1] != ".":
                return tuple(parts)
            self.i += 1

    def _document(self) -> None:
        arrays: dict[tuple, int] = {}  # array of tables -> index of its last element
        table: tuple = ()
        while self.toks[self.i][0] != "end":
            kind, text, line = self._tok()
            if kind == "nl":
                self.i += 1
            elif text == "[":
                double = self._tok(1)[1] == "["
                self.i += 2 if double else 1
                keys, table = self._key(), ()
                for n, key in enumerate(keys):
                    table += (key,)
                    self.lines.setdefault(table, line)  # [provider.imap] also opens provider
                    if double and n == len(keys) - 1:
                        arrays[table] = arrays.get(table, -1) + 1
                    if table in arrays:
                        table += (arrays[table],)
                        self.lines.setdefault(table, line)
                self.i += 2 if double else 1
            else:
                self._key_value(table)

    def _key_value(self, table: tuple) -> None:
        line = self._tok()[2]
        path = table + self._key()
        for n in range(len(table) + 1, len(path) + 1):
            self.lines.setdefault(path[:n], line)
        self.i += 1  # "="
        self._value(path)

    def _value(self, path: tuple) -> None:
        kind, text, _ = self._tok()
        if text in ("[", "{"):
            close, n = "]" if text == "[" else "}", 0
            self.i += 1
            while True:
                self._skip_newlines()
                if self._tok()[1] == close:
                    self.i += 1
                    return
                if close == "]":
                    self.lines.setdefault(path + (n,), self._tok()[2])
                    self._value(path + (n,))
                    n += 1
                else:
                    self._key_value(path)
                self._skip_newlines()
                if self._tok()[1] == ",":
                    self.i += 1
        if kind == "str":
            self.values[path] = text.strip("\"'")
        while self.toks[self.i][0] not in ("nl", "end") and self.toks[self.i][1] not in (",", "]", "}"):
            self.i += 1

    def line(self, path: tuple, hint: str | None = None) -> int | None:
        """The line of ``path``, or of the key or string value ``hint`` nearest beneath it."""
        while path and path not in self.lines:
            path = path[:-1]
        for scope in (path[:n] for n in range(len(path), -1, -1)) if hint is not None else ():
            found = sorted((p[-1] != hint, line) for p, line in self.lines.items()
                           if p[:len(scope)] == scope and (p[-1] == hint or self.values.get(p) == hint))
            if found:
                return found[0][1]
        return self.lines.get(path) if path else None


def _dotted(path: tuple) -> str:
    """``("between_runs", 0, "after")`` -> ``between_runs[0].after``, as messages name a key."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _path_of(where: str) -> tuple:
    """The key path a provider error message starts with (``provider.faults[0].action: ...``)."""
    m = re.match(r"(provider(?:\.[\w-]+|\[\d+\])*)", where)
    parts = re.findall(r"[\w-]+|\[\d+\]", m.group(1)) if m else []
    return tuple(int(p[1:-1]) if p.startswith("[") else p for p in parts)


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self._spots: _Spots | None = None

    def fail(self, message: str, path: tuple = (), hint: str | None = None) -> ScenarioError:
        """An error at ``path`` (or at the key or value ``hint`` beneath it): file:line: message."""
        if self._spots is None:
            self._spots = _Spots(self.text)
        line = self._spots.line(path, hint) if path or hint else None
        if line is None and hint:
            line = key_line(self.text, hint)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ScenarioError(f"{where}: {message}")

    def keys(self, table: Any, valid: Mapping[str, Any], what: str, path: tuple = ()) -> None:
        if not isinstance(table, Mapping):
            raise self.fail(f"{what} must be a table", path)
        for key, value in table.items():
            if key not in valid:
                raise self.fail(f"unknown key {key!r} in {what}{_suggest(key, valid)}", path + (key,))
            want = valid[key]
            wants = want if isinstance(want, tuple) else (want,)
            if (isinstance(value, bool) and bool not in wants) or not isinstance(value, wants):
                names = " or ".join(t.__name__ for t in wants)
                raise self.fail(f"{_dotted(path + (key,))} must be {names}, not {type(value).__name__} {value!r}",
                                path + (key,))

    def choice(self, value: str, valid, what: str, path: tuple) -> str:
        if value not in valid:
            raise self.fail(f"{what} {value!r} is not valid{_suggest(value, valid)}", path, value)
        return value

    def load(self, data: dict) -> Scenario:
        self.keys(data, TOP_KEYS, "the scenario")
        for key in REQUIRED:
            if key not in data:
                raise self.fail(f"missing {key!r} (every scenario has {', '.join(REQUIRED)})")
        level = self.choice(data["level"], LEVELS, "level", ("level",))
        needs = [self.choice(f, FEATURES, "feature", ("needs", n)) for n, f in enumerate(data.get("needs", ["imap"]))]
        client_table = data.get("client", {})
        self.keys(client_table, CLIENT_KEYS, "[client]", ("client",))
        client = ClientSetup(**client_table)
        for key, valid in (("imap_security", SECURITY), ("smtp_security", SECURITY), ("imap_endpoint", ENDPOINTS),
                           ("smtp_endpoint", ENDPOINTS)):
            self.choice(getattr(client, key), valid, f"client.{key}", ("client", key))
        runs = data.get("runs", 1)
        if runs < 1:
            raise self.fail("runs must be at least 1", ("runs",))
        provider_data = dict(data.get("provider", {}))
        provider_data.setdefault("accounts", [DEFAULT_ACCOUNT])
        try:
            provider = from_mapping(provider_data, "provider", self.path.parent)
        except ConfigError as exc:
            raise self.provider_error(exc, provider_data) from None
        if client.discover and "discovery" not in provider_data:
            raise self.fail("client.discover = true needs a [provider.discovery] table: what the client "
                            "discovers (see docs/discovery.md)", ("client", "discover"))
        if client.discover and "autodiscover" not in needs:
            raise self.fail("client.discover = true needs 'autodiscover' in needs (a client without it is "
                            "UNSUPPORTED, not failed)", ("needs",) if "needs" in data else ("client", "discover"))
        between = []
        for i, table in enumerate(data.get("between_runs", [])):
            self.keys(table, BETWEEN_KEYS, f"between_runs[{i}]", ("between_runs", i))
            after = table.get("after", 1)
            if not 1 <= after < runs:
                raise self.fail(f"between_runs[{i}].after must name a run before the last (1..{runs - 1})",
                                ("between_runs", i, "after"))
            actions = tuple(table.get("actions", []))
            for j, action in enumerate(actions):
                name = action.get("action") if isinstance(action, Mapping) else None
                if name not in STATE_ACTIONS:
                    raise self.fail(f"between_runs[{i}].actions[{j}]: {name!r} is not a state action"
                                    f"{_suggest(str(name), STATE_ACTIONS)}",
                                    ("between_runs", i, "actions", j, "action"))
                try:
                    Rule.from_dict({"on": "run", **action}, f"between_runs[{i}].actions[{j}]")
                except RuleError as exc:
                    raise self.fail(str(exc), ("between_runs", i, "actions", j), exc.key) from None
            between.append(BetweenRuns(after, actions))
        outbox = [self.outbox_item(i, table, runs) for i, table in enumerate(data.get("outbox", []))]
        self.unique_message_ids(outbox)
        checks = [self.check(i, table, level) for i, table in enumerate(data.get("checks", []))]
        if not checks:
            raise self.fail("a scenario needs at least one [[checks]] entry", ("checks",))
        return Scenario(
            id=data["id"], title=data["title"], level=level, requirement=data["requirement"],
            source=data["source"], provider=provider, tags=list(data.get("tags", [])), needs=needs, runs=runs,
            deadline=float(data.get("deadline", 30.0)), client=client, between_runs=between, checks=checks,
            path=self.path, notes=data.get("notes", ""), outbox=outbox,
        )

    def outbox_item(self, i: int, table: Any, runs: int) -> OutboxItem:
        where = f"outbox[{i}]"
        path = ("outbox", i)
        self.keys(table, OUTBOX_KEYS, where, path)
        given = [k for k in ("raw", "file", "generate") if k in table]
        if len(given) != 1:
            raise self.fail(f"{where} needs exactly one of 'raw', 'file' or 'generate'"
                            + (f", not {' and '.join(repr(k) for k in given)}" if given else ""),
                            path + ((given[-1],) if given else ()))
        run = table.get("run", 1)
        if not 1 <= run <= runs:
            raise self.fail(f"{where}.run must name a run of the scenario (1..{runs})", path + ("run",))
        for key in ("generate", "size", "recipients"):
            if key in table and table[key] < (1 if key == "generate" else 0):
                raise self.fail(f"{where}.{key} must be at least {1 if key == 'generate' else 0}", path + (key,))
        if "generate" not in table:
            extra = next((k for k in GENERATED_ONLY if k in table), None)
            if extra is not None:
                raise self.fail(f"{where}.{extra} only applies to generated messages (generate = N); "
                                f"write it into the message itself", path + (extra,))
            if "raw" in table:
                raw = table["raw"].encode("utf-8", "surrogateescape")
            else:
                file = Path(table["file"])
                file = file if file.is_absolute() else self.path.parent / file
                try:
                    raw = file.read_bytes()
                except OSError as exc:
                    raise self.fail(f"{where}.file: cannot read {file}: {exc.strerror}", path + ("file",)) from None
            key = given[0]
            if message_id(raw) is None:
                raise self.fail(f"{where}: the message has no Message-ID (the checks match what the server "
                                "received to the outbox by it)", path + (key,))
            if not recipients(raw):
                raise self.fail(f"{where}: the message has no recipient (To, Cc or Bcc)", path + (key,))
            name = table.get("name") or (Path(table["file"]).stem if "file" in table else None)
            return OutboxItem(raw=raw, name=name, run=run)
        to = table.get("to", [])
        for j, item in enumerate(to):
            if not isinstance(item, str) or "@" not in item:
                raise self.fail(f"{where}.to[{j}] must be an address (a string with @), not {item!r}",
                                path + ("to", j))
        return OutboxItem(generate=table["generate"], name=table.get("name"), size=table.get("size", 0),
                          to=tuple(to), recipients=table.get("recipients", 0),
                          eight_bit=table.get("eight_bit", False), utf8_address=table.get("utf8_address", False),
                          run=run)

    def unique_message_ids(self, outbox: list[OutboxItem]) -> None:
        seen: dict[str, int] = {}
        for i, item in enumerate(outbox):
            if item.raw is None:
                continue  # generated ids are unique by construction
            mid = message_id(item.raw)
            if mid in seen:
                raise self.fail(f"outbox[{i}] has the Message-ID {mid} of outbox[{seen[mid]}]: each outbox "
                                "message needs its own", ("outbox", i))
            seen[mid] = i

    def check(self, i: int, table: Any, default_level: str) -> CheckUse:
        from . import checks as registry

        if not isinstance(table, Mapping) or "check" not in table:
            raise self.fail(f"checks[{i}] needs 'check' (the check's name)", ("checks", i))
        name = table["check"]
        if name not in registry.CHECKS:
            raise self.fail(f"unknown check {name!r}{_suggest(str(name), registry.CHECKS)}", ("checks", i, "check"))
        level = table.get("level")
        if level is not None:
            self.choice(level, LEVELS, f"checks[{i}].level", ("checks", i, "level"))
        params = {k: v for k, v in table.items() if k not in ("check", "level")}
        try:
            registry.validate(name, params)
        except ValueError as exc:
            # the parameter the message is about: an unknown one, else the one it quotes
            bad = next((k for k in params if k not in registry.CHECKS[name].params), None)
            bad = bad or next((k for k in params if f"{k!r} must" in str(exc) or f"{k!r} is" in str(exc)), "check")
            raise self.fail(f"checks[{i}] ({name}): {exc}", ("checks", i, bad)) from None
        return CheckUse(name, level, params)

    def provider_error(self, exc: ConfigError, data: Mapping[str, Any]) -> ScenarioError:
        """A provider error at its line: the message starts with the key path (``provider.faults[1]...``)."""
        path = _path_of(str(exc))
        persona = data.get("persona")
        if path[:2] == ("provider", "faults") and len(path) > 2 and isinstance(persona, str):
            try:  # a persona's rules come first in the merged list
                path = path[:2] + (path[2] - len(load_persona(persona).data.get("faults", [])),) + path[3:]
            except ConfigError:
                pass
        quoted = re.search(r"'([^']+)'", str(exc))
        hint = exc.key or (quoted.group(1) if quoted and not path else None)
        return self.fail(str(exc), path, hint)


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text, data = read_toml(path)
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None
    return _Loader(path, text).load(data)


def catalog(directory: Path = SCENARIO_DIR, patterns: list[str] | None = None) -> list[Scenario]:
    """Every scenario under ``directory`` (sorted by id), optionally filtered by id globs."""
    scenarios = [load(p) for p in sorted(directory.rglob("*.toml"))]
    seen: dict[str, Path] = {}
    for s in scenarios:
        if s.id in seen:
            raise ScenarioError(f"{s.path}: id {s.id!r} is already used by {seen[s.id]}")
        seen[s.id] = s.path
    return sorted((s for s in scenarios if s.matches(patterns)), key=lambda s: s.id)
