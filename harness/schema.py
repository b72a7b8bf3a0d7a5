"""The JSON Schema (draft 2020-12) of scenario files, built from the loaders' own tables.

Editors use it to complete and check a scenario while it is being written. Every key, type,
enum and bound comes from the tables the strict loader reads (``TOP_KEYS``, ``IMAP_KEYS``,
``ACTIONS``, the check registry, ...), so the schema cannot offer a key the loader refuses;
descriptions come from the docstrings and comments next to those tables. The loader remains
the judge: cross-field rules (``after`` below ``runs``, a matcher key the event never
carries) are in the schema only where JSON Schema can say them plainly.

Only keywords with the same meaning in draft 7 and 2020-12 are used, so editors on either
(taplo, Even Better TOML) read it alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import re
import types
import typing
from typing import Any, Mapping

from fake_servers import provider_config as pc
from fake_servers.faults import rules
from fake_servers.imap.config import ImapConfig, Texts
from fake_servers.smtp.config import DELIVERY_TARGETS, MECHANISMS, SmtpConfig, SmtpTexts
from fake_servers.mailstore import UidValidityMode, UidValidityPolicy
from fake_servers.tls import CertKind, TLSVersions

from . import checks as registry
from . import scenario
from .verdicts import LEVELS

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# Words for keys whose tables carry no comment; a key listed here that the loader no longer
# knows is an error (see _table), so these cannot outlive the key they describe.
NOTES = {
    "scenario": {
        "id": "Unique id, area first: imap.tls.no-starttls (reports group by the first two parts).",
        "title": "One line, shown by `mailconform list`.",
        "level": "What a failed check means unless the check overrides it: MUST fails the run, "
                 "SHOULD is NON-STRICT, INFO is measured only.",
        "requirement": "The behaviour required of the client, in one or two sentences.",
        "source": "Where the requirement comes from: RFC sections, provider documentation, seed reports.",
        "tags": "Free words for filtering and reports.",
        "needs": "Features the client must have; a client without one gets UNSUPPORTED.",
        "runs": "How many times the client runs against the same provider (state persists).",
        "deadline": "Seconds one run may take before the client is killed.",
        "client": "How the client is configured.",
        "provider": "The fake provider: a provider file's tables (see docs/providers.md).",
        "between_runs": "State changes applied after a run, before the next.",
        "checks": "The rules the scenario's verdict is made of.",
        "notes": "Free text for maintainers.",
        "outbox": "Messages put into MAILCONFORM_OUTBOX for the client to submit over SMTP, "
                  "as NNN-<name>.eml files, before the run each names.",
    },
    "client": {
        "imap_security": "How the client secures IMAP.",
        "smtp_security": "How the client secures SMTP.",
        "password": "The password the client is given (default: the provider's first account's).",
        "smtp_endpoint": "Which SMTP port the client is pointed at, as imap_endpoint: auto (the one smtp_security "
                         "wants), plain, implicit, or closed.",
    },
    "between_runs": {
        "after": "The run after which the actions happen (1 .. runs-1).",
        "actions": "State actions, each a table: action = ..., and its parameters.",
    },
    "provider": {
        "seed": "Every random choice of the provider (fault probabilities, shuffles) derives from it.",
        "cert": CertKind.__doc__,
        "tls_versions": TLSVersions.__doc__,
        "imap": ImapConfig.__doc__,
        "smtp": SmtpConfig.__doc__,
        "accounts": "Users and their mail; without it the scenario gets one default account.",
        "faults": "Fault rules: on an event, when the matchers hold, do an action.",
        "persona": "Start from a built-in persona and override below.",
        "description": "What this provider is, in words.",
        "discovery": "The scenario's names and its discovery fakes: DNS, Exchange POX Autodiscover, Mozilla "
                     "autoconfig, RFC 6186 SRV records, an OAuth 2.0 token endpoint (see docs/discovery.md).",
    },
    "fault": {"on": "The event the rule listens to.", "description": "What the rule is for, in words.",
              "action": "What to do (its parameters sit beside it).",
              "actions": "Several actions, each a table: action = ..., and its parameters."},
    "account": {"uidvalidity_policy": UidValidityPolicy.__doc__, "uidvalidity_mode": UidValidityMode.__doc__},
    "message": {"raw": "The message, byte-exact (give raw or file).",
                "file": "A message file, relative to the scenario file (give raw or file)."},
}


# -- Python types to JSON Schema --------------------------------------------------------------------


def json_type(want: Any) -> dict:
    """The schema of a value the loader accepts as ``want`` (a type, tuple of types or hint)."""
    if isinstance(want, tuple):
        arms = [json_type(w) for w in want]
        return _either(arms)
    origin = typing.get_origin(want)
    if origin in (typing.Union, types.UnionType):  # ``X | None``: TOML has no null
        return _either([json_type(a) for a in typing.get_args(want) if a is not type(None)])
    if origin in (list, tuple):
        args = [a for a in typing.get_args(want) if a is not Ellipsis]
        return {"type": "array", **({"items": json_type(args[0])} if args else {})}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
              dict: "object", datetime.datetime: "string"}  # TOML date-times read as strings in editors
    if want in simple:
        return {"type": simple[want]}
    raise TypeError(f"no JSON Schema type for {want!r}")


def _either(arms: list[dict]) -> dict:
    """One schema for a value that may be any of ``arms`` (``anyOf`` only when they differ)."""
    unique = [a for n, a in enumerate(arms) if a not in arms[:n]]
    if {"type": "integer"} in unique and {"type": "number"} in unique:  # a number includes integers
        unique.remove({"type": "integer"})
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def _comments(source: str) -> dict[str, str]:
    """Comments written beside (or just above) each ``name: ...`` or ``"name": ...`` line."""
    found: dict[str, str] = {}
    above: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        m = re.match(r"""\s*["']?(\w+)["']?\s*[:=][^#]*(?:#\s*(.*))?$""", line)
        if m and (m.group(2) or above):
            found.setdefault(m.group(1), m.group(2) or " ".join(above))
        above = []
    return found


def _block(module, name: str) -> str:
    """The source lines of the module-level table ``name``, up to the next blank line."""
    text = inspect.getsource(module)
    start = re.search(rf"^{name}\b.*$", text, re.M)
    return text[start.start():text.find("\n\n", start.start())] if start else ""


def _table(keys: Mapping[str, Any], detail: Mapping[str, dict] | None = None,
           notes: Mapping[str, str] | None = None, required=(), comments: Mapping[str, str] | None = None) -> dict:
    """A closed object schema: one property per loader key, typed from the loader's table.

    ``notes`` are written here and must name loader keys; ``comments`` are read from the
    source and may name other things, which are ignored.
    """
    detail, notes = dict(detail or {}), dict(notes or {})
    stale = (set(detail) | set(notes) | set(required)) - set(keys)
    if stale:  # the loader dropped or renamed a key the schema still describes
        raise KeyError(f"schema describes keys the loader does not know: {sorted(stale)}")
    notes = {**{k: v for k, v in (comments or {}).items() if k in keys}, **notes}
    properties = {}
    for key, want in keys.items():
        prop = json_type(want) if want is not None else {}
        if notes.get(key):
            prop["description"] = " ".join(notes[key].split())
        prop.update(detail.get(key, {}))
        properties[key] = prop
    out = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


def _merge(candidates: list[tuple[str, dict]]) -> dict[str, dict]:
    """One schema per key name from several (owner, {key: schema}) tables, as a union when they differ."""
    merged: dict[str, list[dict]] = {}
    for _, props in candidates:
        for key, prop in props.items():
            merged.setdefault(key, [])
            if prop not in merged[key]:
                merged[key].append(prop)
    return {k: v[0] if len(v) == 1 else {"anyOf": v} for k, v in merged.items()}


def _when(key: str, value: str, then: dict) -> dict:
    return {"if": {"properties": {key: {"const": value}}, "required": [key]}, "then": then}


# -- the parts ------------------------------------------------------------------------------------


def _action_params(name: str) -> dict[str, dict]:
    """The typed parameters of fault action ``name``, with bounds and item types from rules.py."""
    params = {}
    for key, want in rules.ACTIONS[name].items():
        prop = json_type(want)
        if key in rules._ITEMS:
            prop["items"] = json_type(rules._ITEMS[key])
        if key in rules._MINIMUM:
            prop["minimum"] = rules._MINIMUM[key]
        if name == "uidvalidity" and key == "mode":
            prop["enum"] = list(rules.UIDVALIDITY_MODES)
        params[key] = prop
    return params


def _matchers(keys=None) -> dict[str, dict]:
    notes = _comments(_block(rules, "MATCH_KEYS"))
    out = {}
    for key, want in rules.MATCH_KEYS.items():
        if keys is not None and key not in keys:
            continue
        prop = json_type(want)
        if key in rules._MINIMUM:
            prop["minimum"] = rules._MINIMUM[key]
        if key == "state":
            prop["enum"] = list(rules.STATES)
        if notes.get(key):
            prop["description"] = notes[key]
        out[key] = prop
    return out


def _per_action(names, base: list[str], params_of) -> list[dict]:
    """``if action = X then`` only X's parameters (besides ``base`` keys) may be written."""
    out = []
    for name in names:
        params = params_of(name)
        then: dict = {"properties": params, "propertyNames": {"enum": base + list(params)}}
        out.append(_when("action", name, then))
    return out


def fault_schema() -> dict:
    """A ``[[provider.faults]]`` rule: flat (``action`` beside the matchers) or with ``actions``."""
    notes = _comments(_block(rules, "ACTIONS"))
    action_enum = {"enum": list(rules.ACTIONS),
                   "description": "; ".join(f"{a}: {notes[a]}" for a in rules.ACTIONS if a in notes)}
    params = _merge([(a, _action_params(a)) for a in rules.ACTIONS])
    matchers = _matchers()
    base = ["on", "description", "action", "actions"]
    item_props = {"action": action_enum, **params}
    action_item = {"type": "object", "properties": item_props, "additionalProperties": False,
                   "required": ["action"], "allOf": _per_action(rules.ACTIONS, ["action"], _action_params)}
    keys = {"on": str, "description": str, "action": str, "actions": list,
            **{k: None for k in matchers}, **{k: None for k in params if k not in matchers}}
    detail = {"on": {"enum": list(rules.EVENTS)}, "action": action_enum,
              "actions": {"items": {"$ref": "#/$defs/faultAction"}, "minItems": 1},
              **matchers, **{k: v for k, v in params.items() if k not in matchers}}
    out = _table(keys, detail, NOTES["fault"], required=["on"])
    flat = _per_action(rules.ACTIONS, base + list(matchers), _action_params)
    # without a flat action, every key beside "actions" is a matcher
    flat.append({"if": {"not": {"required": ["action"]}}, "then": {"propertyNames": {"enum": base + list(matchers)}}})
    # per event: matcher keys it never carries are refused (a name that is also an action
    # parameter, like "status", is left to the loader), and so are actions it cannot carry out
    for event in rules.EVENTS:
        never = [k for k in matchers if k not in rules.EVENT_MATCH_KEYS[event] and k not in params]
        props: dict = {k: False for k in never}
        allowed = rules.EVENT_ACTIONS.get(event)
        if allowed is not None:
            props["action"] = {"enum": sorted(allowed)}
            props["actions"] = {"items": {"properties": {"action": {"enum": sorted(allowed)}}}}
        if props:
            flat.append(_when("on", event, {"properties": props}))
    out["allOf"] = flat
    out["anyOf"] = [{"required": ["action"]}, {"required": ["actions"]}]
    return {"fault": out, "faultAction": action_item}


def between_action_schema() -> dict:
    """A state action of ``[[between_runs]]``: a ``run`` rule, flat, on a state action."""
    names = list(scenario.STATE_ACTIONS)
    params = _merge([(a, _action_params(a)) for a in names])
    matchers = _matchers(rules.EVENT_MATCH_KEYS["run"])
    keys = {"action": str, "description": str, **{k: None for k in matchers}, **{k: None for k in params}}
    out = _table(keys, {"action": {"enum": names}, **matchers, **params},
                 {"description": NOTES["fault"]["description"]}, required=["action"])
    out["allOf"] = _per_action(names, ["action", "description"] + list(matchers), _action_params)
    return out


def provider_schema() -> dict:
    imap_hints = typing.get_type_hints(ImapConfig)
    imap_keys = {k: imap_hints[k] for k in pc.IMAP_KEYS if k != "texts"} | {"texts": dict}
    imap = _table(imap_keys, {"texts": {"$ref": "#/$defs/texts"}}, comments=_comments(inspect.getsource(ImapConfig)))
    imap["description"] = " ".join(ImapConfig.__doc__.split())
    text_keys = {f.name: str for f in dataclasses.fields(Texts) if f.name in pc.TEXT_KEYS}  # a set: keep field order
    texts = _table(text_keys, comments=_comments(inspect.getsource(Texts)))
    texts["description"] = " ".join(Texts.__doc__.split())
    message = _table(pc.MESSAGE_KEYS, {"flags": {"items": {"type": "string"}}}, NOTES["message"],
                     comments=_comments(_block(pc, "MESSAGE_KEYS")))
    message["oneOf"] = [{"required": ["raw"]}, {"required": ["file"]}]
    folder = _table(pc.FOLDER_KEYS, {"special_use": {"items": {"type": "string"}},
                                     "messages": {"items": {"$ref": "#/$defs/message"}}}, required=["name"],
                    comments=_comments(_block(pc, "FOLDER_KEYS")))
    account = _table(pc.ACCOUNT_KEYS, {
        "app_passwords": {"items": {"type": "string"}}, "oauth_tokens": {"items": {"type": "string"}},
        "uidvalidity_policy": {"enum": [p.value for p in UidValidityPolicy]},
        "uidvalidity_mode": {"enum": list(UidValidityMode.ALL)},
        "folders": {"items": {"$ref": "#/$defs/folder"}},
    }, NOTES["account"], required=["username", "password"])
    smtp_keys = {k: (pc._SMTP_TYPES.get(k) or type(f.default)) for k, f in pc.SMTP_KEYS.items() if k != "texts"}
    smtp = _table({**smtp_keys, "texts": dict}, {
        "texts": {"$ref": "#/$defs/smtpTexts"},
        "auth_mechanisms": {"items": {"enum": list(MECHANISMS)}},
        "deliver_to": {"items": {"enum": list(DELIVERY_TARGETS)}},
        **{k: {"items": {"type": "string"}} for k in ("ehlo_plaintext", "ehlo_tls", "ehlo_add", "ehlo_remove")},
        **{k: {"minimum": 0} for k, want in smtp_keys.items() if want in (int, (int, float))},
    }, comments=_comments(inspect.getsource(SmtpConfig)))
    smtp["description"] = " ".join(SmtpConfig.__doc__.split())
    smtp_texts = _table({f.name: str for f in dataclasses.fields(SmtpTexts) if f.name in pc.SMTP_TEXT_KEYS},
                        {name: {"pattern": "^[2-5][0-9][0-9]([ -]|$)"} for name in pc.SMTP_TEXT_KEYS})
    smtp_texts["description"] = " ".join(SmtpTexts.__doc__.split())
    provider = _table(pc.PROVIDER_KEYS, {
        "smtp": {"$ref": "#/$defs/smtp"},
        "cert": {"enum": [k.value for k in CertKind]},
        "tls_versions": {"enum": [v.value for v in TLSVersions]},
        "persona": {"enum": pc.personas()},
        "imap": {"$ref": "#/$defs/imap"},
        "accounts": {"items": {"$ref": "#/$defs/account"}},
        "faults": {"items": {"$ref": "#/$defs/fault"}},
        "discovery": {"$ref": "#/$defs/discovery"},
    }, NOTES["provider"])
    return {"provider": provider, "imap": imap, "texts": texts, "smtp": smtp, "smtpTexts": smtp_texts,
            "account": account, "folder": folder, "message": message}


def discovery_schema() -> dict:
    """``[provider.discovery]``: its keys, answers and records, from fake_servers.discovery.config."""
    from fake_servers.discovery import config as dc

    port = {"anyOf": [{"type": "integer", "minimum": 0}, {"enum": list(dc.LISTENERS)}],
            "description": "A port number, or the name of one of the fakes' listeners (its real port)."}
    name = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$"}
    setting = _table(dc.SETTING_KEYS, {"port": port, "security": {"enum": list(dc.SECURITY)}}, {
        "host": "The server's name (default imap.<domain> / smtp.<domain>).",
        "security": "ssl (implicit TLS, the default), starttls, or none (plaintext only).",
        "login_name": "The LoginName the answer gives (default: the address that was asked for)."})
    answer_detail = {"answer": {"enum": list(dc.ANSWERS)}, "imap": {"$ref": "#/$defs/discoverySetting"},
                     "smtp": {"$ref": "#/$defs/discoverySetting"}, "then": {"enum": [a for a in dc.ANSWERS
                                                                                       if a != "unauthorized"]},
                     "cloud": {"enum": list(dc.NATIONAL_CLOUDS)}, "hosts": {"items": name},
                     "delay": {"minimum": 0}, "address": {"pattern": "@"}, "url": {"pattern": "^https?://"},
                     "location": {"pattern": "^https?://"}}
    answer = _table(dc.ANSWER_KEYS, answer_detail, {
        "answer": "What the endpoint does (default success): " + ", ".join(dc.ANSWERS) + ".",
        "imap": "success: the IMAP server the settings name.", "smtp": "success: the SMTP server the settings name.",
        "address": "redirect_addr: the address to discover instead.", "url": "redirect_url: where to go instead.",
        "message": "error: the POX error's Message."},
        comments=_comments(inspect.getsource(dc.AutodiscoverAnswer)))
    answer["allOf"] = [_when("answer", kind, {"propertyNames": {"enum": ["answer", "delay", *sorted(uses)]}})
                       for kind, uses in dc.ANSWER_USES.items()]
    answer["allOf"].append({"if": {"not": {"required": ["answer"]}},  # no answer: "success"
                            "then": {"propertyNames": {"enum": ["delay", *sorted(dc.ANSWER_USES["success"])]}}})
    for kind, key in (("redirect_addr", "address"), ("redirect_url", "url")):
        answer["allOf"].append(_when("answer", kind, {"required": [key]}))
    answer["description"] = "What one Autodiscover endpoint answers (a string is short for {answer = ...})."
    endpoint = {"anyOf": [{"enum": list(dc.ANSWERS)}, {"$ref": "#/$defs/discoveryAnswer"}]}
    server = _table(dc.SERVER_KEYS, {"port": port, "socket": {"enum": list(dc.SOCKET_TYPES)},
                                     "type": {"enum": ["imap", "pop3", "smtp"]}}, required=["hostname", "port"],
                    comments=_comments(inspect.getsource(dc.AutoconfigServer)))
    autoconfig_answer = {"anyOf": [{"enum": list(dc.AUTOCONFIG_ANSWERS)}, _table(dc.AUTOCONFIG_ANSWER_KEYS, {
        "answer": {"enum": list(dc.AUTOCONFIG_ANSWERS)}, "delay": {"minimum": 0},
        "location": {"pattern": "^https?://"}})]}
    autoconfig = _table(dc.AUTOCONFIG_KEYS, notes={
        "display_name": "The provider's displayName (default: the domain).",
        "incoming": "incomingServer entries, in order (default: IMAP over TLS at imap.<domain>).",
        "outgoing": "outgoingServer entries, in order (default: SMTP over TLS at smtp.<domain>)."}, detail={
        "incoming": {"items": {"$ref": "#/$defs/autoconfigServer"}},
        "outgoing": {"items": {"$ref": "#/$defs/autoconfigServer"}},
        **{key: {**autoconfig_answer, "description": where} for key, where in dc.AUTOCONFIG_ENDPOINTS.items()}})
    srv = _table(dc.SRV_KEYS, {"service": {"pattern": r"^_[a-z0-9-]+\._(tcp|udp)$"}, "port": port,
                               "priority": {"minimum": 0}, "weight": {"minimum": 0}}, {
        "service": "_imap._tcp, _imaps._tcp, _submission._tcp, _submissions._tcp, _autodiscover._tcp, ...",
        "domain": "The owner's domain (default: the domain).",
        "target": 'A host name, or "." (the service is not available).'}, required=["service", "target"])
    mx = {"anyOf": [{"type": "string"}, _table(dc.MX_KEYS, {"preference": {"minimum": 0}}, required=["host"])]}
    oauth = _table(dc.OAUTH_KEYS, {"signing": {"enum": list(dc.SIGNING)}, "path": {"pattern": "^/"},
                                   "identity": {"pattern": "@"},
                                   **{k: {"minimum": 0} for k in ("lifetime", "uses", "until_run")}},
                   {"host": "The token endpoint's host (default login.<domain>).", "path": "Default /oauth2/token.",
                    "scope": "The scope the token answers name."},
                   comments=_comments(inspect.getsource(dc.OAuthConfig)))
    top = _table(dc.TOP_KEYS, {
        "names": {"items": name},
        "autodiscover": {"additionalProperties": endpoint,
                         "description": "Endpoint (" + ", ".join(dc.AUTODISCOVER_ENDPOINTS) + ", or a host name) "
                                        "-> what it answers; an endpoint not listed answers 404."},
        "autoconfig": {"$ref": "#/$defs/autoconfig"},
        "srv": {"items": {"$ref": "#/$defs/srvRecord"}},
        "mx": {"items": mx},
        "ttl": {"minimum": 0},
        "certs": {"additionalProperties": {"enum": list(dc.CERT_KINDS)}},
        "oauth": {"$ref": "#/$defs/oauth"},
    }, {"domain": "The account's domain (default example.test).",
        "autoconfig": "Present: Mozilla autoconfig is served.", "srv": "SRV records (RFC 6186, _autodiscover._tcp).",
        "mx": "MX records (default: one, mail.<domain>).", "ttl": "Seconds, in every DNS answer.",
        "oauth": "Present: the OAuth 2.0 token endpoint, https://login.<domain>/oauth2/token."},
        comments=_comments(inspect.getsource(dc.DiscoveryConfig)))
    top["description"] = " ".join(dc.__doc__.split("\n\n")[0].split())
    return {"discovery": top, "discoveryAnswer": answer, "discoverySetting": setting, "autoconfig": autoconfig,
            "autoconfigServer": server, "srvRecord": srv, "oauth": oauth}


def _param_schema(spec: registry.CheckSpec, key: str) -> dict:
    prop = json_type(spec.params[key])
    target = prop.get("items", prop) if prop.get("type") == "array" else prop
    if key in spec.choices:
        target["enum"] = list(spec.choices[key])
    if key in spec.minimum:
        prop["minimum"] = spec.minimum[key]
    default = spec.defaults.get(key)
    if default is not None:
        prop["default"] = default
    return prop


def check_schema() -> dict:
    """A ``[[checks]]`` entry: ``check`` names a registered check, which decides the other keys."""
    per_check = {name: {k: _param_schema(spec, k) for k in spec.params} for name, spec in registry.CHECKS.items()}
    every = _merge(list(per_check.items()))
    for key, prop in every.items():
        owners = [n for n, params in per_check.items() if key in params]
        every[key] = {**prop, "description": f"Parameter of {', '.join(owners)}."}
    out = _table({"check": str, "level": str, **{k: None for k in every}},
                 {"check": {"enum": list(registry.CHECKS)}, "level": {"$ref": "#/$defs/level"}, **every},
                 {"check": "A registered check (see docs/scenarios.md).",
                  "level": "Overrides the scenario's level for this check."}, required=["check"])
    out["allOf"] = []
    for name, spec in registry.CHECKS.items():
        then = {"description": spec.doc, "properties": {"check": {"const": name}, "level": {}, **per_check[name]},
                "additionalProperties": False}
        if spec.required:
            then["required"] = spec.required
        out["allOf"].append(_when("check", name, then))
    return out


def outbox_schema() -> dict:
    """An ``[[outbox]]`` table: one of raw, file or generate; the generated-only keys need generate."""
    out = _table(scenario.OUTBOX_KEYS, {
        "to": {"items": {"type": "string", "pattern": "@"}},
        "generate": {"minimum": 1}, "size": {"minimum": 0}, "recipients": {"minimum": 0}, "run": {"minimum": 1},
    }, comments=_comments(_block(scenario, "OUTBOX_KEYS")))
    out["oneOf"] = [{"required": ["raw"]}, {"required": ["file"]}, {"required": ["generate"]}]
    out["allOf"] = [{"if": {"not": {"required": ["generate"]}},
                     "then": {"properties": {k: False for k in scenario.GENERATED_ONLY}}}]
    out["description"] = "One message (raw or file, with a Message-ID and a recipient) or generated ones."
    return out


def scenario_schema() -> dict:
    """The whole schema; ``docs/scenario-schema.json`` is this, as ``mailconform schema`` prints it."""
    client_hints = typing.get_type_hints(scenario.ClientSetup)
    client = _table({k: client_hints[k] for k in scenario.CLIENT_KEYS}, {
        "imap_security": {"enum": list(scenario.SECURITY)},
        "smtp_security": {"enum": list(scenario.SECURITY)},
        "imap_endpoint": {"enum": list(scenario.ENDPOINTS)},
        "smtp_endpoint": {"enum": list(scenario.ENDPOINTS)},
    }, NOTES["client"], comments=_comments(inspect.getsource(scenario.ClientSetup)))
    between = _table(scenario.BETWEEN_KEYS, {
        "after": {"minimum": 1},  # the loader also wants it below runs
        "actions": {"items": {"$ref": "#/$defs/betweenAction"}},
    }, NOTES["between_runs"])
    top = _table(scenario.TOP_KEYS, {
        "level": {"$ref": "#/$defs/level"},
        "tags": {"items": {"type": "string"}},
        "needs": {"items": {"enum": list(scenario.FEATURES)}},
        "runs": {"minimum": 1},
        "client": {"$ref": "#/$defs/client"},
        "provider": {"$ref": "#/$defs/provider"},
        "between_runs": {"items": {"$ref": "#/$defs/betweenRuns"}},
        "checks": {"items": {"$ref": "#/$defs/check"}, "minItems": 1},
        "outbox": {"items": {"$ref": "#/$defs/outbox"}},
    }, NOTES["scenario"], required=[*scenario.REQUIRED, "checks"])
    doc = scenario.__doc__.split("\n\n")[0]
    return {
        "$schema": DRAFT,
        "$id": "https://mailconform.invalid/scenario-schema.json",
        "title": "mailconform scenario",
        "description": f"{doc} Generated by `mailconform schema` from the loader's tables.",
        **top,
        "$defs": {
            "level": {"enum": list(LEVELS)},
            "client": client,
            **provider_schema(),
            **discovery_schema(),
            **fault_schema(),
            "betweenRuns": between,
            "betweenAction": between_action_schema(),
            "outbox": outbox_schema(),
            "check": check_schema(),
        },
    }


def schema_json() -> str:
    """The schema as written to docs/scenario-schema.json (stable order, UTF-8, final newline)."""
    return json.dumps(scenario_schema(), indent=2, ensure_ascii=False) + "\n"


# -- the check table of docs/scenarios.md -----------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def checks_markdown() -> str:
    """The table of every registered check, as docs/scenarios.md carries it (a test compares)."""
    rows = ["| check | parameters | rule |", "|---|---|---|"]
    for name, spec in registry.CHECKS.items():
        params = []
        for key, want in spec.params.items():
            words = [registry._type_name(want)]
            if key in spec.choices:
                words.append("one of " + ", ".join(f"`{c}`" for c in spec.choices[key]))
            if key in spec.minimum:
                words.append(f"at least {spec.minimum[key]:g}")
            if key not in spec.defaults:
                words.append("**required**")
            elif spec.defaults[key] is not None:
                words.append(f"default `{json.dumps(spec.defaults[key], ensure_ascii=False)}`")
            params.append(f"`{key}`: {', '.join(words)}")
        rows.append(f"| `{name}` | {_cell('; '.join(params)) or '—'} | {_cell(spec.doc)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m harness.schema checks: the table for docs/scenarios.md
    import sys

    sys.stdout.write(checks_markdown() if sys.argv[1:] == ["checks"] else schema_json())
