"""What one run of a client produced, as the harness saw it from outside.

The outcome is evidence, never a verdict: a clean exit while a message is missing is a FAIL,
and a non-zero exit after correctly refusing a plaintext server is a PASS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Outcome:
    """One run of the client (``run`` is 1-based; a daemon's whole life is reported as run 0).

    ``exit_status`` follows ``subprocess``: a negative number is the signal that ended the
    process; ``None`` means it was killed by the harness (or, for a daemon's run, that it is
    still running).
    """

    run: int
    exit_status: int | None
    killed_at_deadline: bool
    duration: float
    stdout: str
    stderr: str
    error: str | None = None  # python adapter: the exception, formatted; daemon: not running
    # python adapter, with MAILCONFORM_CONNECT_TO: the (name, port) pairs the client resolved, in
    # order (what a command client asks the fake DNS is on the wire instead)
    lookups: list[tuple[str, int | None]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for progress output and report tables."""
        if self.killed_at_deadline:
            what = "killed at the deadline"
        elif self.error and self.exit_status not in (None, 0):
            what = f"failed (exit {self.exit_status}): {_last_line(self.error)}"
        elif self.exit_status is None:
            what = "still running"
        elif self.exit_status < 0:
            what = f"ended by signal {-self.exit_status}"
        else:
            what = f"exit {self.exit_status}"
        return f"run {self.run}: {what} after {self.duration:.2f} s"

    def to_json(self) -> dict:
        return asdict(self)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
