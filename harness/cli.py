"""The ``mailconform`` command line: run, list, show, serve, schema."""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
from pathlib import Path

from fake_servers.provider_config import ConfigError, personas

REFERENCE_CLIENT = f"{shlex.quote(sys.executable)} -m reference_client"
REFERENCE_FEATURES = "imap,smtp,autodiscover,oauth2"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailconform", description="Conformance harness for email sync clients.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the scenario catalog against a client and write reports",
                         description="Run scenarios against a client. Exit 0 when no scenario is FAIL, "
                                     "ERROR or XPASS, 1 otherwise, 2 on bad usage.")
    who = run.add_mutually_exclusive_group()
    who.add_argument("--client", metavar="TEMPLATE",
                     help="command template run once per run, e.g. 'offlineimap -c {config}' "
                          "(default: the bundled reference client)")
    who.add_argument("--client-python", metavar="MODULE:CALLABLE", help="an in-process client")
    who.add_argument("--client-daemon", metavar="TEMPLATE", help="a long-running client, started once per scenario")
    run.add_argument("--client-config", metavar="FILE", help="config-file template rendered into the state dir as {config}")
    run.add_argument("--features", default=None, help="what the client can do: imap,smtp,idle,twoway,autodiscover,oauth2")
    run.add_argument("--scenario", action="append", metavar="GLOB", help="scenario ids or globs (repeatable)")
    run.add_argument("--scenarios-dir", type=Path, default=None, help="a directory of scenario files")
    run.add_argument("--baseline", type=Path, help="known failures: listed FAILs become XFAIL, listed PASSes XPASS")
    run.add_argument("--json", type=Path, help="JSON report (default reports/mailconform.json)")
    run.add_argument("--junit", type=Path, help="JUnit XML report")
    run.add_argument("--html", type=Path, help="HTML report (default reports/mailconform.html)")
    run.add_argument("-j", "--jobs", type=int, default=1, help="scenarios in parallel (worker processes)")
    run.add_argument("--seed", type=int, default=0, help="seed for every random choice (printed for replay)")
    run.add_argument("--quiet", action="store_true", help="no per-scenario progress")

    lst = sub.add_parser("list", help="list scenarios: id, level, title")
    lst.add_argument("--scenario", action="append", metavar="GLOB")
    lst.add_argument("--scenarios-dir", type=Path, default=None)

    show = sub.add_parser("show", help="show one scenario: requirement, source, setup, checks")
    show.add_argument("id")
    show.add_argument("--scenarios-dir", type=Path, default=None)

    serve = sub.add_parser("serve", help="run a fake provider for manual testing",
                           description="Start a fake provider on 127.0.0.1 and log every session live.")
    serve.add_argument("source", nargs="?", help="a scenario id, or a provider or scenario file (TOML)")
    serve.add_argument("--persona", help=f"a built-in persona: {', '.join(personas())}")
    serve.add_argument("--quiet", action="store_true", help="do not print transcripts")

    sub.add_parser("schema", help="print the JSON Schema of scenario files (docs/scenario-schema.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from .run_command import run_command

            return run_command(args)
        if args.command == "list":
            return _list(args)
        if args.command == "show":
            return _show(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "schema":
            from .schema import schema_json

            sys.stdout.write(schema_json())
            return 0
    except (ConfigError, ValueError) as exc:
        print(f"mailconform: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


def _catalog(args, patterns=None):
    from .scenario import SCENARIO_DIR, catalog

    return catalog(getattr(args, "scenarios_dir", None) or SCENARIO_DIR, patterns)


def _list(args) -> int:
    scenarios = _catalog(args, args.scenario)
    width = max((len(s.id) for s in scenarios), default=10)
    for s in scenarios:
        print(f"{s.id:{width}}  {s.level:6}  {s.title}")
    print(f"{len(scenarios)} scenarios", file=sys.stderr)
    return 0


def _show(args) -> int:
    matches = [s for s in _catalog(args) if s.id == args.id]
    if not matches:
        import difflib

        ids = [s.id for s in _catalog(args)]
        close = difflib.get_close_matches(args.id, ids, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        print(f"mailconform: no scenario {args.id!r}{hint}", file=sys.stderr)
        return 2
    s = matches[0]
    print(f"{s.id}  [{s.level}]  {s.title}\n")
    print(f"Requirement: {s.requirement}")
    print(f"Source:      {s.source}")
    print(f"Needs:       {', '.join(s.needs)}   Runs: {s.runs}   Deadline: {s.deadline:g} s per run")
    security = [f"IMAP security {s.client.imap_security}"] if "imap" in s.needs or "smtp" not in s.needs else []
    if "smtp" in s.needs:
        security.append(f"SMTP security {s.client.smtp_security}")
    if s.client.discover:
        security = ["told no server: it discovers them from the address (MAILCONFORM_AUTODISCOVER_EMAIL)"]
    print(f"Client:      {', '.join(security)}")
    if s.outbox:
        print(f"Outbox:      {sum(item.count for item in s.outbox)} message(s)")
    print(f"File:        {s.path}\n")
    print("Checks:")
    for c in s.checks:
        params = ", ".join(f"{k}={v!r}" for k, v in c.params.items())
        print(f"  - {c.name}({params}) [{c.level or s.level}]")
    if s.path is not None:
        print("\n" + s.path.read_text(encoding="utf-8"))
    return 0


def _serve(args) -> int:
    from .serve import install_stop_signals, serve, spec_for

    source = args.source
    if source and Path(source).exists() and "id" in _toml_keys(Path(source)):
        from .scenario import load

        spec = load(source).provider  # a scenario file: serve the provider it describes
    elif source and not Path(source).exists() and not source.endswith(".toml"):
        matches = [s for s in _catalog(args) if s.id == source]
        if not matches:
            raise ConfigError(f"no scenario or file {source!r}")
        spec = matches[0].provider
    else:
        spec = spec_for(source, args.persona)
    stop = threading.Event()
    install_stop_signals(stop)
    return serve(spec, quiet=args.quiet, stop=stop)


def _toml_keys(path: Path) -> set[str]:
    import tomllib

    try:
        return set(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError):
        return set()


if __name__ == "__main__":
    sys.exit(main())
