"""What discovery finds: servers, how they are secured, and where the answer came from."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ClientError


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    security: str  # tls (implicit), starttls, none: as MAILCONFORM_*_SECURITY

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.security})"


@dataclass(frozen=True)
class Found:
    """One method's answer: the IMAP server (None: the answer had no usable one), the SMTP
    server, and how it was found (``via``: "autoconfig at https://…")."""

    imap: Server | None
    smtp: Server | None
    via: str
    refused: tuple[str, ...] = ()  # entries not used because they had no TLS, as text


class StepFailed(Exception):
    """This step found nothing usable; discovery goes on with the next one."""


class Stop(Exception):
    """Discovery must stop here (a national cloud, say): ``error`` is what to report."""

    def __init__(self, error: ClientError) -> None:
        super().__init__(str(error))
        self.error = error


def xml_ok(body: bytes) -> bool:
    """Documents with a DTD are not parsed (entity expansion); the client needs none."""
    head = body[:4096].upper()
    return b"<!DOCTYPE" not in head and b"<!ENTITY" not in body.upper()
