"""What the session state machine emits: bytes to send, and directives for the I/O layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator


@dataclass(slots=True)
class Send:
    """Bytes for the client, with what they mean (for the wire record and the fault rules)."""

    data: bytes
    kind: str  # "greeting", "untagged", "tagged", "continuation"
    tag: str | None = None
    status: str | None = None  # OK / NO / BAD / BYE / PREAUTH
    code: str | None = None  # the response code's atom, e.g. "AUTHENTICATIONFAILED"
    injected: bool = False

    @property
    def line(self) -> str:
        """The first line, readable; literal payloads summarised."""
        first, _, rest = self.data.partition(b"\r\n")
        text = first.decode("utf-8", "replace")
        if rest and text.endswith("}"):
            text += f" ... ({len(self.data)} bytes)"
        return text


@dataclass(slots=True)
class Stream:
    """Many responses made lazily (a FETCH of a whole mailbox), written as the socket drains.

    Nothing after it is sent, and no further command is executed, until it is exhausted; so
    a 100,000-message FETCH holds one message in memory at a time, not all of them.
    """

    items: Iterator[Send]


@dataclass(slots=True)
class StartTLS:
    """Begin the TLS handshake once everything before this has been sent."""


@dataclass(slots=True)
class Close:
    """Close the connection once everything before this has been sent."""

    reason: str = "server closed"


def _code_of(text: str) -> str | None:
    if text.startswith("["):
        end = text.find("]")
        if end > 1:
            return text[1:end].split(" ", 1)[0].upper()
    return None


def tagged(tag: str, status: str, text: str) -> Send:
    return Send(f"{tag} {status} {text}\r\n".encode(), "tagged", tag, status, _code_of(text))


def tagged_bytes(tag: str, status: str, text: bytes) -> Send:
    return Send(tag.encode() + b" " + status.encode() + b" " + text + b"\r\n", "tagged", tag, status,
                _code_of(text.decode("utf-8", "replace")))


def untagged(text: str | bytes, status: str | None = None) -> Send:
    data = text if isinstance(text, bytes) else text.encode()
    code = _code_of(data.split(b" ", 1)[1].decode("utf-8", "replace")) if status and b" " in data else None
    return Send(b"* " + data + b"\r\n", "untagged", None, status, code)


def status_untagged(status: str, text: str) -> Send:
    return Send(f"* {status} {text}\r\n".encode(), "untagged", None, status, _code_of(text))


def continuation(text: str | bytes = b"") -> Send:
    data = text if isinstance(text, bytes) else text.encode()
    return Send(b"+ " + data + b"\r\n", "continuation")
