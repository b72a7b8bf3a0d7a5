"""Making a scenario's names reach the fakes, without touching the machine's configuration.

Clients build discovery URLs with default ports (``https://autodiscover.example.test/…``),
but the fakes listen on OS-assigned loopback ports. A *connect-to map* says where each
(name, port) really is: ``{("autodiscover.example.test", 443): ("127.0.0.1", 40123)}``.
Command clients get it as curl's ``--connect-to`` entries (:func:`connect_to_entries`);
an in-process Python client runs inside :func:`resolve_to_fakes`, which answers
``socket.getaddrinfo`` from the map and refuses every other name, so a test never reaches
another machine.

>>> with resolve_to_fakes(discovery.connect_to):
...     urllib.request.urlopen("https://autodiscover.example.test/autodiscover/autodiscover.xml", ...)
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from typing import Iterator, Mapping

ConnectToMap = Mapping[tuple[str, int], tuple[str, int]]

_lock = threading.RLock()
_original = {"getaddrinfo": socket.getaddrinfo, "gethostbyname": socket.gethostbyname,
             "gethostbyname_ex": socket.gethostbyname_ex}
_active: list["_Resolver"] = []  # nested uses: the innermost map answers


def connect_to_entries(connect_to: ConnectToMap) -> list[str]:
    """curl's ``--connect-to`` syntax, ``name:port:host:port``, one per entry (entries that keep
    the port are needed too: curl resolves names with the system's resolver, which does not
    know the scenario's names)."""
    return [f"{name}:{port}:{host}:{target}" for (name, port), (host, target) in sorted(connect_to.items())]


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _port_number(port) -> int | None:
    if port is None:
        return None
    if isinstance(port, bytes):
        port = port.decode("ascii")
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        try:
            return socket.getservbyname(port, "tcp")
        except OSError:
            raise socket.gaierror(socket.EAI_SERVICE, f"Servname not supported: {port!r}") from None
    return int(port)


class _Resolver:
    def __init__(self, connect_to: ConnectToMap) -> None:
        self.map = {(_norm(name), int(port)): (host, int(target))
                    for (name, port), (host, target) in connect_to.items()}
        self.names = {name for name, _ in self.map}
        self.looked_up: list[tuple[str, int | None]] = []  # what the client asked for, in order

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        if isinstance(host, bytes):
            host = host.decode("idna")
        if host is None or _loopback(str(host)):
            return _original["getaddrinfo"](host, port, family, type, proto, flags)
        name = _norm(str(host))
        number = _port_number(port)
        _record((name, number))
        if name not in self.names:
            raise _unknown(host)
        address, target = self.map.get((name, number), ("127.0.0.1", number or 0))
        if family not in (0, socket.AF_UNSPEC, socket.AF_INET):
            raise socket.gaierror(socket.EAI_ADDRFAMILY if hasattr(socket, "EAI_ADDRFAMILY") else socket.EAI_NONAME,
                                  f"{host!r} has no address of family {family!r}")
        return _original["getaddrinfo"](address, target, socket.AF_INET, type, proto, flags | socket.AI_NUMERICHOST)

    def gethostbyname(self, host):
        return self.gethostbyname_ex(host)[2][0]

    def gethostbyname_ex(self, host):
        if _loopback(str(host)):
            return _original["gethostbyname_ex"](host)
        name = _norm(str(host))
        _record((name, None))
        if name not in self.names:
            raise _unknown(host)
        return (name, [], ["127.0.0.1"])


def _record(lookup: tuple[str, int | None]) -> None:
    """Every active resolver sees the lookup: an adapter that nests its own block inside the
    harness's must not hide what the client asked for from the outer one."""
    for resolver in _active:
        resolver.looked_up.append(lookup)


def _unknown(host) -> socket.gaierror:
    return socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host!r} (not a name of this scenario)")


def _current() -> _Resolver:
    return _active[-1]


def _getaddrinfo(*args, **kwargs):
    return _current().getaddrinfo(*args, **kwargs)


def _gethostbyname(host):
    return _current().gethostbyname(host)


def _gethostbyname_ex(host):
    return _current().gethostbyname_ex(host)


@contextlib.contextmanager
def resolve_to_fakes(connect_to: ConnectToMap) -> Iterator[_Resolver]:
    """Within the block, the map's names resolve to the fakes (a known name on a port the map
    does not list resolves to 127.0.0.1 on that port, as the fake DNS would answer) and every
    other name raises ``socket.gaierror``; loopback addresses and ``localhost`` still work.
    Everything is restored on exit. Yields the resolver (``looked_up`` lists what was asked)."""
    resolver = _Resolver(connect_to)
    with _lock:
        _active.append(resolver)
        if len(_active) == 1:
            socket.getaddrinfo = _getaddrinfo
            socket.gethostbyname = _gethostbyname
            socket.gethostbyname_ex = _gethostbyname_ex
    try:
        yield resolver
    finally:
        with _lock:
            _active.remove(resolver)
            if not _active:
                socket.getaddrinfo = _original["getaddrinfo"]
                socket.gethostbyname = _original["gethostbyname"]
                socket.gethostbyname_ex = _original["gethostbyname_ex"]
