"""``mailconform run``: a client, a selection of scenarios, a baseline; progress; reports."""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .adapters.base import Adapter
from .runner import RunOptions, run_all
from .scenario import SCENARIO_DIR, catalog
from .verdicts import ScenarioResult, Verdict

DEFAULT_JSON = Path("reports/mailconform.json")
DEFAULT_HTML = Path("reports/mailconform.html")


@dataclass(frozen=True)
class AdapterSpec:
    """How to make a fresh adapter: picklable, so worker processes can make their own."""

    kind: str  # command | python | daemon
    target: str
    config: str | None
    features: str | None

    def __call__(self) -> Adapter:
        if self.kind == "python":
            from .adapters.python import PythonAdapter

            return PythonAdapter(self.target, self.features)
        if self.kind == "daemon":
            from .adapters.daemon import DaemonAdapter

            return DaemonAdapter(self.target, self.config, self.features)
        from .adapters.command import CommandAdapter

        return CommandAdapter(self.target, self.config, self.features)

    def describe(self) -> str:
        return f"{self.kind}: {self.target}" + (f" (config {self.config})" if self.config else "")


def adapter_spec(args) -> AdapterSpec:
    from .cli import REFERENCE_CLIENT, REFERENCE_FEATURES

    if args.client_python:
        return AdapterSpec("python", args.client_python, None, args.features)
    if args.client_daemon:
        return AdapterSpec("daemon", args.client_daemon, args.client_config, args.features)
    if args.client:
        return AdapterSpec("command", args.client, args.client_config, args.features)
    return AdapterSpec("command", REFERENCE_CLIENT, None, args.features or REFERENCE_FEATURES)


def run_command(args) -> int:
    from .baseline import Baseline
    from .reports import ClientInfo, RunReport, html, json_report, junit, utc_timestamp

    spec = adapter_spec(args)
    probe = spec()  # a bad client spec fails here, before any scenario runs
    scenarios = catalog(args.scenarios_dir or SCENARIO_DIR, args.scenario)
    if not scenarios:
        print(f"mailconform: no scenario matches {args.scenario}", file=sys.stderr)
        return 2
    baseline = Baseline.load(args.baseline) if args.baseline else None
    expected = frozenset(s.id for s in scenarios if baseline is not None and baseline.expects_failure(s.id))
    command = "mailconform " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "mailconform run"
    options = RunOptions(seed=args.seed, replay_command=_replay(args), expected_failures=expected)
    started = utc_timestamp()
    clock = time.monotonic()
    if not args.quiet:
        print(f"mailconform: {len(scenarios)} scenarios against {spec.describe()} (seed {args.seed})",
              file=sys.stderr)
    results = run_all(scenarios, spec, options, progress=None if args.quiet else _progress, jobs=args.jobs)
    report = RunReport(results=results, client=ClientInfo(spec.describe(), sorted(probe.features)),
                       started_at=started, finished_at=utc_timestamp(), seed=args.seed, command=command)
    written = []
    json_path = args.json or DEFAULT_JSON
    written.append(json_report.write(report, json_path))
    written.append(html.write(report, args.html or DEFAULT_HTML))
    if args.junit:
        written.append(junit.write(report, args.junit))
    summary = ", ".join(f"{n} {v}" for v, n in report.summary().items() if n)
    print(f"\n{summary} in {time.monotonic() - clock:.1f} s", file=sys.stderr)
    for result in results:
        if Verdict(result.verdict).fails_run:
            print(f"  {result.verdict.value:11} {result.id}: {result.reason}\n"
                  f"              replay: {result.replay}", file=sys.stderr)
    print("reports: " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 1 if report.failed else 0


def _replay(args) -> str:
    parts = ["mailconform", "run"]
    if args.client:
        parts += ["--client", args.client]
    elif args.client_python:
        parts += ["--client-python", args.client_python]
    elif args.client_daemon:
        parts += ["--client-daemon", args.client_daemon]
    if args.client_config:
        parts += ["--client-config", args.client_config]
    if args.features:
        parts += ["--features", args.features]
    if args.scenarios_dir:
        parts += ["--scenarios-dir", str(args.scenarios_dir)]
    return " ".join(shlex.quote(p) for p in parts)


def _progress(done: int, total: int, result: ScenarioResult) -> None:
    width = len(str(total))
    print(f"[{done:{width}}/{total}] {result.verdict.value:11} {result.id} ({result.duration:.1f} s)"
          + (f"  {result.reason}" if result.reason and result.verdict is not Verdict.PASS else ""),
          file=sys.stderr, flush=True)
