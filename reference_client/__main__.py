"""``python -m reference_client``: configuration from the environment, one run, an exit status."""

from __future__ import annotations

import sys

from .config import load
from .errors import EXIT_ERROR, ClientError
from .run import PROG, run


def main() -> int:
    try:
        imap, smtp = load()
    except ClientError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    try:
        return run(imap, smtp)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a defect here: still one line, never a silent success
        print(f"{PROG}: error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
