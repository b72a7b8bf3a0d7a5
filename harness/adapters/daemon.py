"""Long-running clients: started once per scenario, kept running while the harness changes the
server (new mail, IDLE timeouts, throttling), stopped at the end.

The life of one scenario::

    adapter.start(ctx)                                  # same rendering and environment as command
    outcome = adapter.run(ctx, deadline, until=pred)    # per run: let it work until pred() or deadline
    final = adapter.stop()                              # SIGTERM, `grace` seconds, SIGKILL

A daemon sees the environment of ``start`` (its ``MAILCONFORM_RUN`` stays that of the first
run): a running process's environment cannot be changed.
"""

from __future__ import annotations

import copy
import signal
import time
from pathlib import Path
from typing import Callable, Iterable

from ..outcome import Outcome
from .base import AdapterError, Until
from .context import ClientContext
from .launch import Launcher
from .process import OUTPUT_LIMIT, Capture, ClientProcess


class DaemonAdapter(Launcher):
    """``DaemonAdapter(template, config_template=None, features=None, grace=5.0, *,
    shell=False, output_limit=1 MiB, name=None, poll=0.05, config_text=None)``.

    One instance runs one daemon at a time; use ``fresh()`` for parallel scenarios.
    """

    kind = "daemon"

    def __init__(self, template: str, config_template: str | Path | None = None,
                 features: Iterable[str] | str | None = None, grace: float = 5.0, *,
                 shell: bool = False, output_limit: int = OUTPUT_LIMIT,
                 name: str | None = None, poll: float = 0.05,
                 config_text: str | None = None) -> None:
        super().__init__(template, config_template, features, shell, grace=grace,
                         output_limit=output_limit, name=name, config_text=config_text)
        if poll <= 0:
            raise ValueError("poll must be > 0")
        self.poll = poll  # how often a predicate is evaluated while waiting
        self._process: ClientProcess | None = None
        self._scenario: str | None = None
        self._last: Outcome | None = None

    @property
    def running(self) -> bool:
        """Whether the daemon's first process is alive (False before start and after stop)."""
        return self._process is not None and self._process.wait(0) is None

    def start(self, ctx: ClientContext) -> None:
        if self._process is not None:
            raise AdapterError(f"daemon {self.name!r} is already running (scenario "
                               f"{self._scenario}); stop() it first, or use fresh()")
        self._process = self.launch(ctx)
        self._scenario = ctx.scenario
        self._last = None

    def wait_until(self, until: Until, deadline: float) -> bool:
        """Wait until ``until`` holds (a predicate, or a ``threading.Event``), at most
        ``deadline`` seconds, or until the daemon exits. Returns whether it holds.

        The predicate is evaluated every ``poll`` seconds in the calling thread; an exception
        from it propagates (a harness error, not the client's).
        """
        process = self._require()
        check = _predicate(until)
        end = time.monotonic() + max(0.0, deadline)
        while True:
            if check():
                return True
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            if process.wait(min(self.poll, remaining)) is not None:
                return bool(check())  # work done just before it exited still counts

    def run(self, ctx: ClientContext, deadline: float, until: Until = None) -> Outcome:
        """Let the daemon work for one run: until ``until`` holds, the deadline passes, or the
        daemon exits. Without ``until`` it waits the whole deadline (or until the exit).

        The outcome has this run's output only, ``exit_status=None`` while the daemon keeps
        running, ``killed_at_deadline=False`` (a run never kills a daemon), and ``error``
        when the daemon is not running or ``until`` did not hold by the deadline.
        """
        process = self._require()
        if ctx.scenario != self._scenario:
            raise AdapterError(f"daemon was started for scenario {self._scenario!r}, "
                               f"not {ctx.scenario!r}")
        out, err = Capture(self.output_limit), Capture(self.output_limit)
        started = time.monotonic()
        process.tee(out, err)
        try:
            if until is None:
                process.wait(deadline)
                met = True
            else:
                met = self.wait_until(until, deadline)
        finally:
            process.untee(out, err)
        status = process.wait(0)
        error = None
        if status is not None:
            error = f"the daemon is not running: it exited with status {status}"
        elif not met:
            error = f"the run's condition did not hold within {deadline:g} s"
        return Outcome(run=ctx.run, exit_status=status, killed_at_deadline=False,
                       duration=time.monotonic() - started, stdout=out.text(),
                       stderr=err.text(), error=error)

    def stop(self) -> Outcome:
        """Stop the daemon (SIGTERM to its whole session, SIGKILL after ``grace``) and report
        its whole life as run 0. Calling it again returns the same outcome.

        ``exit_status`` is the first process's status (``None`` when it needed SIGKILL);
        ``killed_at_deadline`` says whether any process of the daemon needed SIGKILL.
        """
        if self._process is None:
            if self._last is not None:
                return self._last
            raise AdapterError(f"daemon {self.name!r} was not started")
        process, self._process = self._process, None
        exited_before = process.wait(0)
        ending = process.end(self.grace)
        ended_at = time.monotonic()
        status = process.returncode
        leader_killed = exited_before is None and status == -signal.SIGKILL
        if exited_before is not None:
            process.notes.append(f"the daemon had exited by itself (status {exited_before}) "
                                 "before it was stopped")
        if ending.terminated:
            how = (f"{ending.killed} needed SIGKILL after {self.grace:g} s" if ending.killed
                   else "all ended on SIGTERM")
            process.notes.append(f"stopped: SIGTERM to {ending.terminated} process(es); {how}")
        self._last = Outcome(run=0, exit_status=None if leader_killed else status,
                             killed_at_deadline=ending.killed > 0,
                             duration=ended_at - process.started,
                             stdout=process.stdout.text(), stderr=process.stderr_text())
        return self._last

    def fresh(self) -> "DaemonAdapter":
        twin = copy.copy(self)
        twin._process, twin._scenario, twin._last = None, None, None
        return twin

    def _require(self) -> ClientProcess:
        if self._process is None:
            raise AdapterError(f"daemon {self.name!r} is not running: start(ctx) first")
        return self._process


def _predicate(until: Until) -> Callable[[], bool]:
    if until is None:
        return lambda: False
    if hasattr(until, "is_set"):
        return until.is_set
    if callable(until):
        return until
    raise TypeError(f"until must be a predicate or a threading.Event, not {type(until).__name__}")
