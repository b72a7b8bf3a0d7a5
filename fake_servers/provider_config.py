"""Provider descriptions as data (TOML tables): accounts, folders, messages, IMAP and SMTP settings, faults.

Scenario files and persona files share this format. Loading is strict: an unknown key or a
wrong type is an error naming where it is and the closest valid key, because a misspelt
setting that is silently ignored makes a scenario test something else than it says.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

from .faults import Rule, RuleError
from .imap.config import ImapConfig, Texts
from .mailstore import MailStore, UidValidityMode, UidValidityPolicy, fill
from .mailstore import fuzz as fuzzed
from .provider import FakeProvider
from .smtp.config import DELIVERY_TARGETS, MECHANISMS, SmtpConfig, SmtpTexts, reply_error
from .tls import CertKind, TLSVersions

PERSONA_DIR = Path(__file__).parent / "personas"


class ConfigError(ValueError):
    """A provider description that cannot be loaded; says where and what would be valid."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def key_line(text: str, key: str) -> int | None:
    """The 1-based line where ``key`` is set or opens a table in TOML ``text`` (best effort)."""
    pattern = re.compile(rf"^\s*(\[\[?[^\]]*\b)?{re.escape(key)}\b\s*(=|\]|\.)")
    quoted = re.compile(rf"^\s*[\"']{re.escape(key)}[\"']\s*=")
    value = re.compile(rf"=\s*[\"']{re.escape(key)}[\"']")
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if pattern.match(line) or quoted.match(line):
            return number
    for number, line in enumerate(lines, start=1):
        if value.search(line):
            return number
    return None


def _suggest(word: str, valid) -> str:
    match = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else f"; valid keys: {', '.join(sorted(valid))}"


def _check_keys(table: Mapping[str, Any], valid: Mapping[str, Any] | set, where: str) -> None:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    for key in table:
        if key not in valid:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggest(key, valid)}", key)


def _typed(value: Any, want: type | tuple, where: str) -> Any:
    wants = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool) and bool not in wants or not isinstance(value, wants):
        raise ConfigError(f"{where}: expected {' or '.join(t.__name__ for t in wants)}, got {type(value).__name__} {value!r}")
    return value


PROVIDER_KEYS = {"seed": int, "cert": str, "tls_versions": str, "imap": dict, "smtp": dict, "accounts": list,
                 "faults": list,
                 "persona": str, "description": str,
                 "discovery": dict}  # DNS, Autodiscover, autoconfig, OAuth (docs/discovery.md)
ACCOUNT_KEYS = {"username": str, "password": str, "app_passwords": list, "oauth_tokens": list,
                "require_app_password": bool, "delimiter": str, "uidvalidity_policy": str, "uidvalidity_mode": str,
                "folders": list}
FOLDER_KEYS = {"name": str, "special_use": list, "subscribed": bool, "generate": int, "generate_size": int,
               "messages": list,
               "fuzz": int}  # fuzzed messages 0..N-1 of corpus seed + folder position (mailstore/fuzz.py)
MESSAGE_KEYS = {"raw": str, "file": str, "flags": list, "internal_date": (str, datetime.datetime),
                "rfc822_size": int}  # announce a wrong RFC822.SIZE (a server with a stale size)
IMAP_KEYS = {f.name: f for f in dataclasses.fields(ImapConfig)}
TEXT_KEYS = {f.name for f in dataclasses.fields(Texts)}
SMTP_KEYS = {f.name: f for f in dataclasses.fields(SmtpConfig)}
SMTP_TEXT_KEYS = {f.name for f in dataclasses.fields(SmtpTexts)}
# The type each [smtp] setting wants (its default is None or a tuple for some).
_SMTP_TYPES: dict[str, Any] = {"ehlo_plaintext": list, "ehlo_tls": list, "ehlo_add": list, "ehlo_remove": list,
                               "auth_mechanisms": list, "deliver_to": list, "greylist_delay": (int, float)}


@dataclasses.dataclass
class ProviderSpec:
    """A loaded, validated provider description; :meth:`build` makes a fresh provider from it."""

    data: dict
    where: str
    base_dir: Path | None = None

    def build(self, **overrides) -> FakeProvider:
        return build_provider(self.data, self.where, self.base_dir, **overrides)

    def secrets(self) -> list[str]:
        """Every password, app password and token the description holds (for redaction)."""
        found = []
        for account in self.data.get("accounts", []):
            found.append(account.get("password", ""))
            found.extend(account.get("app_passwords", []))
            found.extend(account.get("oauth_tokens", []))
        oauth = self.data.get("discovery", {}).get("oauth", {})
        found.append(oauth.get("client_secret", "") if isinstance(oauth, Mapping) else "")
        return [s for s in found if isinstance(s, str) and s]


def read_toml(path: Path) -> tuple[str, dict]:
    """A TOML file's text and data; unreadable or malformed files name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(f"{path}:{line.group(1)}: {exc}" if line else f"{path}: {exc}") from None


def load_file(path: str | Path) -> ProviderSpec:
    path = Path(path)
    text, data = read_toml(path)
    try:
        return from_mapping(data, str(path), path.parent)
    except ConfigError as exc:
        line = None
        if exc.key and ".discovery" in str(exc).split(":", 1)[0]:
            from .discovery.config import discovery_key_line

            line = discovery_key_line(text, exc.key, key_line)
        if exc.key and line is None:
            line = key_line(text, exc.key)
        if line is None:
            raise
        raise ConfigError(f"{path}:{line}: {exc}", exc.key) from None


def load_persona(name: str) -> ProviderSpec:
    path = PERSONA_DIR / f"{name}.toml"
    if not path.exists():
        raise ConfigError(f"unknown persona {name!r}{_suggest(name, personas())}")
    return load_file(path)


def personas() -> list[str]:
    return sorted(p.stem for p in PERSONA_DIR.glob("*.toml"))


def from_mapping(data: Mapping[str, Any], where: str = "provider", base_dir: Path | None = None) -> ProviderSpec:
    """Validate ``data`` fully (without starting anything) and return a spec."""
    data = dict(data)
    if "persona" in data:
        base = load_persona(_typed(data.pop("persona"), str, f"{where}.persona")).data
        data = _merge(base, data)
    _check_keys(data, PROVIDER_KEYS, where)
    build_provider(data, where, base_dir, dry_run=True)
    return ProviderSpec(data, where, base_dir)


def _merge(base: dict, over: Mapping[str, Any]) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        elif key == "faults" and isinstance(value, list):
            out[key] = list(out.get(key, [])) + list(value)
        else:
            out[key] = value
    return out


def imap_config(table: Mapping[str, Any], where: str) -> ImapConfig:
    _check_keys(table, IMAP_KEYS, where)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key == "texts":
            _check_keys(value, TEXT_KEYS, f"{where}.texts")
            kwargs["texts"] = Texts(**{k: _typed(v, str, f"{where}.texts.{k}") for k, v in value.items()})
        elif isinstance(value, list):
            kwargs[key] = tuple(_typed(v, str, f"{where}.{key}[]") for v in value)
        else:
            default = IMAP_KEYS[key].default
            want = type(default) if default is not None and not isinstance(default, dataclasses._MISSING_TYPE) else (str, int, bool)
            kwargs[key] = _typed(value, want, f"{where}.{key}")
    return ImapConfig(**kwargs)


def smtp_config(table: Mapping[str, Any], where: str) -> SmtpConfig:
    """An ``[smtp]`` table (``[provider.smtp]`` in a scenario), with ``[smtp.texts]``, strictly."""
    _check_keys(table, SMTP_KEYS, where)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key == "texts":
            _check_keys(value, SMTP_TEXT_KEYS, f"{where}.texts")
            texts = {}
            for name, text in value.items():
                _typed(text, str, f"{where}.texts.{name}")
                problem = reply_error(text)
                if problem:
                    raise ConfigError(f"{where}.texts.{name}: {problem}", name)
                texts[name] = text
            kwargs["texts"] = SmtpTexts(**texts)
            continue
        want = _SMTP_TYPES.get(key) or type(SMTP_KEYS[key].default)
        _typed(value, want, f"{where}.{key}")
        if isinstance(value, list):
            value = tuple(_typed(v, str, f"{where}.{key}[]") for v in value)
            valid = {"auth_mechanisms": MECHANISMS, "deliver_to": DELIVERY_TARGETS}.get(key)
            for item in value if valid else ():
                if (item.upper() if key == "auth_mechanisms" else item) not in valid:
                    raise ConfigError(f"{where}.{key}: unknown value {item!r}{_suggest(item, valid)}", key)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{where}.{key}: must be at least 0, not {value}", key)
        kwargs[key] = value
    try:
        return SmtpConfig(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def build_provider(data: Mapping[str, Any], where: str, base_dir: Path | None, *, dry_run: bool = False,
                   **overrides) -> FakeProvider | None:
    _check_keys(data, PROVIDER_KEYS, where)
    for key, value in data.items():
        _typed(value, PROVIDER_KEYS[key], f"{where}.{key}")
    try:
        cert = CertKind(data.get("cert", "valid"))
    except ValueError:
        raise ConfigError(f"{where}.cert: unknown certificate kind {data['cert']!r}"
                          f"{_suggest(data['cert'], [k.value for k in CertKind])}") from None
    try:
        versions = TLSVersions(data.get("tls_versions", "modern"))
    except ValueError:
        raise ConfigError(f"{where}.tls_versions: {data['tls_versions']!r}"
                          f"{_suggest(data['tls_versions'], [v.value for v in TLSVersions])}") from None
    imap = imap_config(data.get("imap", {}), f"{where}.imap")
    smtp = smtp_config(data.get("smtp", {}), f"{where}.smtp")
    discovery = None
    if "discovery" in data:
        from .discovery import DiscoveryConfigError, discovery_config

        try:
            discovery = discovery_config(data["discovery"], f"{where}.discovery")
        except DiscoveryConfigError as exc:
            raise ConfigError(str(exc), exc.key) from None
    rules = []
    for i, rule in enumerate(data.get("faults", [])):
        try:
            rules.append(Rule.from_dict(rule, f"{where}.faults[{i}]"))
        except RuleError as exc:
            raise ConfigError(str(exc), exc.key) from None
    store = MailStore()
    for i, account in enumerate(data.get("accounts", [])):
        _add_account(store, account, f"{where}.accounts[{i}]", base_dir, data.get("seed", 0), dry_run)
    if dry_run:
        return None
    options = dict(store=store, imap=imap, smtp=smtp, faults=rules, seed=data.get("seed", 0), cert=cert,
                   tls_versions=versions, discovery=discovery)
    options.update(overrides)
    return FakeProvider(**options)


def _add_account(store: MailStore, table: Mapping[str, Any], where: str, base_dir: Path | None, seed: int,
                 dry_run: bool) -> None:
    _check_keys(table, ACCOUNT_KEYS, where)
    for key, value in table.items():
        _typed(value, ACCOUNT_KEYS[key], f"{where}.{key}")
    for key in ("username", "password"):
        if key not in table:
            raise ConfigError(f"{where}: missing {key!r}")
    policy = table.get("uidvalidity_policy", "stable")
    if policy not in [p.value for p in UidValidityPolicy]:
        raise ConfigError(f"{where}.uidvalidity_policy: {policy!r}{_suggest(policy, [p.value for p in UidValidityPolicy])}")
    mode = table.get("uidvalidity_mode", UidValidityMode.RENUMBER)
    if mode not in UidValidityMode.ALL:
        raise ConfigError(f"{where}.uidvalidity_mode: {mode!r}{_suggest(mode, UidValidityMode.ALL)}")
    folders = table.get("folders")
    options = dict(
        app_passwords=tuple(table.get("app_passwords", ())),
        oauth_tokens=tuple(table.get("oauth_tokens", ())),
        require_app_password=table.get("require_app_password", False),
        delimiter=table.get("delimiter", "/"),
        uidvalidity_policy=policy,
        uidvalidity_mode=mode,
        seed=seed,
    )
    if folders is not None:
        options["folders"] = ()
    account = store.add_account(table["username"], table["password"], **options)
    for j, folder_table in enumerate(folders or []):
        fwhere = f"{where}.folders[{j}]"
        _check_keys(folder_table, FOLDER_KEYS, fwhere)
        for key, value in folder_table.items():
            _typed(value, FOLDER_KEYS[key], f"{fwhere}.{key}")
        if "name" not in folder_table:
            raise ConfigError(f"{fwhere}: missing 'name'")
        try:
            folder = account.add_folder(folder_table["name"], folder_table.get("special_use", ()),
                                        folder_table.get("subscribed", True))
        except ValueError as exc:
            raise ConfigError(f"{fwhere}: {exc}") from None
        for k, message in enumerate(folder_table.get("messages", [])):
            raw, flags, date = _message(message, f"{fwhere}.messages[{k}]", base_dir)
            if not dry_run:
                msg = folder.append(raw, flags=flags, internal_date=date)
                if "rfc822_size" in message:
                    msg.size = message["rfc822_size"]
        count = folder_table.get("generate", 0)
        if count and not dry_run:
            fill(folder, count, seed=seed + j, size=folder_table.get("generate_size", 4096))
        fuzz = folder_table.get("fuzz", 0)
        if fuzz < 0:
            raise ConfigError(f"{fwhere}.fuzz: the number of fuzzed messages is at least 0, not {fuzz}", "fuzz")
        if fuzz and not dry_run:  # each carries X-Fuzz-Seed and X-Fuzz-Index, enough to replay it alone
            fuzzed.fill(folder, fuzz, seed=seed + j)


def _message(table: Mapping[str, Any], where: str, base_dir: Path | None):
    _check_keys(table, MESSAGE_KEYS, where)
    if ("raw" in table) == ("file" in table):
        raise ConfigError(f"{where}: give exactly one of 'raw' or 'file'")
    if "raw" in table:
        raw = _typed(table["raw"], str, f"{where}.raw").encode("utf-8", "surrogateescape")
    else:
        path = Path(_typed(table["file"], str, f"{where}.file"))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}.file: cannot read {path}: {exc.strerror}") from None
    flags = [_typed(f, str, f"{where}.flags[]") for f in table.get("flags", [])]
    date = table.get("internal_date")
    if isinstance(date, str):
        try:
            date = datetime.datetime.fromisoformat(date)
        except ValueError:
            raise ConfigError(f"{where}.internal_date: not an ISO 8601 date-time: {date!r}") from None
    if isinstance(date, datetime.datetime) and date.tzinfo is None:
        date = date.replace(tzinfo=datetime.timezone.utc)
    return raw, flags, date
