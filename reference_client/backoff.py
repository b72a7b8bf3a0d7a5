"""How long to wait before connecting again, and when to give up.

Waits grow exponentially from one second, never exceed :data:`MAX_WAIT`, and carry a
jitter derived from the scenario name and the attempt number, so two runs of a scenario
wait exactly as long (reproducible timings) while different clients of one provider do not
all come back at the same instant. A wait the server suggests is honoured in full; if it is
longer than the client is willing to wait the run stops instead (exit 5). Failures count
only while nothing is achieved: any stored message or finished folder resets the count, so
a long sync through a flaky network finishes, and a server that never lets us make progress
is left alone after :data:`MAX_FAILURES` attempts. Temporary authentication failures and
refusals at the greeting have smaller budgets of their own: they rarely clear up quickly,
and retrying them at length looks like a retry storm to the provider.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable

from .errors import EXIT_UNAVAILABLE, ClientError, Retry

BASE_WAIT = 1.0
MAX_WAIT = 30.0
MAX_FAILURES = 5  # consecutive failed attempts without progress, then give up
MAX_AUTH_RETRIES = 2  # temporary authentication failures per run
MAX_GREETING_RETRIES = 1  # refusals at the greeting (busy, or an address not allowed): one later try
MAX_CONNECTIONS = 100  # in one run, whatever the progress
MAX_AUTH_LOST_RETRIES = 1  # connections lost during authentication: maybe a refusal in disguise
KIND_RETRIES = {"auth": MAX_AUTH_RETRIES, "auth-lost": MAX_AUTH_LOST_RETRIES, "greeting": MAX_GREETING_RETRIES}


def jitter(scenario: str, attempt: int) -> float:
    """A fraction in [0, 1), the same for the same scenario and attempt."""
    digest = hashlib.sha256(f"{scenario}:{attempt}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


class Backoff:
    def __init__(self, scenario: str, *, sleep: Callable[[float], None] = time.sleep,
                 notify: Callable[[str], None] = lambda line: None) -> None:
        self.scenario = scenario
        self.sleep = sleep
        self.notify = notify
        self.failures = 0
        self.attempts = 0
        self.by_kind: dict[str, int] = {}

    def progressed(self) -> None:
        self.failures = 0

    def delay(self, retry: Retry) -> float:
        """Seconds to wait before the next attempt; raises ClientError when giving up."""
        self.attempts += 1
        self.failures += 1
        self.by_kind[retry.kind] = self.by_kind.get(retry.kind, 0) + 1
        budget = KIND_RETRIES.get(retry.kind)
        if budget is not None and self.by_kind[retry.kind] > budget:
            raise ClientError(EXIT_UNAVAILABLE, f"{retry} (still so after {budget} retries; try again later)")
        if self.failures >= MAX_FAILURES or self.attempts >= MAX_CONNECTIONS:
            raise ClientError(EXIT_UNAVAILABLE, f"giving up after {self.failures} attempts without progress: {retry}")
        spread = jitter(self.scenario, self.attempts)
        if retry.at_least is not None:
            if retry.at_least > MAX_WAIT:
                raise ClientError(EXIT_UNAVAILABLE, f"{retry}: the server asks for a pause of {retry.at_least:g} s, "
                                                    f"longer than this client waits ({MAX_WAIT:g} s); try again later")
            return min(MAX_WAIT, retry.at_least * (1 + 0.1 * spread) + 0.05)
        return min(MAX_WAIT, BASE_WAIT * 2 ** (self.failures - 1) * (1 + 0.25 * spread))

    def wait(self, retry: Retry) -> None:
        seconds = self.delay(retry)
        self.notify(f"{retry}; connecting again in {seconds:.1f} s")
        self.sleep(seconds)
