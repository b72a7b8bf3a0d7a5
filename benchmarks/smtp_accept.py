"""The fake SMTP server's accept rate against Postfix's smtp-sink, side by side, same load.

    python -m benchmarks.smtp_accept [--messages 5000] [--size 4096] [--sessions 4] [--repeat 5]
                                     [--connections both|session|message] [--profile FILE]

Both servers are driven by the same Postfix ``smtp-source`` command line::

    smtp-source -c -d -s 4 -m 5000 -l 4096 -f sender@example.test -t rcpt@example.test 127.0.0.1:PORT

4 parallel sessions carrying 5,000 messages of 4 KB. Two loads, each measured side by side:
``session`` (with ``-d``: each of the 4 connections sends message after message, the accept rate
of a client with a queue to send) and ``message`` (without ``-d``: a new connection per message,
mostly connection setup and the greeting). ``--connections`` picks one; the default runs both.
The fake serves plain SMTP on loopback with neither TLS nor AUTH required, so both servers do
the same protocol work; it runs in its own process as a scenario runs it, recording every
byte both ways, every command and reply line and every submission, and confirms at exit how
many messages it accepted. ``smtp-sink``
(``/usr/sbin/smtp-sink``, run as ``nobody`` when we are root) accepts and discards. Each
server is measured ``--repeat`` times, in rounds (fake, smtp-sink, floor back to back); the
median rate of each is reported, and the verdict is the median over rounds of the ratio
fake/smtp-sink within a round (target: at least 0.5), which the neighbours' drift over a run
disturbs less than a ratio of medians taken minutes apart. ``--profile FILE`` adds one round, not counted, with
the fake under cProfile, and writes its statistics to FILE (and the top functions to stdout).

Two more figures put the rate in context, because on a shared 2-core machine the rates of all
three servers swing with whatever else runs (smtp-sink alone between 2,000 and 6,000 msg/s):

* the fake's own CPU time per message (user + system, read from ``/proc``), which depends far
  less on the neighbours than the rate does;
* ``asyncio floor``: a bare asyncio protocol in its own process that answers as smtp-sink does
  and records nothing, the most any asyncio server in CPython gets on this machine at that
  moment (``--no-floor`` leaves it out).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SENDER = "sender@example.test"
RECIPIENT = "rcpt@example.test"


def source_command(port: int, opts) -> list[str]:
    reuse = ["-d"] if opts.reuse else []
    return [SMTP_SOURCE, "-c", *reuse, "-s", str(opts.sessions), "-m", str(opts.messages), "-l", str(opts.size),
            "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"]


def drive(port: int, opts) -> float:
    """Seconds smtp-source takes to send every message to ``port``."""
    start = time.perf_counter()
    proc = subprocess.run(source_command(port, opts), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)  # polling our own child's startup, not a protocol wait
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


class SmtpSink:
    """Postfix's smtp-sink on a free loopback port."""

    def __enter__(self) -> "SmtpSink":
        self.port = free_port()
        args = [SMTP_SINK]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += [f"127.0.0.1:{self.port}", "256"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_listening(self.port, self.proc)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class FakeSmtpProcess:
    """The fake provider's SMTP server in a child process (``--serve``)."""

    def __init__(self, profile: str | None = None, mode: str = "--serve") -> None:
        self.profile = profile
        self.mode = mode
        self.accepted: int | None = None

    def __enter__(self) -> "FakeSmtpProcess":
        args = [sys.executable, "-m", "benchmarks.smtp_accept", self.mode]
        if self.profile:
            args += ["--profile", self.profile]
        self.log = tempfile.TemporaryFile(mode="w+")  # the fake's log: summarised, not flooded onto the terminal
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     cwd=ROOT)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"fake SMTP server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server process used so far; None off Linux."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc) -> None:
        out, _ = self.proc.communicate("", timeout=120)
        for line in out.splitlines():
            if line.startswith("ACCEPTED "):
                self.accepted = int(line.split()[1])
            elif not line.startswith("PORT "):
                print(line)
        self.log.seek(0)
        lines = [line.rstrip() for line in self.log if line.strip()]
        self.log.close()
        tracebacks = sum(1 for line in lines if line.startswith("Traceback"))
        said = [line for line in lines if not line.startswith((" ", "Traceback"))]
        if said:
            print(f"  (the fake logged {tracebacks} traceback(s) in {len(said)} line(s), e.g. "
                  f"{said[0][:120]!r} ... {said[-1][:120]!r})")


def serve(profile: str | None) -> None:
    """Child process: a fake provider with plain SMTP (no TLS, no AUTH) until stdin closes."""
    from fake_servers import FakeProvider
    from fake_servers.smtp.config import SmtpConfig

    fake = FakeProvider(smtp=SmtpConfig(starttls=False, require_auth=False)).start()
    profiler = None
    if profile:  # the servers run on the runtime's event loop thread: profile that thread
        import cProfile

        profiler = cProfile.Profile()
        fake.runtime.call(profiler.enable)
    print(f"PORT {fake.smtp_port}", flush=True)
    sys.stdin.read()
    if profiler is not None:
        fake.runtime.call(profiler.disable)
    accepted = sum(1 for s in fake.submissions() if s.accepted)
    fake.stop()
    if profiler is not None:
        import pstats

        profiler.dump_stats(profile)
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(25)
    print(f"ACCEPTED {accepted}", flush=True)


def serve_floor() -> None:
    """Child process: the asyncio floor, a bare protocol answering as smtp-sink does (greeting,
    EHLO, 250 to MAIL and RCPT, 354, 250 after the final dot, 221 and close) that records nothing."""
    import asyncio

    class Floor(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport, self.buffer, self.data = transport, b"", False
            transport.write(b"220 floor.test ESMTP\r\n")

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                if self.data:
                    end = self.buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        return
                    self.buffer, self.data = self.buffer[end + 5:], False
                    self.transport.write(b"250 2.0.0 Ok: queued\r\n")
                    continue
                end = self.buffer.find(b"\n")
                if end < 0:
                    return
                verb, self.buffer = self.buffer[:4].upper(), self.buffer[end + 1:]
                if verb == b"EHLO":
                    self.transport.write(b"250-floor.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    self.data, self.buffer = True, b"\r\n" + self.buffer  # the CRLF that ended DATA
                    self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                elif verb == b"QUIT":
                    self.transport.write(b"221 2.0.0 Bye\r\n")
                    self.transport.close()
                    return
                else:
                    self.transport.write(b"250 2.0.0 Ok\r\n")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Floor, "127.0.0.1", 0)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(run())


def measure(opts, load: str) -> int:
    """One load, every server ``--repeat`` times, alternating; prints the table and the ratio."""
    how = "the same connection for message after message (-d)" if opts.reuse else "a new connection per message"
    print(f"\nload '{load}': {opts.messages} messages x {opts.size} B over {opts.sessions} parallel sessions, "
          f"{how}")
    print("command: " + " ".join(source_command(0, opts)).replace(":0", ":PORT"))
    times: dict[str, list[float]] = {"fake": [], "smtp-sink": []}
    if not opts.no_floor:
        times["asyncio floor"] = []
    cpu: list[float] = []
    accepted: list[int] = []
    for _ in range(opts.repeat):
        with FakeSmtpProcess() as fake:
            before = fake.cpu_seconds()
            times["fake"].append(drive(fake.port, opts))
            after = fake.cpu_seconds()
            if before is not None and after is not None:
                cpu.append((after - before) / opts.messages)
        accepted.append(fake.accepted)
        with SmtpSink() as sink:
            times["smtp-sink"].append(drive(sink.port, opts))
        if not opts.no_floor:
            with FakeSmtpProcess(mode="--serve-floor") as floor:
                times["asyncio floor"].append(drive(floor.port, opts))
    if any(a != opts.messages for a in accepted):
        print(f"the fake accepted {accepted} messages per round, expected {opts.messages}", file=sys.stderr)
        return 1

    rates = {name: opts.messages / statistics.median(ts) for name, ts in times.items()}
    print(f"\n{'server':14} {'median (s)':>11} {'messages/s':>11}   runs (s)")
    for name, ts in times.items():
        print(f"{name:14} {statistics.median(ts):11.2f} {rates[name]:11.0f}   " + ", ".join(f"{t:.2f}" for t in ts))
    # Each round ran the fake and smtp-sink back to back: the ratio within a round compares them
    # under the same neighbours, which drift over a run; the verdict is the median of those.
    paired = [sink / fake for fake, sink in zip(times["fake"], times["smtp-sink"])]
    ratio = statistics.median(paired)
    verdict = "meets" if ratio >= 0.5 else "below"
    print(f"\nratio fake/smtp-sink: {ratio:.2f} ({verdict} the 0.5 target; median of {opts.repeat} rounds: "
          + ", ".join(f"{r:.2f}" for r in paired) + f"; ratio of the medians {rates['fake'] / rates['smtp-sink']:.2f})")
    if cpu:
        print(f"the fake's CPU per message: {statistics.median(cpu) * 1e6:.0f} us (median; runs: "
              + ", ".join(f"{c * 1e6:.0f}" for c in cpu) + ")")
    if "asyncio floor" in rates:
        print(f"asyncio floor/smtp-sink: {rates['asyncio floor'] / rates['smtp-sink']:.2f}; "
              f"fake/asyncio floor: {rates['fake'] / rates['asyncio floor']:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--connections", choices=("both", "session", "message"), default="both",
                        help="session: messages over the same connections (-d); message: a connection each")
    parser.add_argument("--profile", metavar="FILE", help="run the fake under cProfile, statistics into FILE")
    parser.add_argument("--no-floor", action="store_true", help="leave out the bare asyncio server")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.serve:
        serve(opts.profile)
        return 0
    if opts.serve_floor:
        serve_floor()
        return 0
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not os.access(tool, os.X_OK):
            print(f"{tool} not found (Debian: postfix)", file=sys.stderr)
            return 2

    loads = ("session", "message") if opts.connections == "both" else (opts.connections,)
    worst = 0
    for load in loads:
        opts.reuse = load == "session"
        worst = max(worst, measure(opts, load))
    if opts.profile:  # one more round, not counted: cProfile slows the fake down
        opts.reuse = loads[-1] == "session"
        print(f"\nprofiled round, load '{loads[-1]}' (statistics in {opts.profile}):")
        with FakeSmtpProcess(opts.profile) as fake:
            seconds = drive(fake.port, opts)
        print(f"profiled fake: {seconds:.2f} s")
    return worst


if __name__ == "__main__":
    sys.exit(main())
