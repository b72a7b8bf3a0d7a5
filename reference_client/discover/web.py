"""HTTP(S) requests for discovery and OAuth: one request, no automatic redirects, bounded.

* TLS trusts ``MAILCONFORM_CA_FILE`` only and checks the URL's host name
  (:func:`reference_client.connect.tls_context`), whatever address the connection really
  goes to (:class:`~reference_client.discover.names.Names`).
* Credentials are refused over plain http before anything is sent: :meth:`Web.request`
  raises when asked to send an ``Authorization`` header or a body marked secret to an
  ``http:`` URL.
* Every request has a timeout (per socket operation, and never past the discovery's
  deadline) and a cap on the body it reads.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.message import Message
from typing import Callable
from urllib.parse import urlsplit

from ..connect import tls_context
from .names import Names

REQUEST_TIMEOUT = 4.0  # seconds: connect, TLS handshake, and each read
MAX_BODY = 1 << 20
USER_AGENT = "mailconform-reference-client/0.1"


class WebError(Exception):
    """No HTTP answer: refused, reset, timed out, a bad certificate, a body too large…
    ``insecure`` is set for certificate and TLS failures."""

    def __init__(self, message: str, *, insecure: bool = False) -> None:
        super().__init__(message)
        self.insecure = insecure


@dataclass
class Response:
    url: str
    status: int
    headers: Message
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""

    @property
    def content_type(self) -> str:
        return self.header("Content-Type").split(";", 1)[0].strip().lower()


@dataclass
class Deadline:
    """A time budget shared by every request of one discovery (clock injectable)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    start: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.start < 0:
            self.start = self.clock()

    @property
    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.start)

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    @property
    def expired(self) -> bool:
        return self.remaining <= 0


class Web:
    def __init__(self, names: Names, ca_file: str | None, *, deadline: Deadline | None = None,
                 timeout: float = REQUEST_TIMEOUT, max_body: int = MAX_BODY) -> None:
        self.names = names
        self.context: ssl.SSLContext = tls_context(ca_file)
        self.deadline = deadline
        self.timeout = timeout
        self.max_body = max_body

    def _timeout(self) -> float:
        if self.deadline is None:
            return self.timeout
        remaining = self.deadline.remaining
        if remaining <= 0:
            raise WebError("out of time")
        return max(0.05, min(self.timeout, remaining))

    def request(self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                secret: bool = False) -> Response:
        """One request. ``secret``: the body carries credentials (https only, as is any
        ``Authorization`` header)."""
        parts = urlsplit(url)
        headers = dict(headers or {})
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebError(f"not an http(s) URL: {url}")
        if parts.scheme != "https" and (secret or any(k.lower() == "authorization" for k in headers)):
            raise WebError(f"refusing to send credentials over http to {parts.hostname}", insecure=True)
        timeout = self._timeout()
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise WebError(f"bad port in {url}") from None
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                                            context=self.context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn._create_connection = self.names.create_connection  # connect-to map and DNS; Host stays the name
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers.setdefault("User-Agent", USER_AGENT)
        headers.setdefault("Accept", "*/*")
        where = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        try:
            conn.request(method, target, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read(self.max_body + 1)
            if len(data) > self.max_body:
                raise WebError(f"{where}: answer larger than {self.max_body} bytes")
            return Response(url, answer.status, answer.headers, data)
        except ssl.SSLCertVerificationError as exc:
            raise WebError(f"invalid certificate from {where}: {exc.verify_message}", insecure=True) from None
        except ssl.SSLError as exc:
            raise WebError(f"TLS handshake with {where} failed ({exc.reason or exc})", insecure=True) from None
        except (TimeoutError, socket.timeout):
            raise WebError(f"{where}: no answer within {timeout:g} s") from None
        except ConnectionRefusedError:
            raise WebError(f"{where}: connection refused") from None
        except (ConnectionResetError, http.client.RemoteDisconnected, http.client.IncompleteRead):
            raise WebError(f"{where}: connection closed without an answer") from None
        except http.client.HTTPException as exc:
            raise WebError(f"{where}: not a valid HTTP answer ({type(exc).__name__})") from None
        except OSError as exc:
            raise WebError(f"{where}: {exc.strerror or exc}") from None
        finally:
            conn.close()
