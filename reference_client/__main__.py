"""``python -m reference_client``: configuration from the environment, one run, an exit status."""

from __future__ import annotations

import sys

from .account import load_account
from .errors import EXIT_ERROR, ClientError
from .run import PROG, run


def _note(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def main() -> int:
    try:
        setup = load_account(notify=_note)  # the configuration, or discovery; an OAuth token
    except ClientError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    try:
        with setup.names.routing():  # MAILCONFORM_CONNECT_TO / MAILCONFORM_DNS, when set
            return run(setup.imap, setup.smtp) or setup.status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a defect here: still one line, never a silent success
        print(f"{PROG}: error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
