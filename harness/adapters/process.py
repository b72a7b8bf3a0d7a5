"""A client process in a session of its own: started, its output drained, ended as a whole.

Clients fork: a shell wrapper, a sync helper, a password command, a stray background job.
Killing only the process the harness started would leave the others holding sockets, files in
the Maildir, and the output pipes. So every client starts a new session
(``start_new_session=True``), and ending it means ending *every* live process of that session,
found in ``/proc`` and signalled and awaited through pidfds (race-free against pid reuse, and
no polling). A process that calls ``setsid()`` itself leaves the session and is out of reach.

Linux gives the full behaviour; elsewhere (no pidfds) the process group is signalled with
``killpg`` and only the first process is awaited.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import threading
import time
import weakref
from typing import Mapping, NamedTuple, Sequence

from .base import AdapterError

OUTPUT_LIMIT = 1 << 20  # bytes kept per stream: the first and the last half
KILL_WAIT = 2.0  # how long a SIGKILLed process may take to go (it is near-instant)
READER_JOIN = 2.0  # how long output may still trickle in once every writer is gone

HAVE_PIDFD = hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal") \
    and os.path.exists("/proc/self/stat")


class Capture:
    """Bounded output: the first and the last ``limit / 2`` bytes, and how much was cut.

    The beginning shows how the client started, the end why it stopped; a client that floods
    its output must not exhaust the harness's memory.
    """

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self.total += len(data)
            room = self._head_limit - len(self._head)
            if room > 0:
                self._head += data[:room]
                data = data[room:]
            if data:
                self._tail += data
                if len(self._tail) > self._tail_limit:
                    del self._tail[:len(self._tail) - self._tail_limit]

    @property
    def cut(self) -> int:
        return self.total - len(self._head) - len(self._tail)

    def text(self) -> str:
        """The kept output as text; undecodable bytes appear as ``\\xNN``."""
        with self._lock:
            head, tail, cut, total = bytes(self._head), bytes(self._tail), self.cut, self.total
        decode = lambda b: b.decode("utf-8", "backslashreplace")  # noqa: E731
        if not cut:
            return decode(head + tail)
        note = (f"\n[mailconform: output cut: {total:,} bytes written, the middle {cut:,} "
                f"left out; the first and last {self.limit // 2:,} bytes are kept]\n")
        return decode(head) + note + decode(tail)


class Ending(NamedTuple):
    """What ``ClientProcess.end`` had to do: how many processes got SIGTERM, and SIGKILL."""

    terminated: int
    killed: int


class ClientProcess:
    """One started client: its session, its output, and how it ended.

    ``notes`` collects what the harness had to do (kill, clean up), for the outcome's stderr.
    """

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], *,
                 output_limit: int = OUTPUT_LIMIT) -> None:
        self.argv = list(argv)
        self.stdout = Capture(output_limit)
        self.stderr = Capture(output_limit)
        self.notes: list[str] = []
        self._sinks: dict[str, list[Capture]] = {"stdout": [self.stdout], "stderr": [self.stderr]}
        self._sinks_lock = threading.Lock()
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True)  # its own session and group
        except OSError as exc:
            raise AdapterError(f"cannot start the client {self.argv[0]!r}: "
                               f"{exc.strerror or exc}") from None
        self.pid = self.proc.pid  # also its session id and process group id
        self._pidfd = os.pidfd_open(self.pid) if HAVE_PIDFD else None
        # If the harness dies or forgets the client, do not leave it running.
        self._kill_at_exit = weakref.finalize(self, _killpg, self.pid, signal.SIGKILL)
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, "stdout"),
                             name=f"client-{self.pid}-stdout", daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, "stderr"),
                             name=f"client-{self.pid}-stderr", daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self._finished = False

    # -- output ------------------------------------------------------------------------

    def _drain(self, pipe, stream: str) -> None:
        """Read until every writer is gone; a full pipe would block the client."""
        fd = pipe.fileno()
        try:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                with self._sinks_lock:
                    for sink in self._sinks[stream]:
                        sink.write(data)
        finally:
            pipe.close()

    def tee(self, stdout: Capture, stderr: Capture) -> None:
        """Also copy output to these captures from now on (a daemon's per-run output)."""
        with self._sinks_lock:
            self._sinks["stdout"].append(stdout)
            self._sinks["stderr"].append(stderr)

    def untee(self, stdout: Capture, stderr: Capture) -> None:
        with self._sinks_lock:
            self._sinks["stdout"].remove(stdout)
            self._sinks["stderr"].remove(stderr)

    def stderr_text(self) -> str:
        """The client's stderr, then the harness's notes, each marked as such."""
        text = self.stderr.text()
        if self.notes:
            if text and not text.endswith("\n"):
                text += "\n"
            text += "".join(f"[mailconform: {note}]\n" for note in self.notes)
        return text

    # -- life --------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def wait(self, timeout: float) -> int | None:
        """The first process's exit status once it exits within ``timeout`` seconds, else None.

        Other processes of the session may still run: see ``end``.
        """
        if self.proc.returncode is not None:
            return self.proc.returncode
        timeout = max(0.0, timeout)
        if self._pidfd is not None:
            return self.proc.wait() if _poll([self._pidfd], timeout) else None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def end(self, grace: float) -> Ending:
        """End every process of the session: SIGTERM, up to ``grace`` seconds for all of them
        to exit, then SIGKILL for the rest.

        Safe to call when everything has already exited (it then signals nothing).
        """
        if self._finished:
            return Ending(0, 0)
        try:
            if self._pidfd is None:
                return self._end_without_pidfds(grace)
            until = time.monotonic() + grace
            termed: set[int] = set()
            while True:
                live = _open_members(self.pid)
                if not live:
                    return Ending(len(termed), 0)
                for pid, fd in live.items():
                    if pid not in termed:  # late forks get their SIGTERM too
                        _send(fd, signal.SIGTERM)
                        _send(fd, signal.SIGCONT)  # a stopped process cannot act on it
                        termed.add(pid)
                left = _wait_exit(live, until)
                if left and time.monotonic() >= until:
                    break
            killed: set[int] = set()
            for _ in range(5):  # SIGKILLed processes cannot fork; a rescan catches races
                live = _open_members(self.pid)
                if not live:
                    break
                for fd in live.values():
                    _send(fd, signal.SIGKILL)
                killed.update(live)
                _wait_exit(live, time.monotonic() + KILL_WAIT)
            else:
                if _open_members(self.pid, close=True):
                    self.notes.append("some processes survived SIGKILL (uninterruptible?)")
            return Ending(len(termed), len(killed))
        finally:
            self._finish()

    def _end_without_pidfds(self, grace: float) -> Ending:
        termed = _killpg(self.pid, signal.SIGTERM)
        if self.wait(grace) is not None:
            _killpg(self.pid, signal.SIGKILL)  # stragglers of the group, if any
            return Ending(int(termed), 0)
        killed = _killpg(self.pid, signal.SIGKILL)
        self.wait(KILL_WAIT)
        return Ending(int(termed), int(killed))

    def _finish(self) -> None:
        """Reap what is ours, stop watching, collect the last output."""
        self._finished = True
        self._kill_at_exit.detach()  # the session id may be reused from now on
        if self.proc.returncode is None:
            self.wait(KILL_WAIT)
        if self.proc.returncode is not None:
            _reap_group(self.pid)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        for reader in self._readers:
            reader.join(READER_JOIN)
        if any(reader.is_alive() for reader in self._readers):
            self.notes.append("output not fully collected: a process outside the client's "
                              "session still holds its stdout or stderr")


def _killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _send(pidfd: int, sig: int) -> None:
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass  # exited meanwhile


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state, session id) of a process, from /proc/PID/stat; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # the name may contain spaces
    except (OSError, IndexError):
        return None
    return fields[0].decode(), int(fields[3])


def _open_members(sid: int, close: bool = False) -> dict[int, int]:
    """pidfds of the live (not zombie) processes of session ``sid``."""
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat is None or stat[1] != sid or stat[0] in ("Z", "X"):
            continue
        pid = int(entry.name)
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        again = _stat(pid)  # the pidfd refers to this very process only if it is still there
        if again is None or again[1] != sid or again[0] in ("Z", "X"):
            os.close(fd)
            continue
        out[pid] = fd
    if close:
        for fd in out.values():
            os.close(fd)
    return out


def _wait_exit(live: dict[int, int], until: float) -> set[int]:
    """Wait for the processes behind these pidfds to exit, until ``until``; close the fds.
    Returns the pids still running."""
    waiting = dict(live)
    try:
        while waiting:
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            ready = _poll(list(waiting.values()), remaining)
            for pid in [p for p, fd in waiting.items() if fd in ready]:
                os.close(waiting.pop(pid))
        return set(waiting)
    finally:
        for fd in waiting.values():
            os.close(fd)


def _poll(fds: list[int], timeout: float) -> set[int]:
    """The pidfds whose process exited, waiting up to ``timeout`` seconds for one.

    ``poll`` rather than ``select``: descriptors above 1023 are fine.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    ms = -1 if timeout > 2_000_000 else max(0, math.ceil(timeout * 1000))  # -1: no limit
    return {fd for fd, _ in poller.poll(ms)}


def _reap_group(pgid: int) -> None:
    """Reap exited processes of the client's group that were re-parented to the harness
    (when it runs as PID 1 of a container, or as a subreaper); others are init's to reap."""
    while True:
        try:
            pid, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
