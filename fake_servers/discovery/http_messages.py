"""HTTP requests and replies as plain data, and how they are written on the wire record.

The web fakes decide what to answer from an :class:`HttpRequest` and return an
:class:`HttpReply`; the server around them does the I/O. Each request becomes one
``CommandRecord``: ``raw`` is the request line, the headers and (up to ``RAW_BODY_CAP``) the
body; ``redacted`` is the same with the Authorization value and any password-like form field
shown as ``***``. :func:`recorded_request` reads a record back (method, host, path…) for the
checks.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

RAW_BODY_CAP = 4096  # body bytes kept in a CommandRecord
SECRET_FIELDS = ("password", "client_secret", "refresh_token", "access_token", "assertion", "code")


@dataclass
class HttpRequest:
    scheme: str  # "https" or "http"
    method: str
    target: str  # as sent: path and query
    version: str
    headers: list[tuple[str, str]]  # in order, names as sent
    body: bytes = b""
    body_length: int = 0  # the whole body's length (``body`` stops at the server's cap)

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    @property
    def host(self) -> str:
        """The Host header's name, lower-case, without port or trailing dot."""
        host = (self.header("host") or "").strip().lower()
        if host.startswith("["):
            return host[1:].split("]", 1)[0]
        return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def basic_credentials(self) -> tuple[str, str] | None:
        """(user, password) of an ``Authorization: Basic`` header, or None."""
        value = self.header("authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        return (user, password) if sep else None

    # -- recording ------------------------------------------------------------------------

    def head_lines(self) -> list[str]:
        return [f"{self.method} {self.target} {self.version}"] + [f"{k}: {v}" for k, v in self.headers]

    def raw(self) -> bytes:
        text = "\r\n".join(self.head_lines()) + "\r\n\r\n"
        return text.encode("utf-8", "surrogateescape") + self.body[:RAW_BODY_CAP]

    def redacted(self) -> str:
        lines = []
        for line in self.head_lines():
            key, sep, value = line.partition(": ")
            if sep and key.lower() in ("authorization", "proxy-authorization"):
                scheme = value.split(" ", 1)[0] if " " in value else ""
                line = f"{key}: {scheme + ' ' if scheme else ''}***"
            lines.append(line)
        text = "\r\n".join(lines)
        if self.body:
            text += "\r\n\r\n" + redact_body(self.body[:RAW_BODY_CAP], self.content_type)
            if self.body_length > RAW_BODY_CAP:
                text += f"… ({self.body_length} bytes)"
        return text

    @property
    def credentials(self) -> bool:
        """An Authorization header, or a secret in a form body, was sent."""
        if self.header("authorization"):
            return True
        if self.content_type == "application/x-www-form-urlencoded":
            return any(self.form().get(name) for name in SECRET_FIELDS)
        return False

    @property
    def auth_scheme(self) -> str | None:
        value = self.header("authorization")
        return value.split(" ", 1)[0] if value else None


def redact_body(body: bytes, content_type: str) -> str:
    text = body.decode("utf-8", "replace")
    if content_type == "application/x-www-form-urlencoded":
        pattern = "|".join(SECRET_FIELDS)
        return re.sub(rf"(^|&)({pattern})=[^&]*", r"\1\2=***", text)
    return re.sub(r"(<Password>)[^<]*(</Password>)", r"\1***\2", text, flags=re.I)


@dataclass
class HttpReply:
    """What to answer, and how (a fault may hold it back, never send it, or reset)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0  # seconds before the reply goes out
    stall: bool = False  # never answer; the connection stays open
    reset: bool = False  # reset the connection instead of answering
    close: bool = False  # answer, then close the connection
    note: str = ""  # why, for the transcript

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Unknown"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def status_line(self) -> str:
        """What the wire record shows: the status line, and where a redirect goes."""
        line = f"HTTP/1.1 {self.status} {self.reason}"
        location = self.header("location")
        if location:
            line += f" Location: {location}"
        return line


def text_reply(status: int, text: str = "", **options) -> HttpReply:
    body = (text or HTTPStatus(status).phrase).encode() + b"\n"
    return HttpReply(status, [("Content-Type", "text/plain; charset=utf-8")], body, **options)


def xml_reply(body: bytes, status: int = 200, **options) -> HttpReply:
    return HttpReply(status, [("Content-Type", "text/xml; charset=utf-8")], body, **options)


def redirect_reply(location: str, status: int = 302, **options) -> HttpReply:
    reply = text_reply(status, f"Moved to {location}", **options)
    reply.headers.append(("Location", location))
    return reply


# -- reading the record back ------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    target: str
    host: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes  # up to RAW_BODY_CAP

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def recorded_request(raw: bytes) -> RecordedRequest:
    """Parse a recorded HTTP ``CommandRecord.raw`` back into its parts."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    method, target, *_ = lines[0].split(" ") + ["", ""]
    headers = tuple(tuple(line.split(": ", 1)) for line in lines[1:] if ": " in line)
    request = HttpRequest("", method, target, "", list(headers))  # type: ignore[arg-type]
    return RecordedRequest(method, target, request.host, request.path, headers, body)  # type: ignore[arg-type]
