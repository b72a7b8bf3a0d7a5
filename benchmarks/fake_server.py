"""A fake provider in its own process for benchmarks, so the client does not share its GIL.

Prints ``PORT <n>`` once listening, serves until standard input closes, then prints
``PEAK_RSS_MB <x>`` (the process's peak resident memory) and exits.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_servers import FakeProvider  # noqa: E402
from fake_servers.imap.config import ImapConfig  # noqa: E402
from fake_servers.mailstore import SeededMessages  # noqa: E402

USER = "bench@example.test"
PASSWORD = "bench-password"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    source = SeededMessages(opts.seed, opts.size)
    fake = FakeProvider(imap=ImapConfig(starttls=False, login_disabled=False), keep_server_bytes=0).start()

    def fill() -> None:
        inbox = fake.store.add_account(USER, PASSWORD).folder("INBOX")
        for i in range(opts.messages):
            inbox.append(None, source=source, index=i, size=opts.size, internal_date=source.internal_date(i),
                         notify=False)
        inbox.changed()

    fake.call(fill)
    print(f"PORT {fake.imap_port}", flush=True)
    sys.stdin.read()
    fake.stop()
    print(f"PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)


if __name__ == "__main__":
    main()
