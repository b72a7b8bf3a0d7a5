"""The query tree: one matcher node class per search key, tested against a message view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

from .casefold import fold

if TYPE_CHECKING:
    from .query import _View


_Ranges = tuple[tuple["int | None", "int | None"], ...]


def _in_ranges(ranges: _Ranges, n: int, largest: int) -> bool:
    for low, high in ranges:
        low = largest if low is None else low
        high = largest if high is None else high
        if low > high:
            low, high = high, low
        if low <= n <= high:
            return True
    return False


# --- the query tree ---------------------------------------------------------------------------


class _Node:
    """One search key. ``cost`` orders evaluation: 0 index data, 1 headers, 2 MIME body."""

    __slots__ = ()
    cost = 0
    children: tuple[_Node, ...] = ()

    def test(self, m: _View) -> bool:
        raise NotImplementedError


class _Const(_Node):
    __slots__ = ("value",)

    def __init__(self, value: bool):
        self.value = value

    def test(self, m: _View) -> bool:
        return self.value


class _Flag(_Node):
    __slots__ = ("flag", "want")

    def __init__(self, flag: str, want: bool):
        self.flag, self.want = flag, want

    def test(self, m: _View) -> bool:
        return (self.flag in m.flags()) == self.want


class _Keyword(_Node):
    __slots__ = ("name", "want")

    def __init__(self, name: str, want: bool):
        self.name, self.want = name.lower(), want

    def test(self, m: _View) -> bool:
        # A system flag is not a keyword: KEYWORD \Seen matches nothing, as in Dovecot.
        present = not self.name.startswith("\\") and self.name in m.flags()
        return present == self.want


class _Size(_Node):
    __slots__ = ("limit", "larger")

    def __init__(self, limit: int, larger: bool):
        self.limit, self.larger = limit, larger

    def test(self, m: _View) -> bool:
        return m.msg.size > self.limit if self.larger else m.msg.size < self.limit


class _Date(_Node):
    __slots__ = ("op", "day", "sent", "cost")

    def __init__(self, op: str, day: date, sent: bool):
        self.op, self.day, self.sent = op, day, sent
        self.cost = 1 if sent else 0

    def test(self, m: _View) -> bool:
        day = m.sent_date() if self.sent else m.msg.internal_date.date()
        if self.op == "BEFORE":
            return day < self.day
        if self.op == "ON":
            return day == self.day
        return day >= self.day


class _Set(_Node):
    """A sequence set (``uid=False``) or ``UID`` set; ``ranges is None`` means ``$``."""

    __slots__ = ("ranges", "uid")

    def __init__(self, ranges: _Ranges | None, uid: bool):
        self.ranges, self.uid = ranges, uid

    def test(self, m: _View) -> bool:
        if self.ranges is None:
            return m.msg.uid in m.saved
        if self.uid:
            return _in_ranges(self.ranges, m.msg.uid, m.largest_uid)
        return _in_ranges(self.ranges, m.seq, m.largest_seq)


class _ModSeq(_Node):
    __slots__ = ("value",)

    def __init__(self, value: int):
        self.value = value

    def test(self, m: _View) -> bool:
        return m.msg.modseq >= self.value


class _Header(_Node):
    """``mode`` is ``plain`` (HEADER), ``compress`` (SUBJECT) or ``address`` (FROM, TO...)."""

    __slots__ = ("name", "needle", "mode")
    cost = 1

    def __init__(self, name: str, needle: str, mode: str):
        self.name, self.needle, self.mode = name.lower(), fold(needle), mode

    def test(self, m: _View) -> bool:
        if not self.needle:
            return any(f[0] == self.name for f in m.fields())
        return any(self.needle in v for v in m.values(self.name, self.mode))


class _Body(_Node):
    __slots__ = ("needle", "with_headers")
    cost = 2

    def __init__(self, needle: str, with_headers: bool):
        self.needle, self.with_headers = fold(needle), with_headers

    def test(self, m: _View) -> bool:
        if not self.needle:
            return True
        heads, bodies = m.content()
        texts = heads + bodies if self.with_headers else bodies
        return any(self.needle in t for t in texts)


class _Not(_Node):
    __slots__ = ("children", "cost")

    def __init__(self, child: _Node):
        self.children, self.cost = (child,), child.cost

    def test(self, m: _View) -> bool:
        return not self.children[0].test(m)


class _Or(_Node):
    __slots__ = ("children", "cost")

    def __init__(self, a: _Node, b: _Node):
        self.children = tuple(sorted((a, b), key=lambda n: n.cost))
        self.cost = max(a.cost, b.cost)

    def test(self, m: _View) -> bool:
        return any(c.test(m) for c in self.children)


class _And(_Node):
    __slots__ = ("children", "cost")

    def __init__(self, items: list[_Node]):
        self.children = tuple(sorted(items, key=lambda n: n.cost))
        self.cost = max(n.cost for n in items)

    def test(self, m: _View) -> bool:
        return all(c.test(m) for c in self.children)


def _walk(node: _Node) -> Iterator[_Node]:
    yield node
    for child in node.children:
        yield from _walk(child)
