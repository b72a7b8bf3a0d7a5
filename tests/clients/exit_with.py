"""Write one line to each stream, then exit with the status given (or die of a signal:
``exit_with.py -SIGNUM``)."""

import os
import sys

print("to stdout")
print("to stderr", file=sys.stderr)
sys.stdout.flush()
status = int(sys.argv[1])
if status < 0:
    os.kill(os.getpid(), -status)
sys.exit(status)
