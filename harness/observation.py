"""Everything one scenario produced, as the checks see it.

The wire log and the server's mailboxes come from the fake provider (read on its loop
thread and copied, so checks never touch live state); the Maildir and the outcomes come
from the client's side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .outcome import Outcome

if TYPE_CHECKING:  # the harness never opens sockets; it only reads what the fakes recorded
    from fake_servers.wire import WireLog

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

    @property
    def final_server(self) -> ServerMailboxes:
        return self.server_after_run[-1] if self.server_after_run else {}
