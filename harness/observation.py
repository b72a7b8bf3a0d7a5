"""Everything one scenario produced, as the checks see it.

The wire log, the server's mailboxes and the SMTP submissions come from the fake provider
(read on its loop thread and copied, so checks never touch live state); the Maildir, the
outbox listings and the outcomes come from the client's side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .outcome import Outcome

if TYPE_CHECKING:  # the harness never opens sockets; it only reads what the fakes recorded
    from fake_servers.wire import WireLog

    from .discovery import DiscoveryFacts

    from .scenario import Scenario

ServerMailboxes = dict[str, list[bytes]]  # folder name -> message bytes, in UID order


@dataclass
class Observation:
    scenario: "Scenario"
    wire: "WireLog"
    outcomes: list[Outcome]
    maildir: Path
    outbox: Path
    username: str
    password: str
    server_after_run: list[ServerMailboxes] = field(default_factory=list)  # index 0 = after run 1
    secrets: tuple[bytes, ...] = ()  # every credential the client was given, as bytes
    # SMTP: every end-of-DATA the fake received, accepted or not, in order (fake_servers.smtp Submission)
    submissions: list = field(default_factory=list)
    outbox_messages: dict[str, bytes] = field(default_factory=dict)  # file name -> what the harness wrote
    outbox_run: dict[str, int] = field(default_factory=dict)  # file name -> the run before which it appeared
    outbox_after_run: list[set[str]] = field(default_factory=list)  # index 0 = the outbox's files after run 1
    discovery: "DiscoveryFacts | None" = None  # the provider's [discovery] side (harness.discovery), if any

    def outbox_removed_in(self, name: str) -> int | None:
        """The run after which outbox file ``name`` was first gone (None: it was never removed)."""
        first = self.outbox_run.get(name, 1)
        for run, left in enumerate(self.outbox_after_run, start=1):
            if run >= first and name not in left:
                return run
        return None

    @property
    def final_server(self) -> ServerMailboxes:
        return self.server_after_run[-1] if self.server_after_run else {}
