"""Hang (a client stuck on a dead connection); SIGTERM ends it as by default."""

import signal

print("sleeping", flush=True)
while True:
    signal.pause()
