"""A daemon: says where it runs, then each time ``STATE_DIR/trigger-N`` appears it writes
``MAILDIR/synced-N``. SIGTERM: print "bye" and exit 0, or with ``--ignore-term`` ignore it.
``--exit-after-sync`` exits 3 after the first sync.
"""

import os
import signal
import sys
import time
from pathlib import Path

state = Path(os.environ["MAILCONFORM_STATE_DIR"])
maildir = Path(os.environ["MAILCONFORM_MAILDIR"])


def bye(signum, frame):
    print("bye", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, signal.SIG_IGN if "--ignore-term" in sys.argv else bye)
print(f"started for run {os.environ['MAILCONFORM_RUN']}", flush=True)
(state / "ready").touch()  # the SIGTERM disposition is in place
n = 1
while True:
    if (state / f"trigger-{n}").exists():
        # Say it before the file appears: the harness ends the run when it sees the file, and
        # the line must already be in the pipe by then to count as this run's output.
        print(f"synced {n}", flush=True)
        (maildir / f"synced-{n}").touch()
        if "--exit-after-sync" in sys.argv:
            print("giving up", file=sys.stderr, flush=True)
            sys.exit(3)
        n += 1
    time.sleep(0.005)  # the client's own pace; the harness never sleeps
