"""One run of the client: the IMAP sync, then the outbox; on trouble wait and connect again, or stop.

Only one connection is ever open: the previous one is closed before waiting, and the next
is opened after the wait. Every stop is one line on stderr and an exit status
(:mod:`reference_client.errors`); notes about retries go to stderr too, the summary of a
completed sync or submission to stdout.

The two parts are independent: the outbox is submitted (:mod:`reference_client.submit`)
even when the sync failed, since a different server takes it. The exit status is the sync's
when it failed, else the submission's.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from .backoff import Backoff
from .config import Config, SmtpConfig
from .errors import EXIT_ERROR, EXIT_OK, ClientError, Retry
from .remote import Remote
from .state import StateStore
from .submit import Totals, submit_outbox
from .sync import Sync

PROG = "reference_client"


def run(config: Config | None, smtp: SmtpConfig | None = None, *, stdout: TextIO | None = None,
        stderr: TextIO | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """The IMAP sync (when ``config`` is given), then the outbox (when ``smtp`` is)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    status = EXIT_OK
    if config is not None:
        status = sync(config, out=out, err=err, sleep=sleep)
    if smtp is not None:
        sent = submit(smtp, out=out, err=err, sleep=sleep)
        status = status or sent
    return status


def submit(config: SmtpConfig, *, out: TextIO, err: TextIO, sleep: Callable[[float], None]) -> int:
    def note(line: str) -> None:
        print(f"{PROG}: {line}", file=err, flush=True)

    totals = Totals()
    try:
        status = submit_outbox(config, sleep=sleep, notify=note, totals=totals)
    except OSError as exc:  # the local disk: outbox or state directory
        note(f"error: local storage: {exc}")
        return EXIT_ERROR
    if not totals.queued:
        print(f"{PROG}: the outbox is empty: nothing to send", file=out, flush=True)
    elif totals.sent or not totals.kept:
        print(f"{PROG}: sent {totals.sent} message(s) over SMTP with {totals.method}; {totals.kept} kept in the "
              "outbox", file=out, flush=True)
    return status


def sync(config: Config, *, out: TextIO, err: TextIO, sleep: Callable[[float], None]) -> int:
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
