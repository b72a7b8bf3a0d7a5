"""The fake DNS server's I/O: twisted.names over UDP and TCP on 127.0.0.1, every query recorded.

What to answer is :class:`~fake_servers.discovery.zone.Zone`'s business. On the wire each
query is one ``CommandRecord`` (name: the query type, redacted: ``"SRV _imaps._tcp.example.test"``)
and each answer record one ``ResponseRecord`` (status ``NOERROR`` / ``NXDOMAIN``). A UDP
datagram is a connection of its own (opened and closed around its one query); a TCP
connection is one record however many queries it carries.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.names import dns, server

from ..wire import ConnectionRecord, WireLog
from .zone import Answer, Record, Zone

SERVER_NAME = "dns"


def _payload(record: Record, ttl: int) -> Any:
    if record.type == "A":
        return dns.Record_A(record.data[0], ttl)
    if record.type == "AAAA":
        return dns.Record_AAAA(record.data[0], ttl)
    if record.type == "SRV":
        priority, weight, port, target = record.data
        return dns.Record_SRV(priority, weight, port, b"" if target == "." else target.encode("ascii"), ttl)
    if record.type == "MX":
        preference, host = record.data
        return dns.Record_MX(preference, host.encode("ascii"), ttl)
    raise ValueError(f"no DNS payload for {record.type}")


def _rrheader(record: Record, ttl: int) -> dns.RRHeader:
    return dns.RRHeader(record.name.encode("ascii"), getattr(dns, record.type), dns.IN, ttl,
                        _payload(record, ttl), auth=True)


class RecordingDNSFactory(server.DNSServerFactory):
    """Answers from a zone and writes every query and answer to the wire log."""

    noisy = False

    def __init__(self, zone: Zone, wire: WireLog, ttl: int = 60) -> None:
        super().__init__(verbose=0)
        self.zone = zone
        self.wire = wire
        self.ttl = ttl
        self._records: dict[int, ConnectionRecord] = {}  # id(TCP protocol) -> its record
        self._gone: dict[int, Deferred] = {}

    # -- TCP connections --------------------------------------------------------------------

    def connectionMade(self, protocol) -> None:  # noqa: N802 - Twisted's name
        super().connectionMade(protocol)
        peer = protocol.transport.getPeer()
        self._records[id(protocol)] = self.wire.open("dns", SERVER_NAME, f"{peer.host}:{peer.port}")
        self._gone[id(protocol)] = Deferred()

    def connectionLost(self, protocol) -> None:  # noqa: N802
        super().connectionLost(protocol)
        record = self._records.pop(id(protocol), None)
        if record is not None:
            record.closed("closed")
        gone = self._gone.pop(id(protocol), None)
        if gone is not None:
            gone.callback(None)

    def abort_all(self) -> Deferred:
        waits = [self._gone[id(p)] for p in list(self.connections) if id(p) in self._gone]
        for protocol in list(self.connections):
            protocol.transport.abortConnection()
        return DeferredList(waits)

    # -- queries ------------------------------------------------------------------------------

    def handleQuery(self, message, protocol, address):  # noqa: N802
        udp = address is not None
        if udp:
            record = self.wire.open("dns", SERVER_NAME, f"{address[0]}:{address[1]}")
        else:
            record = self._records.get(id(protocol))
            if record is None:  # not tracked (should not happen): record it on its own
                record = self.wire.open("dns", SERVER_NAME, "unknown")
        query = message.queries[0]
        name = query.name.name.decode("ascii", "replace")
        qtype = dns.QUERY_TYPES.get(query.type, dns.EXT_QUERIES.get(query.type, f"TYPE{query.type}"))
        raw = message.toStr()
        record.received(raw)
        record.add_command(time.monotonic(), False, "", str(message.id), qtype, raw,
                           f"{qtype} {name}")
        record.announce(f"C: {qtype} {name}")
        answer = self.zone.answer(name, qtype) if query.cls in (dns.IN, dns.ANY) else Answer("NOERROR")
        rcode = dns.OK if answer.rcode == "NOERROR" else dns.ENAME
        response = self._responseFromMessage(message=message, rCode=rcode,
                                             answers=[_rrheader(r, self.ttl) for r in answer.records])
        response.auth = True
        self._record_answer(record, answer, name, qtype)
        record.sent(response.toStr())
        self.sendReply(protocol, response, address)
        if udp:
            record.closed("answered")
        return succeed(None)

    def _record_answer(self, record: ConnectionRecord, answer: Answer, name: str, qtype: str) -> None:
        lines = [r.text() for r in answer.records]
        if not lines:
            lines = [f"{answer.rcode} {qtype} {name}" + (" (no records)" if answer.rcode == "NOERROR" else "")]
        now = time.monotonic()
        for line in lines:
            record.add_response(now, False, "answer", None, answer.rcode, None, line)
            record.announce(f"S: {line}")


def listen(reactor: Any, factory: RecordingDNSFactory, interface: str = "127.0.0.1", attempts: int = 20):
    """Listen on UDP and TCP on one OS-assigned port number (a resolver retries a truncated
    UDP answer over TCP on the same port); returns (udp_port, tcp_port)."""
    from twisted.internet.error import CannotListenError

    last: Exception | None = None
    for _ in range(attempts):
        udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface=interface)
        try:
            tcp = reactor.listenTCP(udp.getHost().port, factory, interface=interface)
        except CannotListenError as exc:  # the TCP side of that number is taken: try another
            last = exc
            udp.stopListening()
            continue
        return udp, tcp
    raise RuntimeError(f"no port free for DNS on both UDP and TCP: {last}")
