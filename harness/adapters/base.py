"""What every adapter is: a name, the features it declares, and one way to run a client."""

from __future__ import annotations

import difflib
import threading
from typing import Callable, Iterable, Union

from ..outcome import Outcome
from .context import ClientContext

# Features a client may declare (CONTRACT.md). A scenario needing one the client lacks is
# UNSUPPORTED, not FAIL.
FEATURES = frozenset({"imap", "smtp", "idle", "twoway", "autodiscover", "oauth2"})

# What a client declares when it says nothing: it syncs mail over IMAP.
DEFAULT_FEATURES = frozenset({"imap"})

# What a daemon's run waits for: a predicate, or anything with ``is_set()`` (threading.Event).
Until = Union[Callable[[], bool], threading.Event, None]


class AdapterError(ValueError):
    """The client cannot be run as configured (bad template, bad spec, missing program).

    A ValueError, so the CLI can report it as bad usage before any scenario runs.
    """


def closest(word: str, valid: Iterable[str]) -> str:
    """' (did you mean 'x'?)' or the list of valid words, for error messages."""
    valid = sorted(valid)
    match = difflib.get_close_matches(word, valid, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (valid: {', '.join(valid)})"


def parse_features(features: Iterable[str] | str | None) -> frozenset[str]:
    """Features from an iterable or a comma-separated string (the CLI's ``--features``)."""
    if features is None:
        return DEFAULT_FEATURES
    if isinstance(features, str):
        features = features.split(",")
    out = set()
    for name in features:
        name = name.strip().lower()
        if not name:
            continue
        if name not in FEATURES:
            raise AdapterError(f"unknown feature {name!r}{closest(name, FEATURES)}; "
                               f"features are {', '.join(sorted(FEATURES))}")
        out.add(name)
    return frozenset(out)


class Adapter:
    """How the harness runs one client. Subclasses set ``kind`` and implement ``run``.

    One-shot adapters (command, python) keep no state between runs and may serve parallel
    scenarios; ``start``/``stop`` do nothing for them. A daemon adapter runs one daemon at a
    time: use ``fresh()`` to get an independent instance per parallel scenario.
    """

    kind = "adapter"

    def __init__(self, name: str, features: Iterable[str] | str | None = None) -> None:
        self.name = name
        self.features = parse_features(features)

    def supports(self, needed: Iterable[str]) -> set[str]:
        """The features in ``needed`` this client did not declare (empty: supported).

        Unknown names are an error, so a typo in a scenario does not turn into UNSUPPORTED.
        """
        return set(parse_features(needed or ())) - self.features

    def start(self, ctx: ClientContext) -> None:
        """Before a scenario's first run. Only daemons do something here."""

    def run(self, ctx: ClientContext, deadline: float, until: Until = None) -> Outcome:
        """Run the client once; ``deadline`` is in seconds from now.

        ``until`` matters only to daemons (see ``DaemonAdapter.run``); one-shot clients end
        a run by exiting.
        """
        raise NotImplementedError

    def stop(self) -> Outcome | None:
        """After a scenario's last run. Only daemons return an outcome here."""
        return None

    def fresh(self) -> "Adapter":
        """An instance that can run alongside this one (stateless adapters return self)."""
        return self

    def describe(self) -> str:
        """How the client is run, for reports (templates unrendered: no credentials)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()} features={sorted(self.features)}>"
