"""FETCH: parsing fetch attributes and writing the untagged FETCH response (RFC 3501 §6.4.5,
§7.4.2; BINARY from RFC 3516, MODSEQ from RFC 7162).

`parse_fetch_items` turns the parser's atoms into FetchItems once per command;
`render_fetch` is then called for every message, so the work that depends only on the item
list (names, order, section specs) is compiled once into a plan and cached on the list.

Response items come in Dovecot's order: UID (always first for UID FETCH), then the small
items (FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ) in request order, then the rest in request
order. Repeated items are sent once, except body sections, which Dovecot repeats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import mime
from .encode import flag_list, imap_date_time

__all__ = [
    "FetchSyntaxError",
    "FetchItem",
    "FetchItems",
    "UnknownCTE",
    "parse_fetch_items",
    "render_fetch",
]

UnknownCTE = mime.UnknownCTE


class FetchSyntaxError(ValueError):
    """Bad fetch attributes; the text is what follows `BAD Error in IMAP command FETCH: `."""


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One fetch attribute.

    `kind` is the attribute without section: UID, FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ,
    ENVELOPE, BODY, BODYSTRUCTURE, RFC822, RFC822.HEADER, RFC822.TEXT, BODY[], BINARY[],
    BINARY.SIZE. Section items carry the parsed section and partial; `label` is the name the
    response uses (`BODY[HEADER.FIELDS (FROM)]<0>`).
    """

    kind: str
    label: bytes
    numbers: tuple[int, ...] = ()
    text: str = ""
    names: tuple[bytes, ...] = ()
    partial: tuple[int, int | None] | None = None
    peek: bool = True

    @property
    def sets_seen(self) -> bool:
        """Whether fetching this sets \\Seen (BODY[...] and BINARY[...] without .PEEK,
        RFC822, RFC822.TEXT). Setting it is the session's job."""
        return not self.peek

    @property
    def is_section(self) -> bool:
        return self.kind in ("BODY[]", "BINARY[]", "BINARY.SIZE")


class FetchItems(list):
    """The parsed items of one FETCH command; caches its compiled response plans."""

    __slots__ = ("plans",)

    def __init__(self, items=()):
        super().__init__(items)
        self.plans: dict = {}


def _simple(kind: str, peek: bool = True) -> FetchItem:
    return FetchItem(kind, kind.encode("ascii"), peek=peek)


_SIMPLE = {
    "UID": _simple("UID"),
    "FLAGS": _simple("FLAGS"),
    "INTERNALDATE": _simple("INTERNALDATE"),
    "RFC822.SIZE": _simple("RFC822.SIZE"),
    "MODSEQ": _simple("MODSEQ"),
    "ENVELOPE": _simple("ENVELOPE"),
    "BODY": _simple("BODY"),
    "BODYSTRUCTURE": _simple("BODYSTRUCTURE"),
    "RFC822": _simple("RFC822", peek=False),
    "RFC822.HEADER": _simple("RFC822.HEADER"),
    "RFC822.TEXT": _simple("RFC822.TEXT", peek=False),
}
_MACROS = {
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
# Items Dovecot writes before the others (it buffers them).
_EARLY = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"})

_SECTION_ITEM = re.compile(r"(BODY\.PEEK|BODY|BINARY\.PEEK|BINARY\.SIZE|BINARY)(.*)\Z", re.I | re.S)
_PARTIAL = re.compile(r"<(\d+)(?:\.(\d+))?>\Z")
_PART_NUMBERS = re.compile(r"[\d.]*?(?=\.?[A-Za-z]|\Z)")
_LABEL_NAME = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s"()]+')


def _section_label(spec: str) -> str:
    """The section as the response names it: keywords and header names upper-cased,
    part numbers as the client wrote them, one space between header names."""
    open_paren = spec.find("(")
    if open_paren < 0:
        numbers = _PART_NUMBERS.match(spec).group(0)
        return numbers + spec[len(numbers):].upper()
    head = spec[:open_paren].rstrip()
    numbers = _PART_NUMBERS.match(head).group(0)
    names = _LABEL_NAME.findall(spec[open_paren:])
    return numbers + head[len(numbers):].upper() + " (" + " ".join(n.upper() for n in names) + ")"


def _parse_section_item(atom: str) -> FetchItem:
    m = _SECTION_ITEM.match(atom)
    if m is None:
        raise FetchSyntaxError(f"Unknown parameter: {atom.upper()}")
    name, rest = m.group(1).upper(), m.group(2)
    what = "BINARY" if name.startswith("BINARY") else "BODY"
    if not rest.startswith("["):
        if rest:
            raise FetchSyntaxError(f"Unknown parameter: {atom.upper()}")
        raise FetchSyntaxError(f"Invalid {what}[..] parameter: Missing '['")
    close = rest.find("]")
    if close < 0:
        raise FetchSyntaxError(f"Invalid {what}[..] parameter: Missing ']'")
    spec, after = rest[1:close], rest[close + 1:]
    partial = None
    if after:
        if name == "BINARY.SIZE":
            raise FetchSyntaxError(f"Invalid {what}[..] parameter: Unexpected data after ']'")
        p = _PARTIAL.match(after)
        if p is None:
            if after.startswith("<"):
                raise FetchSyntaxError(f"Invalid {what}[..] parameter: Invalid partial")
            raise FetchSyntaxError(f"Invalid {what}[..] parameter: Unexpected data after ']'")
        partial = (int(p.group(1)), int(p.group(2)) if p.group(2) is not None else None)
    try:
        numbers, text, names = mime.parse_section(spec)
    except ValueError:
        raise FetchSyntaxError(f"Invalid {what}[..] section") from None
    label = _section_label(spec)
    if name == "BINARY.SIZE":
        kind, prefix = "BINARY.SIZE", "BINARY.SIZE"
    elif what == "BINARY":
        kind, prefix = "BINARY[]", "BINARY"
    else:
        kind, prefix = "BODY[]", "BODY"
    full = f"{prefix}[{label}]" + (f"<{partial[0]}>" if partial is not None else "")
    peek = name.endswith(".PEEK") or name == "BINARY.SIZE"
    return FetchItem(kind, full.encode("utf-8"), numbers, text, names, partial, peek)


def _parse_atom(arg, allow_macro: bool) -> list[FetchItem]:
    if not isinstance(arg, str):
        raise FetchSyntaxError("Invalid arguments")
    up = arg.upper()
    item = _SIMPLE.get(up)
    if item is not None:
        return [item]
    if up in _MACROS:
        if not allow_macro:
            raise FetchSyntaxError(f"Unknown parameter: {up}")
        return [_SIMPLE[k] for k in _MACROS[up]]
    return [_parse_section_item(arg)]


def parse_fetch_items(args) -> FetchItems:
    """Fetch attributes from the parser: one atom (an item or ALL/FAST/FULL) or a list of
    atoms. Raises FetchSyntaxError with Dovecot's wording for anything else."""
    if isinstance(args, list):
        if not args:
            raise FetchSyntaxError("FETCH list is empty")
        items = FetchItems()
        for arg in args:
            items.extend(_parse_atom(arg, allow_macro=False))
        return items
    return FetchItems(_parse_atom(args, allow_macro=True))


# -- rendering ----------------------------------------------------------------------------------


def _slice(data: bytes, partial) -> bytes:
    if partial is None:
        return data
    origin, length = partial
    if length is None:
        return data[origin:]
    return data[origin:origin + length]


def _section_op(item: FetchItem):
    """A function (msg) -> list of byte strings for one item."""
    label, partial = item.label, item.partial
    numbers, text, names = item.numbers, item.text, item.names
    if item.kind == "BODY[]":
        if not numbers and text == "" and partial is None:
            head = label + b" {"

            def whole(msg):
                raw = msg.raw
                return [head, b"%d}\r\n" % len(raw), raw]

            return whole

        def body_section(msg):
            data = _slice(mime.extract(msg.raw, numbers, text, names), partial)
            return [label, b" {%d}\r\n" % len(data), data]

        return body_section

    def decoded(msg) -> tuple[bytes, bool]:
        if text == "":
            return mime.binary(msg.raw, numbers)
        return mime.extract(msg.raw, numbers, text, names), False

    if item.kind == "BINARY.SIZE":
        return lambda msg: [label, b" %d" % len(decoded(msg)[0])]

    def binary_section(msg):
        data, was_encoded = decoded(msg)
        # literal8 when a transfer encoding was undone (as Dovecot does) or NULs are there.
        binary = was_encoded or b"\x00" in data
        data = _slice(data, partial)
        return [label, b" ~{%d}\r\n" % len(data) if binary else b" {%d}\r\n" % len(data), data]

    return binary_section


def _raw_op(label: bytes, pick):
    head = label + b" {"

    def op(msg):
        data = pick(msg.raw)
        return [head, b"%d}\r\n" % len(data), data]

    return op


def _op(item: FetchItem):
    kind = item.kind
    if kind == "UID":
        return lambda msg: [b"UID %d" % msg.uid]
    if kind == "FLAGS":
        return lambda msg: [b"FLAGS ", flag_list(msg.flags)]
    if kind == "INTERNALDATE":
        return lambda msg: [b"INTERNALDATE ", imap_date_time(msg.internal_date)]
    if kind == "RFC822.SIZE":
        return lambda msg: [b"RFC822.SIZE %d" % msg.size]
    if kind == "MODSEQ":
        return lambda msg: [b"MODSEQ (%d)" % msg.modseq]
    if kind == "ENVELOPE":
        return lambda msg: [b"ENVELOPE ", mime.envelope(msg.raw)]
    if kind == "BODYSTRUCTURE":
        return lambda msg: [b"BODYSTRUCTURE ", mime.bodystructure(msg.raw, True)]
    if kind == "BODY":
        return lambda msg: [b"BODY ", mime.bodystructure(msg.raw, False)]
    if kind == "RFC822":
        return _raw_op(b"RFC822", lambda raw: raw)
    if kind == "RFC822.HEADER":
        return _raw_op(b"RFC822.HEADER", lambda raw: raw[: mime.header_end(raw)])
    if kind == "RFC822.TEXT":
        return _raw_op(b"RFC822.TEXT", lambda raw: raw[mime.header_end(raw):])
    return _section_op(item)


def _plan(items, uid_command: bool, add_flags: bool) -> tuple:
    """The item writers in response order (see the module docstring)."""
    early: list[FetchItem] = [_SIMPLE["UID"]] if uid_command else []
    late: list[FetchItem] = []
    seen = {item.kind for item in early}
    for item in items:
        if not item.is_section:
            if item.kind in seen:
                continue
            seen.add(item.kind)
        (early if item.kind in _EARLY else late).append(item)
    if add_flags and "FLAGS" not in seen:
        # Dovecot adds the FLAGS it changed after the small items the client asked for.
        early.append(_SIMPLE["FLAGS"])
    return tuple(_op(item) for item in early + late)


_loose_plans: dict = {}


def render_fetch(msg, seq: int, items, *, uid_command: bool, add_flags: bool = False) -> bytes:
    """The whole untagged response `* seq FETCH (...)` CRLF for one message.

    `uid_command` adds UID (RFC 3501 §6.4.8). `add_flags` adds FLAGS, as Dovecot does when
    this fetch has just set \\Seen. Flags are written as `msg.flags` holds them now. Raises
    UnknownCTE for BINARY of a part whose transfer encoding cannot be decoded (the session
    answers NO [UNKNOWN-CTE]).
    """
    key = (uid_command, add_flags)
    plans = getattr(items, "plans", None)
    if plans is None:
        # A plain list of items: cache by value instead.
        key = (tuple(items), uid_command, add_flags)
        plans = _loose_plans
        if len(plans) > 256:
            plans.clear()
    plan = plans.get(key)
    if plan is None:
        plan = plans[key] = _plan(items, uid_command, add_flags)
    out = [b"* %d FETCH (" % seq]
    first = True
    for op in plan:
        if first:
            first = False
        else:
            out.append(b" ")
        out += op(msg)
    out.append(b")\r\n")
    return b"".join(out)
