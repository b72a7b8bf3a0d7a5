"""The parsed query and the per-message view it is matched against, plus search helpers."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date
from email.utils import parsedate_tz
from typing import Any

from .casefold import fold
from .nodes import _ModSeq, _Node, _Not, _Set, _walk
from .text import _collect, _Field, _first, _parse_fields, _render, _split_message

_NO_SENT_DATE = date(1970, 1, 1)


# --- one message, as the criteria see it ------------------------------------------------------


class _View:
    """One message during one match: parses lazily and caches what the criteria ask for."""

    __slots__ = ("msg", "seq", "largest_seq", "largest_uid", "saved", "_split", "_fields",
                 "_flags", "_values", "_content")

    def __init__(self, msg: Any, seq: int, largest_seq: int, largest_uid: int,
                 saved: Collection[int]):
        self.msg, self.seq, self.saved = msg, seq, saved
        self.largest_seq, self.largest_uid = largest_seq, largest_uid
        self._split: tuple[bytes, bytes] | None = None
        self._fields: list[_Field] | None = None
        self._flags: set[str] | None = None
        self._values: dict[tuple[str, str], list[str]] = {}
        self._content: tuple[list[str], list[str]] | None = None

    def flags(self) -> set[str]:
        if self._flags is None:
            self._flags = {f.lower() for f in self.msg.flags}
        return self._flags

    def split(self) -> tuple[bytes, bytes]:
        if self._split is None:
            self._split = _split_message(self.msg.raw)
        return self._split

    def fields(self) -> list[_Field]:
        if self._fields is None:
            self._fields = _parse_fields(self.split()[0])
        return self._fields

    def values(self, name: str, mode: str) -> list[str]:
        """Every value of the field ``name``, rendered for ``mode`` and folded."""
        found = self._values.get((name, mode))
        if found is None:
            found = [fold(_render(v, mode)) for n, _, v in self.fields() if n == name]
            self._values[(name, mode)] = found
        return found

    def content(self) -> tuple[list[str], list[str]]:
        """Folded header lines (all entities) and folded text bodies, for BODY and TEXT."""
        if self._content is None:
            heads: list[str] = []
            bodies: list[str] = []
            _collect(self.fields(), self.split()[1], "text/plain", 0, heads, bodies)
            self._content = ([fold(t) for t in heads], [fold(t) for t in bodies])
        return self._content

    def sent_date(self) -> date:
        value = _first(self.fields(), "date")
        if value is None:
            return _NO_SENT_DATE
        try:
            parsed = parsedate_tz(value)
            if parsed:
                return date(parsed[0], parsed[1], parsed[2])
        except (ValueError, TypeError, IndexError, OverflowError):
            pass
        return _NO_SENT_DATE


# --- the public query -------------------------------------------------------------------------


class SearchQuery:
    """A parsed SEARCH program.

    ``return_options`` is ``None`` for a plain SEARCH, else the ESEARCH options (``RETURN ()``
    means ``{"ALL"}``). ``uses_modseq``: the response must carry ``(MODSEQ n)`` (RFC 7162);
    ``has_not``: the criteria use NOT (some provider personas refuse it); ``uses_saved``: they
    refer to ``$``, the saved result (RFC 5182).
    """

    __slots__ = ("root", "charset", "return_options", "uses_modseq", "has_not", "uses_saved")

    def __init__(self, root: _Node, *, charset: str | None = None,
                 return_options: frozenset[str] | None = None):
        self.root = root
        self.charset = charset
        self.return_options = return_options
        nodes = list(_walk(root))
        self.uses_modseq = any(isinstance(n, _ModSeq) for n in nodes)
        self.has_not = any(isinstance(n, _Not) for n in nodes)
        self.uses_saved = any(isinstance(n, _Set) and n.ranges is None for n in nodes)

    def matches(self, msg: Any, seq: int, *, largest_seq: int, largest_uid: int,
                saved_uids: Collection[int] = frozenset()) -> bool:
        """Whether message ``msg`` at sequence number ``seq`` satisfies the criteria.

        ``largest_seq``/``largest_uid`` give ``*``; ``saved_uids`` is the result ``$`` names.
        """
        return self.root.test(_View(msg, seq, largest_seq, largest_uid, saved_uids))

    def __repr__(self) -> str:
        return f"<SearchQuery charset={self.charset} return={self.return_options}>"


def search(query: SearchQuery, messages: Sequence[Any], *,
           saved_uids: Iterable[int] = ()) -> list[tuple[int, Any]]:
    """``(seq, msg)`` for every matching message; ``messages`` is the folder in sequence order."""
    saved = saved_uids if isinstance(saved_uids, (set, frozenset)) else frozenset(saved_uids)
    largest_uid = messages[-1].uid if messages else 0
    return [
        (seq, msg)
        for seq, msg in enumerate(messages, 1)
        if query.matches(msg, seq, largest_seq=len(messages), largest_uid=largest_uid,
                         saved_uids=saved)
    ]


def highest_modseq(messages: Iterable[Any]) -> int | None:
    """The ``n`` of ``(MODSEQ n)``: the highest mod-sequence among the matches, ``None`` if none
    matched (RFC 7162 §3.1.5: then the response has no MODSEQ)."""
    return max((m.modseq for m in messages), default=None)
