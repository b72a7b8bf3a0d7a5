"""ENVELOPE (RFC 3501 §7.4.2): header text conversions and the envelope list."""

from __future__ import annotations

import re

from ..encode import NIL, nstring, string
from .addresses import Address, parse_addresses
from .headers import _ENVELOPE_FIELD, _fields, header_end
from .part import _cache


_REPLACEMENT = "\ufffd".encode("utf-8")


# -- text conversions for ENVELOPE -----------------------------------------------------------


_BREAK_BEFORE_TEXT = re.compile(rb"[\r\n]+(?=[^ \t\r\n])")
_LWSP_RUN = re.compile(rb"[ \t\r\n]+")
_NOT_QUOTABLE = re.compile(rb'["\\\x80-\xff]')
# Words of printable ASCII without quoting, separated by single spaces: sent as they are.
_HUMAN_AS_IS = re.compile(rb'(?:[!#-\[\]-~]+(?: [!#-\[\]-~]+)*)?')


def _unfold(value: bytes) -> bytes:
    """Drop CR and LF; a line that does not start with blank space gets one."""
    if b"\r" not in value and b"\n" not in value:
        return value
    return _BREAK_BEFORE_TEXT.sub(b" ", value).replace(b"\r", b"").replace(b"\n", b"")


def _header_text(value: bytes) -> bytes:
    """A header value as envelope strings carry it: NUL replaced, unfolded."""
    if b"\x00" in value:
        value = value.replace(b"\x00", _REPLACEMENT)
    return _unfold(value)


def _for_humans(value: bytes) -> bytes:
    """Subject and display names: white space collapsed to single spaces and trimmed.

    Sent quoted when nothing had to change and no quoting is needed, else as a literal;
    all-blank becomes "".
    """
    if _HUMAN_AS_IS.fullmatch(value) is not None:
        return b'"' + value + b'"'
    if b"\x00" in value:
        value = value.replace(b"\x00", b"\x80")
    clean = _LWSP_RUN.sub(b" ", value).strip(b" ")
    if clean == value and _NOT_QUOTABLE.search(value) is None:
        return b'"' + value + b'"'
    if not clean:
        return b'""'
    return b"{%d}\r\n" % len(clean) + clean


def _nstring_text(value: bytes | None) -> bytes:
    return NIL if value is None else nstring(_header_text(value))


def _address_list(addresses: list[Address] | None) -> bytes:
    if not addresses:
        return NIL
    return b"(" + b"".join(
        b"(%s %s %s %s)" % (
            NIL if name is None else _for_humans(name),
            NIL if route is None else string(route),
            NIL if mailbox is None else string(mailbox),
            NIL if domain is None else string(domain),
        )
        for name, route, mailbox, domain in addresses
    ) + b")"


_ENVELOPE_STRINGS = {b"date": 0, b"subject": 1, b"in-reply-to": 8, b"message-id": 9}
_ENVELOPE_ADDRESSES = {b"from": 2, b"sender": 3, b"reply-to": 4, b"to": 5, b"cc": 6, b"bcc": 7}


def _envelope_at(raw: bytes, start: int, end: int) -> bytes:
    strings: dict[int, bytes] = {}
    addresses: dict[int, list[Address]] = {}
    for name, value in _fields(raw, start, end, _ENVELOPE_FIELD):
        slot = _ENVELOPE_STRINGS.get(name)
        if slot is not None:
            strings[slot] = value  # the last one wins
            continue
        slot = _ENVELOPE_ADDRESSES.get(name)
        if slot is not None:
            if b"\x00" in value:
                value = value.replace(b"\x00", _REPLACEMENT)
            addresses.setdefault(slot, []).extend(parse_addresses(value))
    subject = strings.get(1)
    if subject is None:
        subject_out = NIL
    else:
        if b"\x00" in subject:
            subject = subject.replace(b"\x00", _REPLACEMENT)
        subject_out = _for_humans(subject)
    from_out = _address_list(addresses.get(2))
    sender = addresses.get(3)
    reply_to = addresses.get(4)
    parts = [
        _nstring_text(strings.get(0)),
        subject_out,
        from_out,
        _address_list(sender) if sender else from_out,
        _address_list(reply_to) if reply_to else from_out,
        _address_list(addresses.get(5)),
        _address_list(addresses.get(6)),
        _address_list(addresses.get(7)),
        _nstring_text(strings.get(8)),
        _nstring_text(strings.get(9)),
    ]
    return b"(" + b" ".join(parts) + b")"


def envelope(raw: bytes) -> bytes:
    """The ENVELOPE of a message as its parenthesised list (RFC 3501 §7.4.2).

    Values are the header text as sent (encoded-words are not decoded); the subject and
    display names have their white space collapsed. Sender and Reply-To default to From.
    """
    facts = _cache.facts(raw)
    if facts.envelope is None:
        facts.envelope = _envelope_at(raw, 0, header_end(raw))
    return facts.envelope
