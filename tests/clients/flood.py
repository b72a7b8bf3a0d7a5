"""Write N bytes to stdout and to stderr: BEGIN, filler, END (output that must be bounded)."""

import sys

size = int(sys.argv[1])
for stream in (sys.stdout.buffer, sys.stderr.buffer):
    stream.write(b"BEGIN" + b"." * (size - 8) + b"END")
    stream.flush()
