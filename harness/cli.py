"""The ``mailconform`` command line."""

from __future__ import annotations

import argparse
import sys
import threading

from fake_servers.provider_config import ConfigError, personas


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailconform", description="Conformance harness for email sync clients.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a fake provider for manual testing",
                           description="Start a fake provider on 127.0.0.1 and log every session live.")
    serve.add_argument("source", nargs="?", help="a provider or scenario file (TOML)")
    serve.add_argument("--persona", choices=None, help=f"a built-in persona: {', '.join(personas())}")
    serve.add_argument("--quiet", action="store_true", help="do not print transcripts")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from .serve import install_stop_signals, serve, spec_for

        try:
            spec = spec_for(args.source, args.persona)
        except ConfigError as exc:
            print(f"mailconform: {exc}", file=sys.stderr)
            return 2
        stop = threading.Event()
        install_stop_signals(stop)
        return serve(spec, quiet=args.quiet, stop=stop)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
