"""Fork a grandchild that ignores SIGTERM, print its pid once it does, then hang
(``--exit``: exit 0 at once, leaving the grandchild behind)."""

import os
import signal
import sys

ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.write(ready_w, b"x")  # SIGTERM is ignored from here on
    while True:
        signal.pause()
os.read(ready_r, 1)
print(f"grandchild {pid}", flush=True)
if "--exit" in sys.argv:
    sys.exit(0)
while True:
    signal.pause()
