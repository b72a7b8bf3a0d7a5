"""What the fake DNS answers, decided without any I/O.

Every name of the scenario has an A record for 127.0.0.1 (where every fake listens);
AAAA (``::1``) only when the scenario asks for it; SRV records carry the fakes' real ports;
a name the scenario does not have is NXDOMAIN, and a known name without records of the asked
type is an empty NOERROR (NODATA), as an authoritative server answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"


@dataclass(frozen=True)
class Record:
    name: str
    type: str  # "A", "AAAA", "SRV", "MX"
    data: tuple  # A/AAAA: (address,); SRV: (priority, weight, port, target); MX: (preference, host)

    def text(self) -> str:
        """As a transcript shows it: ``SRV _imaps._tcp.example.test 0 1 993 imap.example.test``."""
        return " ".join([self.type, self.name, *(str(part) for part in self.data)])


@dataclass(frozen=True)
class Answer:
    rcode: str  # "NOERROR" or "NXDOMAIN"
    records: tuple[Record, ...] = ()


class Zone:
    """The scenario's names and records; :meth:`answer` is the whole server logic."""

    def __init__(self, names: Iterable[str], *, srv: Iterable[tuple[str, str, int, int, int]] = (),
                 mx: Iterable[tuple[str, int, str]] = (), aaaa: bool = False) -> None:
        """``srv``: (owner, target, port, priority, weight), target "." for "not available";
        ``mx``: (owner, preference, host)."""
        self.addresses = {_norm(n) for n in names}
        self.records: dict[str, list[Record]] = {}
        for owner, target, port, priority, weight in srv:
            self._add(Record(_norm(owner), "SRV", (priority, weight, port, _norm(target) or ".")))
        for owner, preference, host in mx:
            self._add(Record(_norm(owner), "MX", (preference, _norm(host))))
        self.aaaa = aaaa

    def _add(self, record: Record) -> None:
        self.records.setdefault(record.name, []).append(record)

    def knows(self, name: str) -> bool:
        name = _norm(name)
        return name in self.addresses or name in self.records

    def answer(self, name: str, qtype: str) -> Answer:
        name, qtype = _norm(name), qtype.upper()
        if not self.knows(name):
            return Answer("NXDOMAIN")
        found: list[Record] = []
        if name in self.addresses:
            if qtype in ("A", "ANY"):
                found.append(Record(name, "A", (LOOPBACK_V4,)))
            if qtype in ("AAAA", "ANY") and self.aaaa:
                found.append(Record(name, "AAAA", (LOOPBACK_V6,)))
        found += [r for r in self.records.get(name, ()) if qtype in (r.type, "ANY")]
        return Answer("NOERROR", tuple(found))


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()
