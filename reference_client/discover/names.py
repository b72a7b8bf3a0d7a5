"""Where a host name is: the connect-to map, the configured DNS server, or the system.

Discovery scenarios have their own names (``autoconfig.example.test``…) that the machine's
resolver does not know, and their servers listen on loopback ports that are not the ports
in the URLs (443, 80). Two settings say where things are:

* ``MAILCONFORM_CONNECT_TO``: comma-separated ``host:port:address:port`` entries, as curl's
  ``--connect-to``: a connection to ``host:port`` goes to ``address:port`` instead, while the
  URL's host stays the name checked in the TLS certificate and sent as ``Host``;
* ``MAILCONFORM_DNS``: ``address:port`` of the DNS server to ask (A records here, SRV records
  in :mod:`reference_client.discover`).

:meth:`Names.routing` makes every TCP connection the client opens by name (IMAP, SMTP,
HTTPS) go where these say, for the duration of a ``with`` block; names neither knows are
left to the system's resolver. Numeric addresses are never touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from ..errors import EXIT_USAGE, ClientError
from .dnsquery import DnsError, DnsServer

_patch_lock = threading.Lock()
_ENTRY = re.compile(r"^([^:\[\]]+):(\d+):(\[[^\]]+\]|[^:\[\]]+):(\d+)$")  # curl's --connect-to


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def parse_connect_to(text: str) -> dict[tuple[str, int], tuple[str, int]]:
    """``MAILCONFORM_CONNECT_TO`` as a map; ClientError (exit 2) naming a malformed entry."""
    found: dict[tuple[str, int], tuple[str, int]] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if match is None or not all(0 < int(match.group(i)) < 65536 for i in (2, 4)):
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_CONNECT_TO: {entry!r} is not host:port:address:port")
        name, port, address, target = match.groups()
        found[(_norm(name), int(port))] = (address.strip("[]"), int(target))
    return found


@dataclass
class Names:
    """Name resolution for one run of the client."""

    connect_to: Mapping[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    dns: DnsServer | None = None
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Names":
        connect_to = parse_connect_to(env.get("MAILCONFORM_CONNECT_TO", ""))
        dns_text = env.get("MAILCONFORM_DNS") or ""
        return cls(connect_to, DnsServer.parse(dns_text) if dns_text else None)

    @property
    def active(self) -> bool:
        return bool(self.connect_to) or self.dns is not None

    def where(self, host: str, port: int, timeout: float | None = None) -> tuple[str, int]:
        """The address and port a connection to ``host:port`` goes to."""
        name = _norm(host)
        if (name, port) in self.connect_to:
            return self.connect_to[(name, port)]
        if _numeric(host) or name == "localhost" or self.dns is None:
            return host, port
        if name not in self._cache:
            try:
                addresses = self.dns.addresses(name, timeout=timeout)
            except DnsError as exc:
                raise OSError(f"cannot resolve {host}: {exc}") from None
            if not addresses:
                raise OSError(f"cannot resolve {host}: no address records")
            self._cache[name] = addresses[0]
        return self._cache[name], port

    def create_connection(self, address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kwargs):
        """``socket.create_connection`` through this map (same signature)."""
        host, port = address[0], int(address[1])
        seconds = timeout if isinstance(timeout, (int, float)) else None
        target = self.where(host, port, seconds)
        return _original_create_connection(target, timeout, source_address, **kwargs)

    @contextlib.contextmanager
    def routing(self) -> Iterator["Names"]:
        """Within the block, ``socket.create_connection`` (imaplib, smtplib and http.client
        connect through it) goes where this map says. A no-op when nothing is configured."""
        if not self.active:
            yield self
            return
        with _patch_lock:
            previous = socket.create_connection
            socket.create_connection = self.create_connection
        try:
            yield self
        finally:
            with _patch_lock:
                socket.create_connection = previous


_original_create_connection = socket.create_connection
