"""A tiny DNS stub client: one question to one server, over UDP (TCP when the answer is
truncated), with a timeout. Messages are encoded and decoded with twisted.names' ``Message``;
no reactor is involved, just a socket.

Only what discovery needs: A records (where a name is) and SRV records (RFC 2782, ordered by
priority, then weight, highest first; a target of "." means the service is not available,
RFC 2782 and RFC 6186 §3.4).
"""

from __future__ import annotations

import secrets
import socket
import struct
from dataclasses import dataclass

DEFAULT_TIMEOUT = 2.0


class DnsError(Exception):
    """No usable answer: the server did not answer, answered garbage, or failed (SERVFAIL…)."""


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str  # "." : not available

    @property
    def available(self) -> bool:
        return self.target not in (".", "") and self.port != 0


@dataclass(frozen=True)
class DnsServer:
    host: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> "DnsServer":
        """``MAILCONFORM_DNS``: ``address:port``, ``[v6]:port`` or a bare address (port 53)."""
        from ..errors import EXIT_USAGE, ClientError

        text = text.strip()
        host, port = text, "53"
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else "53"
        elif text.count(":") == 1:
            host, port = text.split(":")
        try:
            number = int(port)
        except ValueError:
            number = 0
        if not host or not 0 < number < 65536:
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_DNS is not address:port: {text!r}")
        return cls(host, number)

    # -- questions --------------------------------------------------------------------------

    def addresses(self, name: str, *, timeout: float | None = None) -> list[str]:
        """The IPv4 addresses of ``name`` (empty: the name exists without one; DnsError for
        NXDOMAIN, a failure or no answer)."""
        from twisted.names import dns

        reply = self.ask(name, dns.A, timeout=timeout)
        if reply.rCode == dns.ENAME:
            raise DnsError(f"{name}: no such name (NXDOMAIN)")
        return [rr.payload.dottedQuad() for rr in reply.answers if rr.type == dns.A]

    def srv(self, name: str, *, timeout: float | None = None) -> list[Srv]:
        """The SRV records of ``name``, best first (empty for NXDOMAIN or no records)."""
        from twisted.names import dns

        reply = self.ask(name, dns.SRV, timeout=timeout)
        if reply.rCode == dns.ENAME:
            return []
        found = []
        for rr in reply.answers:
            if rr.type != dns.SRV:
                continue
            p = rr.payload
            target = p.target.name.decode("ascii", "replace").rstrip(".") or "."
            found.append(Srv(p.priority, p.weight, p.port, target.lower()))
        return sorted(found, key=lambda r: (r.priority, -r.weight))

    def ask(self, name: str, qtype: int, *, timeout: float | None = None):
        """One question; the reply Message (rCode OK or NXDOMAIN; anything else is DnsError)."""
        from twisted.names import dns

        timeout = DEFAULT_TIMEOUT if timeout is None else max(0.05, timeout)
        query = dns.Message(id=secrets.randbelow(65536), recDes=1)
        query.addQuery(name.rstrip(".").encode("idna"), qtype)
        data = query.toStr()
        reply = self._udp(data, query.id, timeout)
        if reply.trunc:
            reply = self._tcp(data, query.id, timeout)
        if reply.rCode not in (dns.OK, dns.ENAME):
            raise DnsError(f"{name}: the DNS server answered rcode {reply.rCode}")
        return reply

    def _family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def _udp(self, data: bytes, ident: int, timeout: float):
        with socket.socket(self._family(), socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect((self.host, self.port))  # only the server's datagrams are received
                sock.send(data)
                while True:
                    raw = sock.recv(65535)
                    reply = _decode(raw)
                    if reply is not None and reply.id == ident and reply.answer:
                        return reply
            except TimeoutError:
                raise DnsError(f"no answer from the DNS server {self.host}:{self.port} within {timeout:g} s") from None
            except OSError as exc:
                raise DnsError(f"DNS server {self.host}:{self.port}: {exc}") from None

    def _tcp(self, data: bytes, ident: int, timeout: float):
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.sendall(struct.pack("!H", len(data)) + data)
                size = struct.unpack("!H", _exactly(sock, 2))[0]
                reply = _decode(_exactly(sock, size))
        except TimeoutError:
            raise DnsError(f"no answer from the DNS server {self.host}:{self.port} (TCP) within {timeout:g} s") \
                from None
        except OSError as exc:
            raise DnsError(f"DNS server {self.host}:{self.port} (TCP): {exc}") from None
        if reply is None or reply.id != ident:
            raise DnsError(f"DNS server {self.host}:{self.port} (TCP) answered garbage")
        return reply


def _decode(raw: bytes):
    from twisted.names import dns

    message = dns.Message()
    try:
        message.fromStr(raw)
    except Exception:  # a malformed datagram: ignored, as stub resolvers do
        return None
    return message


def _exactly(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf
