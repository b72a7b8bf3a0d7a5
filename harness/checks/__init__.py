"""The check library: named rules a scenario lists, each turning an Observation into a CheckResult.

A check is a function ``fn(obs, level, **params) -> CheckResult`` registered with
:func:`check`. Scenario files name checks and their parameters as data, so loading is strict
(:func:`validate`): an unknown check or parameter is an error naming the closest valid one,
because a typo that silently drops a check would let a scenario pass for the wrong reason.
:func:`run` never lets a check's own defect escape: it becomes ``passed=None`` with
``error`` set, which the verdict turns into ERROR.

Typical use by the runner, for each check a scenario lists::

    validate("max_connections", {"n": 2})                   # when the scenario file is loaded
    result = run("max_connections", obs, "MUST", {"n": 2})  # after the runs: a CheckResult
"""

from __future__ import annotations

import difflib
import functools
import inspect
import traceback
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..verdicts import LEVELS, CheckResult
from .evidence import redact

CheckFn = Callable[..., CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    """What a scenario may write about one check: its parameters, their types and the rule."""

    name: str
    fn: CheckFn
    params: dict[str, Any]  # parameter -> type (int, float, str, bool, list[str], ...)
    doc: str
    defaults: dict[str, Any] = field(default_factory=dict)  # parameters that may be left out
    choices: dict[str, tuple] = field(default_factory=dict)  # parameters with a closed set of values
    minimum: dict[str, float] = field(default_factory=dict)

    @property
    def required(self) -> list[str]:
        return [p for p in self.params if p not in self.defaults]

    def signature(self) -> str:
        """``name(param=default, ...)`` as a scenario author writes it."""
        parts = [p if p not in self.defaults else f"{p}={self.defaults[p]!r}" for p in self.params]
        return f"{self.name}({', '.join(parts)})"


CHECKS: dict[str, CheckSpec] = {}


def check(name: str, params: dict[str, Any] | None = None, doc: str = "", *,
          choices: dict[str, Iterable] | None = None, minimum: dict[str, float] | None = None):
    """Register ``fn(obs, level, **params)`` under ``name``; defaults come from its signature.

    The declared parameters must be exactly the function's keyword parameters, so the
    registry and the code cannot drift apart.
    """
    params = dict(params or {})

    def register(fn: CheckFn) -> CheckFn:
        if name in CHECKS:
            raise ValueError(f"check {name!r} is registered twice")
        sig = inspect.signature(fn)
        names = list(sig.parameters)[2:]  # after (obs, level)
        if sorted(names) != sorted(params):
            raise TypeError(f"check {name!r}: declared parameters {sorted(params)} differ from "
                            f"the function's {sorted(names)}")
        ordered = {p: params[p] for p in names}  # the function's order, as a signature shows it
        defaults = {p: sig.parameters[p].default for p in names
                    if sig.parameters[p].default is not inspect.Parameter.empty}

        @functools.wraps(fn)
        def named(obs, level, **kwargs) -> CheckResult:
            result = fn(obs, level, **kwargs)
            if isinstance(result, CheckResult):
                result.check = name
                _scrub(result, obs)
            return result

        CHECKS[name] = CheckSpec(name, named, ordered, " ".join(doc.split()), defaults,
                                 {k: tuple(v) for k, v in (choices or {}).items()}, dict(minimum or {}))
        return named

    return register


def _scrub(result: CheckResult, obs) -> None:
    """Hide the client's secrets wherever evidence quotes what it sent (a password may sit in
    any command a client got wrong, not only where the fakes' redaction expects it)."""
    secrets = list(getattr(obs, "secrets", ()) or ())
    password = getattr(obs, "password", None)
    if password:
        secrets.append(password.encode("utf-8"))
    if not secrets:
        return
    for e in result.evidence:
        e.observed, e.expected, e.wire = (redact(e.observed, secrets), redact(e.expected, secrets),
                                          redact(e.wire, secrets))


# -- strict validation ---------------------------------------------------------------------------


def closest(word: str, valid: Iterable[str] | None = None) -> str | None:
    """The valid word ``word`` was most likely meant to be (check names by default), or None."""
    pool = list(CHECKS if valid is None else valid)
    match = difflib.get_close_matches(word, pool, n=1, cutoff=0.5)
    if not match:  # "credentials_before_tls" is a part of the name it means
        match = [w for w in pool if word and (word in w or w in word)][:1]
    return match[0] if match else None


def _suggest(word: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    match = closest(word, valid)
    if match is not None:
        return f" (did you mean {match!r}?)"
    return f" (valid: {', '.join(sorted(valid))})" if valid else " (it takes no parameters)"


def validate(name: str, params: dict[str, Any] | None) -> None:
    """Raise ValueError, naming the closest valid word, unless ``name(**params)`` is a valid check."""
    spec = CHECKS.get(name)
    if spec is None:
        raise ValueError(f"unknown check {name!r}{_suggest(name, CHECKS)}")
    params = params or {}
    if not isinstance(params, dict):
        raise ValueError(f"check {name!r}: parameters are a table, not {type(params).__name__}")
    for key, value in params.items():
        if key not in spec.params:
            raise ValueError(f"check {name!r} has no parameter {key!r}{_suggest(key, spec.params)}")
        want = spec.params[key]
        if not (value is None and spec.defaults.get(key, ...) is None) and not _type_ok(value, want):
            raise ValueError(f"check {name!r}: {key!r} must be {_type_name(want)}, "
                             f"not {type(value).__name__} {value!r}")
        allowed = spec.choices.get(key)
        if allowed is not None and value is not None:
            for item in value if isinstance(value, list) else [value]:
                if item not in allowed:
                    raise ValueError(f"check {name!r}: {key!r} is one of {', '.join(map(str, allowed))}, "
                                     f"not {item!r}{_suggest(str(item), map(str, allowed))}")
        low = spec.minimum.get(key)
        if low is not None and value is not None and value < low:
            raise ValueError(f"check {name!r}: {key!r} must be at least {low:g}, not {value!r}")
    missing = [p for p in spec.required if p not in params]
    if missing:
        raise ValueError(f"check {name!r} needs {', '.join(repr(p) for p in missing)}: {spec.signature()}")


def _type_ok(value: Any, want: Any) -> bool:
    origin = typing.get_origin(want)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arm) for arm in typing.get_args(want))
    if want is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(want) or (Any,)
        return isinstance(value, list) and all(item is Any or _type_ok(v, item) for v in value)
    if isinstance(value, bool):
        return want is bool
    if want is float:
        return isinstance(value, (int, float))
    return isinstance(value, want)


def _type_name(want: Any) -> str:
    origin = typing.get_origin(want)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arm) for arm in typing.get_args(want) if arm is not type(None))
    if origin is list:
        (item,) = typing.get_args(want) or (Any,)
        return "a list" if item is Any else f"a list of {_type_name(item).split(' ', 1)[-1]}s"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        want, getattr(want, "__name__", str(want)))


# -- running -------------------------------------------------------------------------------------


def run(name: str, obs, level: str, params: dict[str, Any] | None = None) -> CheckResult:
    """Run one check; any exception inside it becomes an undecided result, never a crash."""
    safe_level = level if level in LEVELS else "MUST"
    try:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        validate(name, params)
        spec = CHECKS[name]
        result = spec.fn(obs, level, **{**spec.defaults, **(params or {})})
        if not isinstance(result, CheckResult):
            raise TypeError(f"returned {type(result).__name__}, not a CheckResult")
        return result
    except Exception as exc:  # the check could not decide: ERROR, with where it failed
        return CheckResult(check=name, passed=None, level=safe_level, error=_describe(exc))


def _describe(exc: Exception) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


# The checks register themselves on import.
from . import outcome, store, wire  # noqa: E402,F401
from . import smtp  # noqa: E402,F401  (after wire: it reuses wire's helpers)
from . import discovery  # noqa: E402,F401  (account discovery and OAuth)

__all__ = ["CHECKS", "CheckSpec", "check", "closest", "run", "validate"]
