"""The fake IMAP server against a real Dovecot, side by side, same client, same mailbox.

    python -m benchmarks.imap_sync [--messages 10000] [--repeat 3]

Workloads (the design card's anchors):

* ``imapclient sync``: LOGIN, SELECT, UID SEARCH ALL, then UID FETCH (UID FLAGS INTERNALDATE
  RFC822.SIZE BODY.PEEK[]) in 500-message chunks; every byte checked against the source.
* ``raw UID FETCH 1:* BODY.PEEK[]``: one command on a plain socket, read to the tagged OK.

Both servers serve plaintext on loopback (TLS cost is the same library either way), and the
same seeded messages. Each workload runs ``--repeat`` times per server, alternating servers;
the median is reported, with the ratio fake/Dovecot.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imapclient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_servers.mailstore import SeededMessages  # noqa: E402
from tests.oracles.dovecot import Dovecot, unavailable_reason  # noqa: E402

USER = "bench@example.test"
PASSWORD = "bench-password"
CHUNK = 500


def imapclient_sync(port: int, source: SeededMessages, count: int) -> float:
    start = time.perf_counter()
    client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=120)
    client.login(USER, PASSWORD)
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    got = 0
    for i in range(0, len(uids), CHUNK):
        data = client.fetch(uids[i:i + CHUNK], ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[]"])
        for uid, item in data.items():
            if item[b"BODY[]"] != source.content(uid - 1):
                raise AssertionError(f"message {uid} differs")
            got += 1
    client.logout()
    elapsed = time.perf_counter() - start
    if got != count:
        raise AssertionError(f"synced {got} of {count} messages")
    return elapsed


def raw_fetch(port: int, expected_bytes: int) -> float:
    start = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb", buffering=1 << 20)
    reader.readline()
    sock.sendall(f'a LOGIN "{USER}" "{PASSWORD}"\r\nb SELECT INBOX\r\nc UID FETCH 1:* BODY.PEEK[]\r\n'.encode())
    body_bytes = 0
    while True:
        line = reader.readline()
        if not line:
            raise AssertionError("connection closed before the FETCH completed")
        if line.startswith(b"c "):
            if not line.startswith(b"c OK"):
                raise AssertionError(line)
            break
        if line.endswith(b"}\r\n"):
            size = int(line[line.rindex(b"{") + 1:-3])
            body_bytes += len(reader.read(size))
    sock.sendall(b"d LOGOUT\r\n")
    sock.close()
    elapsed = time.perf_counter() - start
    if body_bytes != expected_bytes:
        raise AssertionError(f"read {body_bytes} literal bytes, expected {expected_bytes}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-messages", type=int, default=100_000,
                        help="also serve a mailbox this large in full and report the fake's peak memory (0: skip)")
    opts = parser.parse_args(argv)

    reason = unavailable_reason()
    if reason:
        print(f"Dovecot unavailable: {reason}", file=sys.stderr)
        return 2
    source = SeededMessages(opts.seed, opts.size)
    total = opts.messages * opts.size
    print(f"mailbox: {opts.messages} messages x {opts.size} B = {total / 1e6:.1f} MB, seed {opts.seed}")

    with FakeServerProcess(opts.messages, opts.size, opts.seed) as fake, \
            tempfile.TemporaryDirectory() as tmp, Dovecot(tmp, {USER: PASSWORD}) as dovecot:
        for i in range(opts.messages):
            dovecot.add_message(USER, "INBOX", source.content(i), internal_date=source.internal_date(i))
        servers = {"fake": fake.port, "dovecot": dovecot.port}
        results: dict[tuple[str, str], list[float]] = {}
        workloads = {
            "imapclient sync (500/chunk)": lambda port: imapclient_sync(port, source, opts.messages),
            "raw UID FETCH 1:* BODY.PEEK[]": lambda port: raw_fetch(port, total),
        }
        for _ in range(opts.repeat):
            for workload, run in workloads.items():
                for name, port in servers.items():
                    results.setdefault((workload, name), []).append(run(port))

    print(f"\n{'workload':34} {'fake (s)':>10} {'dovecot (s)':>12} {'ratio':>7}")
    for workload in workloads:
        f = statistics.median(results[(workload, "fake")])
        d = statistics.median(results[(workload, "dovecot")])
        print(f"{workload:34} {f:10.2f} {d:12.2f} {f / d:6.2f}x")
    if opts.memory_messages:
        with FakeServerProcess(opts.memory_messages, opts.size, opts.seed) as big:
            seconds = raw_fetch(big.port, opts.memory_messages * opts.size)
        print(f"{'raw fetch of ' + str(opts.memory_messages) + ' messages':34} {seconds:10.2f}"
              f"   fake peak memory {big.peak_rss_mb:.0f} MB")
    print(f"\n(median of {opts.repeat}; runs: " + "; ".join(
        f"{w.split(' ')[0]}/{n}: " + ",".join(f"{t:.2f}" for t in ts) for (w, n), ts in results.items()) + ")")
    return 0


class FakeServerProcess:
    """The fake in a child process (see ``fake_server.py``): the client gets its own GIL."""

    def __init__(self, messages: int, size: int, seed: int) -> None:
        self.args = [sys.executable, "-m", "benchmarks.fake_server", "--messages", str(messages),
                     "--size", str(size), "--seed", str(seed)]
        self.peak_rss_mb: float | None = None

    def __enter__(self) -> "FakeServerProcess":
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parent.parent)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc) -> None:
        out, _ = self.proc.communicate("", timeout=60)
        for line in out.splitlines():
            if line.startswith("PEAK_RSS_MB "):
                self.peak_rss_mb = float(line.split()[1])


if __name__ == "__main__":
    sys.exit(main())
