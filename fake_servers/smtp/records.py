"""What the harness asks the SMTP fake afterwards: every message a client submitted, and its fate.

A :class:`Submission` is made at each end of DATA (the final ``.``), accepted or not, so
"no message silently lost" and "no duplicates" can be decided from the server side alone,
even when a fault kept the reply from reaching the client (``reply_sent`` is False then).
"""

from __future__ import annotations

import threading
from typing import NamedTuple


class Submission(NamedTuple):
    """One end of DATA the fake received (a named tuple, as the wire records are: see
    fake_servers.wire)."""

    run: int
    session: int  # the connection's 1-based session number on its server
    connection: int  # the wire record's id
    server: str  # "smtp" or "smtps"
    user: str | None  # the authenticated account, if any
    mail_from: str
    rcpt_tos: tuple[str, ...]  # recipients accepted at RCPT
    refused_rcpts: tuple[str, ...]  # recipients refused at RCPT ...
    rcpt_replies: tuple[str, ...]  # ... and the reply each of them got, in the same order
    data: bytes  # as received, dot-unstuffed, CRLF line ends (cut short when over the size limit)
    size: int  # bytes of message data received
    reply: str  # the final reply line decided (after any fault's replacement), e.g. "250 2.0.0 OK"
    accepted: bool  # the fake accepted the message (and delivered it into the MailStore)
    reply_sent: bool  # the reply reached the wire (False: a reset, close or stall came first)
    at: float  # time.monotonic() at the final dot
    smtputf8: bool  # MAIL had SMTPUTF8
    body: str | None  # MAIL BODY= value
    declared_size: int | None  # MAIL SIZE= value


_FIELDS = frozenset(Submission._fields)


class SubmissionLog:
    """Submissions in the order the fake received them; readable from any thread."""

    def __init__(self) -> None:
        self._items: list[Submission] = []
        self._sent: set[int] = set()  # submissions whose reply reached the wire, not yet in their item
        self._lock = threading.Lock()

    def add(self, submission: Submission) -> int:
        with self._lock:
            self._items.append(submission)
            return len(self._items) - 1

    def mark_sent(self, index: int) -> None:
        """The reply of submission ``index`` reached the wire: ``update(index, reply_sent=True)``,
        noted now and applied when the submissions are read (the fake does this per message)."""
        with self._lock:
            self._sent.add(index)

    def _settle(self) -> None:
        """Apply the noted :meth:`mark_sent` calls (the lock is held)."""
        for index in self._sent:
            self._items[index] = self._items[index]._replace(reply_sent=True)
        self._sent.clear()

    def update(self, index: int, **changes) -> None:
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"Submission has no field(s) {', '.join(sorted(unknown))}")
        with self._lock:
            self._settle()
            self._items[index] = self._items[index]._replace(**changes)

    def snapshot(self) -> list[Submission]:
        with self._lock:
            self._settle()
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
