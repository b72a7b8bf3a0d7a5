"""What the harness itself costs per scenario, and the whole catalog against the reference client.

    python -m benchmarks.harness_overhead [--repeat 3]

Overhead = a scenario's wall time (provider up with TLS material, runs, checks, teardown)
with an in-process client that returns at once, so none of it is the client's.
Then `mailconform run -j 2` over the whole catalog with the reference client, wall time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.adapters.python import PythonAdapter  # noqa: E402
from harness.runner import RunOptions, run_scenario  # noqa: E402
from harness.scenario import catalog  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    opts = parser.parse_args(argv)
    scenarios = [s for s in catalog() if s.deadline <= 60 and "huge" not in s.id]
    adapter = PythonAdapter("benchmarks.noop_client:sync", "imap")
    run_scenario(scenarios[0], adapter, RunOptions())  # warm imports and the loop
    overheads = []
    for _ in range(opts.repeat):
        for scenario in scenarios:
            started = time.perf_counter()
            run_scenario(scenario, adapter, RunOptions())
            overheads.append((time.perf_counter() - started) * 1000)  # the no-op client takes ~0 of it
    overheads.sort()
    print(f"harness overhead per scenario, no-op client, {len(scenarios)} scenarios x {opts.repeat}:")
    print(f"  median {statistics.median(overheads):.1f} ms   p90 {overheads[int(len(overheads) * 0.9)]:.1f} ms   "
          f"max {overheads[-1]:.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "-j", str(opts.jobs), "--quiet",
                               "--json", f"{tmp}/r.json", "--html", f"{tmp}/r.html"],
                              cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
    print(f"whole catalog ({len(catalog())} scenarios), reference client, -j {opts.jobs}: {wall:.1f} s "
          f"(exit {proc.returncode}; {proc.stderr.strip().splitlines()[-2] if proc.stderr.strip() else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
