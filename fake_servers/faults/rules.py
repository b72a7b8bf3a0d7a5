"""Fault rules: on an event, when a matcher holds, do an action.

Rules are data so that scenario files can carry them. Loading is strict: an unknown key,
event or action is an error that names the closest valid word, because a typo that silently
disables a fault would make a scenario pass for the wrong reason. For the same reason a
matcher key the event never carries (``command`` on ``connect``), an action the event cannot
carry out (``reset`` at a ``run`` boundary), an unknown state or UIDVALIDITY mode, and an
out-of-range number are errors too.

Events: ``connect`` (accepted), ``tls`` (handshake done), ``greeting``, ``command``
(received; its state actions happen before it runs, and ``reply``, ``bye``, ``close``,
``reset`` and ``stall`` keep it from running), ``response`` (its tagged response is about to
be sent, after it ran: ``reply`` there changes what the client is told, not what was done),
``idle`` (the client has just entered IDLE), ``run`` (a run boundary: state actions only).

The same rules script the SMTP submission fake (``protocol = "smtp"`` keeps a rule to it,
``protocol = "imap"`` to IMAP; without it a rule applies to both):

- ``connect``, ``greeting``, ``tls`` as for IMAP; on the implicit-TLS port (smtps) a
  ``reply`` or ``bye`` at ``connect`` is said once the handshake is done, a ``close`` or
  ``reset`` happens before it.
- ``command``: ``command`` matches the verb upper-cased (``EHLO``, ``HELO``, ``STARTTLS``,
  ``AUTH``, ``MAIL``, ``RCPT``, ``DATA``, ``RSET``, ``NOOP``, ``QUIT``, ``VRFY``, ``HELP``,
  an unknown verb as sent), ``CONTINUATION`` (an AUTH response line) and ``END-OF-DATA``
  (the message, at its final dot: a ``reply`` there answers instead of the fake, so nothing
  is delivered).
- ``response``: the command's final reply is about to be sent (334 challenges are not final;
  DATA's is the 354, the message's is ``END-OF-DATA``'s); ``status`` matches its 3-digit
  code. ``reply`` replaces it; on ``END-OF-DATA`` the message was delivered all the same, and
  ``reset`` there is "disconnect after the final dot": delivered, never acknowledged.
- Actions: ``reply`` takes an SMTP ``status`` ("421"), an enhanced ``code`` ("4.7.0") and
  ``text``; ``bye`` is a 421 reply (``code`` and ``text`` as given) followed by a close;
  ``untagged`` sends its ``lines`` as raw extra reply lines, and with ``when = "after"`` on a
  STARTTLS ``response`` they go out in plaintext after the 220, before the handshake
  (response injection); ``capabilities`` adds or removes EHLO extension lines.

>>> rule = Rule.from_dict({"on": "command", "command": "LOGIN", "nth": 1,
...                        "action": "reply", "status": "NO", "code": "UNAVAILABLE",
...                        "text": "Temporary authentication failure"})
"""

from __future__ import annotations

import difflib
import random
from dataclasses import dataclass, field
from typing import Any, Mapping

EVENTS = ("connect", "greeting", "command", "response", "tls", "idle", "run")

# action name -> allowed parameters (name: type)
ACTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "reply": {"status": str, "code": str, "text": str},  # answer instead of executing
    "untagged": {"lines": list, "when": str},  # extra lines "before" (default) or "after" the response
    "bye": {"text": str, "code": str},  # * BYE then close
    "close": {},  # close after pending output
    "reset": {},  # TCP RST, now
    "delay": {"seconds": (int, float)},  # hold this output back
    "stall": {},  # stop answering; keep the connection open
    "latency": {"seconds": (int, float), "jitter": (int, float)},  # every later write
    "bandwidth": {"bytes_per_second": int},  # cap downstream from now on
    "slice": {"size": int},  # cut every later write into pieces of this size
    "truncate": {"after_bytes": int, "then": str},  # send N more bytes, then "reset" or "close"
    "uidvalidity": {"mode": str, "folder": str},  # new UIDVALIDITY epoch (keep/renumber/shuffle)
    "expunge": {"folder": str, "count": int, "uids": list},
    "new_mail": {"folder": str, "count": int, "raw": str},
    "capabilities": {"add": list, "remove": list},  # change what CAPABILITY lists from now on
}

MATCH_KEYS: dict[str, type | tuple[type, ...]] = {
    "protocol": str,  # "imap" or "smtp"; absent: both
    "command": str,  # "LOGIN", "UID FETCH", "SELECT", "MAIL", "END-OF-DATA", "*"
    "session": int,  # 1-based connection number to this server
    "run": int,
    "nth": int,  # only the nth occurrence that matches everything else
    "after": int,  # only occurrences after the first K that match
    "times": int,  # fire at most this many times
    "state": str,
    "tls": bool,
    "user": str,
    "status": str,  # for "response": the tagged status (IMAP) or reply code (SMTP) about to be sent
    "connections_over": int,  # more than N connections open to this server (this one included)
    "probability": (int, float),
}

# Which matcher keys mean something for each event (a key whose value the event never has
# would make the rule silently inert, so it is refused).
_COUNTING = ("nth", "after", "times", "probability")
_CONNECTION = ("protocol", "session", "run", "connections_over")
EVENT_MATCH_KEYS: dict[str, frozenset[str]] = {
    "connect": frozenset(_COUNTING + _CONNECTION),
    "greeting": frozenset(_COUNTING + _CONNECTION + ("tls",)),
    "tls": frozenset(_COUNTING + _CONNECTION),
    "command": frozenset(_COUNTING + _CONNECTION + ("command", "state", "tls", "user")),
    "response": frozenset(_COUNTING + _CONNECTION + ("command", "state", "tls", "user", "status")),
    "idle": frozenset(_COUNTING + _CONNECTION + ("state", "tls", "user")),
    "run": frozenset(_COUNTING + ("run",)),
}

STATE_ACTIONS = ("uidvalidity", "expunge", "new_mail", "capabilities")
# Which actions each event can carry out: at a run boundary there is no connection, and after a
# TLS handshake or at the start of IDLE there is no command to reply to.
EVENT_ACTIONS: dict[str, frozenset[str]] = {
    "run": frozenset(STATE_ACTIONS),
    "tls": frozenset(ACTIONS) - {"reply"},
    "idle": frozenset(ACTIONS) - {"reply"},
}

STATES = ("not-authenticated", "authenticated", "selected")  # SMTP sessions have the first two
PROTOCOLS = ("imap", "smtp")
UIDVALIDITY_MODES = ("keep", "renumber", "shuffle")

# Lowest allowed value of numeric keys and parameters.
_MINIMUM: dict[str, float] = {
    "session": 1, "run": 1, "nth": 1, "after": 0, "times": 0, "connections_over": 0,
    "seconds": 0, "jitter": 0, "bytes_per_second": 1, "size": 1, "after_bytes": 0, "count": 1,
}
# Element types of list parameters.
_ITEMS: dict[str, type] = {"lines": str, "add": str, "remove": str, "uids": int}


class RuleError(ValueError):
    """A fault rule that cannot be understood; the message names the closest valid word.

    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key  # the offending key or value, so file loaders can point at its line


def closest(word: str, valid) -> str:
    match = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (valid: {', '.join(sorted(valid))})"


@dataclass(frozen=True)
class Action:
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({inner})"


@dataclass(frozen=True)
class Matcher:
    protocol: str | None = None
    command: str | None = None
    session: int | None = None
    run: int | None = None
    nth: int | None = None
    after: int | None = None
    times: int | None = None
    state: str | None = None
    tls: bool | None = None
    user: str | None = None
    status: str | None = None
    connections_over: int | None = None
    probability: float | None = None

    def holds(self, ctx: Mapping[str, Any]) -> bool:
        """Whether the static conditions hold (counting conditions are the engine's)."""
        if self.protocol is not None and ctx.get("protocol", "imap") != self.protocol:
            return False  # the IMAP fake's contexts do not name their protocol
        if self.command is not None and self.command != "*" and ctx.get("command") != self.command:
            return False
        for key in ("session", "run", "state", "tls", "user", "status"):
            want = getattr(self, key)
            if want is not None and ctx.get(key) != want:
                return False
        if self.connections_over is not None and ctx.get("open_connections", 0) <= self.connections_over:
            return False
        return True


@dataclass(frozen=True)
class Rule:
    on: str
    match: Matcher
    actions: tuple[Action, ...]
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "rule") -> "Rule":
        """Build a rule from its data form, strictly.

        The data form is flat: ``on``, the matcher keys, then either ``action`` plus that
        action's parameters, or ``actions`` as a list of ``{action: ..., params...}``. A key
        that is both (``status``) belongs to the flat action.
        """
        if not isinstance(data, Mapping):
            raise RuleError(f"{where}: a fault rule is a table of keys, not {type(data).__name__}")
        on = data.get("on")
        if on is None:
            raise RuleError(f"{where}: missing 'on' (one of: {', '.join(EVENTS)})", "on")
        if on not in EVENTS:
            raise RuleError(f"{where}: unknown event {on!r}{closest(str(on), EVENTS)}", str(on))
        match_args: dict[str, Any] = {}
        action_specs: list[Mapping[str, Any]] = []
        flat_action: dict[str, Any] = {}
        # In the flat form a parameter of the named action wins over a matcher key of the same
        # name ("status" of "reply"); to match on the status as well, use the "actions" list.
        flat_name = data.get("action")
        if flat_name is not None and flat_name not in ACTIONS:
            raise RuleError(f"{where}.action: unknown action {flat_name!r}{closest(str(flat_name), ACTIONS)}",
                            str(flat_name))
        flat_params = ACTIONS.get(flat_name, {})
        for key, value in data.items():
            if key in ("on", "description"):
                continue
            if key in MATCH_KEYS and key not in flat_params:
                _check_type(where, key, value, MATCH_KEYS[key])
                if key not in EVENT_MATCH_KEYS[on]:
                    raise RuleError(f"{where}: {key!r} never matches on {on!r} events (keys for {on!r}: "
                                    f"{', '.join(sorted(EVENT_MATCH_KEYS[on]))})", key)
                _check_minimum(where, key, value)
                match_args[key] = value.upper() if key in ("command", "status") and isinstance(value, str) else value
            elif key == "actions":
                if not isinstance(value, list) or not value:
                    raise RuleError(f"{where}: 'actions' is a non-empty list of tables", key)
                action_specs.extend(value)
            else:
                flat_action[key] = value
        if flat_action:
            if "action" not in flat_action:
                valid = set(MATCH_KEYS) | {"on", "description", "action", "actions"}
                key = next(iter(flat_action))
                raise RuleError(f"{where}: unknown key {key!r}{closest(key, valid)}", key)
            action_specs.insert(0, flat_action)
        if not action_specs:
            raise RuleError(f"{where}: a rule needs 'action' (one of: {', '.join(ACTIONS)})", "on")
        actions = tuple(_action(spec, f"{where}.action" if i == 0 else f"{where}.actions[{i}]")
                        for i, spec in enumerate(action_specs))
        allowed = EVENT_ACTIONS.get(on)
        for action in actions:
            if allowed is not None and action.name not in allowed:
                raise RuleError(f"{where}: action {action.name!r} cannot be done on {on!r} events "
                                f"(actions for {on!r}: {', '.join(sorted(allowed))})", action.name)
        probability = match_args.get("probability")
        if probability is not None and not 0 <= probability <= 1:
            raise RuleError(f"{where}: probability must be between 0 and 1, not {probability}", "probability")
        protocol = match_args.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            raise RuleError(f"{where}: unknown protocol {protocol!r}{closest(protocol, PROTOCOLS)}", "protocol")
        state = match_args.get("state")
        if state is not None and state not in STATES:
            raise RuleError(f"{where}: unknown state {state!r}{closest(state, STATES)}", "state")
        return cls(on, Matcher(**match_args), actions, str(data.get("description", "")))


def _action(spec: Mapping[str, Any], where: str) -> Action:
    if not isinstance(spec, Mapping):
        raise RuleError(f"{where}: an action is a table, not {type(spec).__name__}")
    name = spec.get("action")
    if name not in ACTIONS:
        raise RuleError(f"{where}: unknown action {name!r}{closest(str(name), ACTIONS)}", str(name))
    allowed = ACTIONS[name]
    params = {}
    for key, value in spec.items():
        if key == "action":
            continue
        if key not in allowed:
            valid = set(allowed) | set(MATCH_KEYS) | {"action"}
            raise RuleError(f"{where}: action {name!r} has no parameter {key!r}{closest(key, valid)}", key)
        _check_type(where, key, value, allowed[key])
        if key in _ITEMS:
            for item in value:
                _check_type(where, f"{key}[]", item, _ITEMS[key])
        _check_minimum(where, key, value)
        params[key] = value
    if name == "reply" and not params.get("status"):
        raise RuleError(f"{where}: action 'reply' needs 'status' (OK, NO, BAD, or an SMTP code)", name)
    _check_choice(where, params, "then", ("reset", "close"))
    _check_choice(where, params, "when", ("before", "after"))
    if name == "uidvalidity":
        _check_choice(where, params, "mode", UIDVALIDITY_MODES)
    return Action(name, params)


def _check_choice(where: str, params: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> None:
    value = params.get(key)
    if value is not None and value not in choices:
        raise RuleError(f"{where}: {key!r} is one of {', '.join(choices)}, not {value!r}{closest(value, choices)}",
                        key)


def _check_minimum(where: str, key: str, value: Any) -> None:
    low = _MINIMUM.get(key)
    if low is not None and value < low:
        raise RuleError(f"{where}: {key!r} must be at least {low:g}, not {value!r}", key)


def _check_type(where: str, key: str, value: Any, want: type | tuple[type, ...]) -> None:
    wants = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool) and bool not in wants:
        ok = False
    else:
        ok = isinstance(value, wants)
    if not ok:
        names = " or ".join(t.__name__ for t in wants)
        raise RuleError(f"{where}: {key!r} must be {names}, not {type(value).__name__} {value!r}",
                        key.removesuffix("[]"))


@dataclass
class Firing:
    """A rule that fired: kept as evidence of what the fake did on purpose."""

    rule: Rule
    ctx: dict[str, Any]


class FaultEngine:
    """Decides, deterministically for a seed, which rules fire for an event."""

    def __init__(self, rules: list[Rule] | tuple[Rule, ...] = (), seed: int = 0) -> None:
        self.rules = list(rules)
        self.seed = seed
        self._rng = random.Random(seed)
        self._seen: dict[int, int] = {}
        self._fired: dict[int, int] = {}
        self.firings: list[Firing] = []
        self.events = {rule.on for rule in self.rules}  # what some rule acts on (read on hot paths)

    def add(self, rule: Rule) -> None:
        self.rules.append(rule)
        self.events.add(rule.on)

    def wants(self, event: str) -> bool:
        """Cheap test so the hot path skips building a context when no rule listens."""
        return event in self.events

    def decide(self, event: str, ctx: Mapping[str, Any]) -> list[tuple[Rule, Action]]:
        if event not in self.events:
            return []
        chosen: list[tuple[Rule, Action]] = []
        for index, rule in enumerate(self.rules):
            if rule.on != event or not rule.match.holds(ctx):
                continue
            m = rule.match
            seen = self._seen.get(index, 0) + 1
            self._seen[index] = seen
            if m.nth is not None and seen != m.nth:
                continue
            if m.after is not None and seen <= m.after:
                continue
            if m.times is not None and self._fired.get(index, 0) >= m.times:
                continue
            if m.probability is not None and self._rng.random() >= m.probability:
                continue
            self._fired[index] = self._fired.get(index, 0) + 1
            self.firings.append(Firing(rule, dict(ctx)))
            chosen.extend((rule, action) for action in rule.actions)
        return chosen
