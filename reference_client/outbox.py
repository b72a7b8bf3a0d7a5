"""The outbox: the ``*.eml`` files to submit, what each is sent as, and what was delivered.

A message's envelope comes from its own header, as ``sendmail -t`` does: the recipients
are the addresses of its ``To``, ``Cc`` and ``Bcc`` fields (each address once, compared
without regard to case, in the order they appear), the sender is the address of ``From``
(``Sender`` when ``From`` names several; ``MAILCONFORM_EMAIL`` when there is no ``From``).
What is sent is the file with its ``Bcc`` fields removed (so blind recipients stay blind)
and every line ending made CRLF, as SMTP requires; nothing else is changed.

A message that can never be sent as it is (no recipient, an unparseable address, a file
that cannot be read) carries its ``problem`` and is reported and kept, never deleted.

:class:`Progress` remembers, in ``MAILCONFORM_STATE_DIR/outbox.json``, the recipients a
message was already delivered to when only part of its recipients could be served (a
recipient refused or deferred, a daily quota reached half way). A later attempt, in this run
or the next, sends only to the others, so nobody receives it twice and nobody is forgotten;
the file stays in the outbox until every recipient has it. An entry is keyed by the file's
name *and* content hash: a file replaced with different content starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path

ADDRESS_FIELDS = ("to", "cc", "bcc")
HIDDEN_FIELDS = ("bcc",)  # removed from what is sent (RFC 5322 §3.6.3)

_EOL = re.compile(rb"\r\n|\r|\n")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:")


@dataclass
class Outgoing:
    path: Path
    raw: bytes  # the file as it is
    data: bytes  # what is submitted: CRLF line endings, Bcc removed
    sender: str
    recipients: list[str]
    problem: str | None = None  # why it can never be sent as it is

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def key(self) -> str:
        return f"{self.name}:{hashlib.sha256(self.raw).hexdigest()}"


def read(directory: Path, default_sender: str = "") -> list[Outgoing]:
    """Every ``*.eml`` file of ``directory``, in name order (the order they were queued)."""
    if not directory.is_dir():
        return []
    messages = []
    for path in sorted(p for p in directory.iterdir() if p.name.endswith(".eml") and p.is_file()):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            messages.append(Outgoing(path, b"", b"", "", [], problem=f"cannot be read: {exc.strerror or exc}"))
            continue
        messages.append(parse(path, raw, default_sender))
    return messages


def parse(path: Path, raw: bytes, default_sender: str = "") -> Outgoing:
    data = crlf(raw)
    header, body = split_header(data)
    fields = header_fields(header)
    message = Outgoing(path, raw, strip_fields(header, HIDDEN_FIELDS) + body, "", [])
    try:
        recipients = addresses(v for name, v in fields if name in ADDRESS_FIELDS)
        senders = addresses(v for name, v in fields if name == "from")
        if len(senders) > 1:
            senders = addresses(v for name, v in fields if name == "sender") or senders[:1]
    except ValueError as exc:
        message.problem = str(exc)
        return message
    message.recipients = recipients
    message.sender = senders[0] if senders else default_sender
    if not recipients:
        message.problem = "it names no recipient (no address in To, Cc or Bcc)"
    elif not message.sender:
        message.problem = "it has no From address and MAILCONFORM_EMAIL is not set"
    return message


def crlf(data: bytes) -> bytes:
    """Every line ending as CRLF (bare LF and bare CR included), and a final one."""
    data = _EOL.sub(b"\r\n", data)
    return data if data.endswith(b"\r\n") or not data else data + b"\r\n"


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """(header block with its last CRLF, the rest from the empty line on); CRLF data."""
    if data.startswith(b"\r\n"):
        return b"", data
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data, b""
    return data[:end + 2], data[end + 2:]


def header_fields(header: bytes) -> list[tuple[str, str]]:
    """(lower-cased name, unfolded value) of each field; values decoded as UTF-8 (RFC 6532),
    undecodable bytes kept as surrogates so they are recognised later, never guessed."""
    fields: list[tuple[str, bytes]] = []
    for line in header.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
            continue
        match = _FIELD.match(line)
        if match:
            fields.append((match.group(1).decode("ascii").lower(), line[match.end():]))
    return [(name, value.decode("utf-8", "surrogateescape").strip()) for name, value in fields]


def strip_fields(header: bytes, names: tuple[str, ...]) -> bytes:
    """``header`` without the fields called ``names`` (continuation lines included)."""
    kept = []
    dropping = False
    for line in header.split(b"\r\n")[:-1] if header else []:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        match = _FIELD.match(line)
        dropping = bool(match) and match.group(1).decode("ascii").lower() in names
        if not dropping:
            kept.append(line)
    return b"".join(line + b"\r\n" for line in kept)


def addresses(values) -> list[str]:
    """The addresses of address-list field values, each once (case-insensitively)."""
    found: list[str] = []
    seen: set[str] = set()
    for _name, address in getaddresses(list(values)):
        address = address.strip()
        if not address:
            continue  # an empty group such as "undisclosed-recipients:;"
        try:
            address.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"an address in its header is not valid UTF-8: {address!r}") from None
        if "@" not in address or any(c.isspace() or c in "<>" for c in address):
            raise ValueError(f"{address!r} in its header is not a usable address")
        if address.lower() not in seen:
            seen.add(address.lower())
            found.append(address)
    return found


@dataclass
class Progress:
    """Recipients each message was already delivered to (see the module's note)."""

    file: Path
    delivered: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> "Progress":
        file = state_dir / "outbox.json"
        try:
            data = json.loads(file.read_text("utf-8"))
            delivered = {str(k): [str(a) for a in v] for k, v in data["delivered"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            delivered = {}  # none or unreadable: at worst a recipient gets a message twice
        return cls(file, delivered)

    def done(self, message: Outgoing) -> set[str]:
        return {a.lower() for a in self.delivered.get(message.key, [])}

    def remaining(self, message: Outgoing) -> list[str]:
        done = self.done(message)
        return [r for r in message.recipients if r.lower() not in done]

    def add(self, message: Outgoing, recipients: list[str]) -> None:
        self.delivered.setdefault(message.key, []).extend(recipients)
        self.save()

    def forget(self, message: Outgoing) -> None:
        if self.delivered.pop(message.key, None) is not None:
            self.save()

    def keep_only(self, messages: list[Outgoing]) -> None:
        """Forget messages no longer in the outbox (sent by someone else, or removed)."""
        keys = {m.key for m in messages}
        stale = [k for k in self.delivered if k not in keys]
        for key in stale:
            del self.delivered[key]
        if stale:
            self.save()

    def save(self) -> None:
        """Atomically: a crash leaves the old record or the new one."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump({"version": 1, "delivered": self.delivered}, out, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.file)
