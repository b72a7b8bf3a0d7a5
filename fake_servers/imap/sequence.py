"""IMAP sequence sets (RFC 3501 `sequence-set`), for message sequence numbers and UIDs.

    s = parse_sequence_set("1:3,7:*")
    s.resolve_seq(10)                  # [1, 2, 3, 7, 8, 9, 10]
    s.resolve(12, existing=[2, 5, 9, 12, 40])  # UIDs in the set: [2, 9, 12]
    str(s)                             # "1:3,7:*"
    compact([5, 1, 2, 3])              # "1:3,5" (for COPYUID / APPENDUID)

`*` stands for the largest number in use, which the caller supplies (`largest`): the message
count for sequence numbers, the highest UID in the mailbox for UIDs. A range `n:*` therefore
names the numbers between n and that largest one, in either order, so `10:*` still includes
the largest UID when it is below 10. Sets are resolved range by range, never by expanding
`1:4294967295` into a list.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["SequenceSet", "parse_sequence_set", "compact", "MAX_NUMBER"]

MAX_NUMBER = 4294967295  # nz-number is a 32-bit unsigned number
_NUMBER = re.compile(r"[1-9][0-9]*\Z")


@dataclass(frozen=True)
class SequenceSet:
    """An immutable, normalised sequence set.

    `ranges`: explicit ranges (low, high), sorted, merged where they overlap or touch;
    `star_from`: the sorted distinct n of each `n:*` range (`*:n` is the same range);
    `star`: whether a bare `*` was given (dropped when an `n:*` already covers it).
    Normalising keeps `max_number` unchanged, so `str()` of a set means the same as the
    set the client sent.
    """

    ranges: tuple[tuple[int, int], ...] = ()
    star_from: tuple[int, ...] = ()
    star: bool = False

    def _concrete(self, largest: int) -> list[tuple[int, int]]:
        """The set's ranges with `*` replaced by `largest`, sorted and merged."""
        spans = list(self.ranges)
        for n in self.star_from:
            spans.append((min(n, largest), max(n, largest)))
        if self.star:
            spans.append((largest, largest))
        return _merge(spans)

    def resolve(self, largest: int, existing: Sequence[int] | None = None) -> list[int]:
        """Numbers of the set, sorted, without duplicates.

        Without `existing`: the numbers in 1..largest (message sequence numbers).
        With `existing` (the sorted UIDs of a mailbox; `largest` is then normally its last
        element): those UIDs that fall in the set.
        """
        out: list[int] = []
        if existing is None:
            for low, high in self._concrete(largest):
                low, high = max(low, 1), min(high, largest)
                if low <= high:
                    out.extend(range(low, high + 1))
            return out
        for low, high in self._concrete(largest):
            out.extend(existing[bisect_left(existing, low) : bisect_right(existing, high)])
        return out

    def resolve_seq(self, count: int) -> list[int]:
        """Message sequence numbers of the set in a mailbox of `count` messages."""
        return self.resolve(count)

    def resolve_uids(self, existing: Sequence[int]) -> list[int]:
        """UIDs of the set among the sorted `existing` ones, `*` being the last of them."""
        return self.resolve(existing[-1] if existing else 0, existing)

    def contains(self, n: int, largest: int) -> bool:
        """Whether n lies in one of the set's ranges, `*` meaning `largest`. Pure range
        membership: whether n exists in the mailbox is the caller's business."""
        spans = self._concrete(largest)
        i = bisect_right(spans, (n, MAX_NUMBER + 1)) - 1
        return i >= 0 and spans[i][0] <= n <= spans[i][1]

    def max_number(self, largest: int) -> int:
        """The largest number the set names, `*` meaning `largest`."""
        candidates = [high for _, high in self.ranges]
        candidates += [max(n, largest) for n in self.star_from]
        if self.star:
            candidates.append(largest)
        return max(candidates, default=0)

    def exceeds(self, count: int) -> bool:
        """Whether the set names a message sequence number beyond `count` messages; RFC 3501
        wants a BAD then, `*` included when the mailbox is empty (Dovecot: "Invalid
        messageset")."""
        return count == 0 or self.max_number(count) > count

    def __str__(self) -> str:
        parts = [str(low) if low == high else f"{low}:{high}" for low, high in self.ranges]
        parts += [f"{n}:*" for n in self.star_from]
        if self.star:
            parts.append("*")
        return ",".join(parts)

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """A set of the given numbers (each 1..MAX_NUMBER)."""
        spans = []
        for n in numbers:
            if not 1 <= n <= MAX_NUMBER:
                raise ValueError(f"Number out of range in sequence set: {n}")
            spans.append((n, n))
        return cls(ranges=tuple(_merge(spans)))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged


def _number(text: str, whole: str) -> int | None:
    """A seq-number: nz-number, or None for `*`."""
    if text == "*":
        return None
    if text == "$":
        raise ValueError(f"Invalid sequence set {whole!r}: SEARCHRES ($) is not supported")
    if not _NUMBER.match(text):
        if text == "0" or (text.isascii() and text.isdigit()):
            reason = "0 is not a valid number" if text.strip("0") == "" else "leading zero"
        elif text == "":
            reason = "empty element"
        else:
            reason = f"{text!r} is not a number"
        raise ValueError(f"Invalid sequence set {whole!r}: {reason}")
    n = int(text)
    if n > MAX_NUMBER:
        raise ValueError(f"Invalid sequence set {whole!r}: {text} exceeds {MAX_NUMBER}")
    return n


def parse_sequence_set(text: str) -> SequenceSet:
    """Parse `sequence-set` from RFC 3501, e.g. `1:3,5,10:*`. Raises ValueError."""
    if not text:
        raise ValueError("Invalid sequence set '': empty")
    if len(text) > 100_000:  # a command line is shorter than that anyway
        raise ValueError("Invalid sequence set: too long")
    spans: list[tuple[int, int]] = []
    star_from: set[int] = set()
    star = False
    for part in text.split(","):
        first, colon, second = part.partition(":")
        a = _number(first, text)
        if not colon:
            if a is None:
                star = True
            else:
                spans.append((a, a))
            continue
        b = _number(second, text)
        if a is None and b is None:
            star = True
        elif a is None or b is None:
            star_from.add(a if b is None else b)
        else:
            spans.append((min(a, b), max(a, b)))
    return SequenceSet(
        ranges=tuple(_merge(spans)),
        star_from=tuple(sorted(star_from)),
        star=star and not star_from,
    )


def compact(numbers: Iterable[int]) -> str:
    """Render numbers as a compact set (`1:3,5`), as COPYUID and APPENDUID want them.
    An empty input gives an empty string."""
    return str(SequenceSet.from_numbers(numbers))
