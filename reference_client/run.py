"""One run of the client: connect, sync, and on trouble wait and connect again, or stop.

Only one connection is ever open: the previous one is closed before waiting, and the next
is opened after the wait. Every stop is one line on stderr and an exit status
(:mod:`reference_client.errors`); notes about retries go to stderr too, the summary of a
completed sync to stdout.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from .backoff import Backoff
from .config import Config
from .errors import EXIT_ERROR, EXIT_OK, ClientError, Retry
from .remote import Remote
from .state import StateStore
from .sync import Sync

PROG = "reference_client"


def run(config: Config, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr

    def note(line: str) -> None:
        print(f"{PROG}: {line}", file=err, flush=True)

    backoff = Backoff(config.scenario, sleep=sleep, notify=note)
    try:
        sync = Sync(config.maildir, StateStore(config.state_dir), progress=backoff.progressed, notify=note)
        while True:
            remote = None
            try:
                remote = Remote.open(config)
                sync.run(remote)
            except Retry as retry:
                if remote is not None:
                    remote.close()
                backoff.wait(retry)
                continue
            except BaseException:
                if remote is not None:
                    remote.close()
                raise
            remote.logout()
            break
    except ClientError as exc:
        note(f"error: {exc}")
        return exc.status
    except OSError as exc:  # the local disk: Maildir or state directory
        note(f"error: local storage: {exc}")
        return EXIT_ERROR
    t = sync.totals
    print(f"{PROG}: synced {t.folders} folder(s) with {remote.method}: {t.fetched} fetched, "
          f"{t.adopted} matched by content, {t.removed} removed", file=out, flush=True)
    return EXIT_OK
