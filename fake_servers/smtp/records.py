"""What the harness asks the SMTP fake afterwards: every message a client submitted, and its fate.

A :class:`Submission` is made at each end of DATA (the final ``.``), accepted or not, so
"no message silently lost" and "no duplicates" can be decided from the server side alone,
even when a fault kept the reply from reaching the client (``reply_sent`` is False then).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Submission:
    """One end of DATA the fake received."""

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


_FIELDS = frozenset(f.name for f in dataclasses.fields(Submission))


def make_submission(fields: dict) -> Submission:
    """``Submission(**fields)`` for every field, made as :meth:`SubmissionLog.update` makes
    its copies: without the frozen dataclass's setattr per field (one Submission per message)."""
    if fields.keys() != _FIELDS:
        raise TypeError(f"Submission fields missing or unknown: {sorted(fields.keys() ^ _FIELDS)}")
    new = object.__new__(Submission)
    new.__dict__.update(fields)
    return new


class SubmissionLog:
    """Submissions in the order the fake received them; readable from any thread."""

    def __init__(self) -> None:
        self._items: list[Submission] = []
        self._lock = threading.Lock()

    def add(self, submission: Submission) -> int:
        with self._lock:
            self._items.append(submission)
            return len(self._items) - 1

    def mark_sent(self, index: int) -> None:
        """The reply of submission ``index`` reached the wire: ``update(index, reply_sent=True)``."""
        with self._lock:
            old = self._items[index]
            new = object.__new__(Submission)
            new.__dict__.update(old.__dict__)
            new.__dict__["reply_sent"] = True
            self._items[index] = new

    def update(self, index: int, **changes) -> None:
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"Submission has no field(s) {', '.join(sorted(unknown))}")
        with self._lock:
            # dataclasses.replace() runs __init__ again; a copy with the changes is the same
            # value, made in a tenth of the time (an update per message sent)
            old = self._items[index]
            new = object.__new__(Submission)
            new.__dict__.update(old.__dict__)
            new.__dict__.update(changes)
            self._items[index] = new

    def snapshot(self) -> list[Submission]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
