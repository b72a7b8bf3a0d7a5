"""Address-list parsing (RFC 5322), tolerant of broken entries as Dovecot's ENVELOPE is."""

from __future__ import annotations

import re

from .tokens import _Reader


# -- addresses --------------------------------------------------------------------------------

Address = tuple  # (name, route, mailbox, domain), each bytes or None


class _AddressParser:
    """RFC 5322 address lists the tolerant way: every broken entry still yields an address,
    with MISSING_MAILBOX / MISSING_DOMAIN / SYNTAX_ERROR filled in, as Dovecot does for
    ENVELOPE (clients must get *something* parseable for every mailbox)."""

    def __init__(self, value: bytes):
        self.r = _Reader(value)
        self.out: list[Address] = []

    def parse(self) -> list[Address]:
        r = self.r
        if r.skip_lwsp() <= 0:
            return self.out
        while True:
            if self.address() == 0:
                break
            if r.peek() != 0x2C:
                break
            r.pos += 1
            ret = r.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self.add(None, None, None, None)
                break
        return self.out

    def add(self, name, route, mailbox, domain) -> None:
        if mailbox is None:
            mailbox = b"MISSING_MAILBOX"
        if not domain:
            domain = b"MISSING_DOMAIN"
        self.out.append((name, route, mailbox, domain))

    def address(self) -> int:
        r = self.r
        start = r.pos
        ret = self.group()
        if ret is None:
            r.pos = start
            ret = self.mailbox()
        return ret

    def group(self) -> int | None:
        """display-name ":" [mailbox-list] ";" — None when this is not a group."""
        r = self.r
        name = bytearray()
        if r.phrase(name) <= 0 or r.peek() != 0x3A:
            return None
        r.pos += 1
        ret = r.skip_lwsp()
        self.out.append((None, None, bytes(name), None))
        if ret > 0 and r.peek() != 0x3B:
            while True:
                self.mailbox()  # a broken mailbox does not end the group
                if r.peek() != 0x2C:
                    break
                r.pos += 1
                if r.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if r.peek() != 0x3B:
                ret = -1
            else:
                r.pos += 1
                ret = r.skip_lwsp()
        self.out.append((None, None, None, None))
        return 0 if ret == 0 else 1

    def mailbox(self) -> int:
        r = self.r
        start = r.pos
        fields = self.name_addr()
        if fields is None:
            r.pos = start
            fields = self.addr_spec()
        ret, name, route, mailbox, domain = fields
        self.add(name, route, mailbox, domain)
        return ret

    def name_addr(self):
        r = self.r
        name = bytearray()
        if r.phrase(name) <= 0 or r.peek() != 0x3C:
            return None
        ok, route, mailbox, domain = self.angle_addr()
        if not ok:
            domain = b"SYNTAX_ERROR"
        return (1 if r.pos < r.end else 0), bytes(name) or None, route, mailbox, domain

    def angle_addr(self):
        """ "<" [route ":"] [local-part ["@" domain]] ">" -> (ok, route, mailbox, domain)."""
        r = self.r
        route = mailbox = domain = None
        r.pos += 1
        if r.skip_lwsp() <= 0:
            return False, route, mailbox, domain
        if r.peek() == 0x40:
            route = self.route()
            if route is not None and r.peek() == 0x3A:
                r.pos += 1
            else:
                route = b"INVALID_ROUTE"
                if r.pos >= r.end:
                    return False, route, mailbox, domain
            if r.skip_lwsp() <= 0:
                return False, route, mailbox, domain
        if r.peek() != 0x3E:
            text = bytearray()
            ret = self.local_part(text)
            if ret >= 0:
                mailbox = bytes(text)
            if ret <= 0:
                return False, route, mailbox, domain
            if r.peek() == 0x40:
                part = bytearray()
                ret = r.domain(part)
                if ret >= 0:
                    domain = bytes(part)
                if ret <= 0:
                    return False, route, mailbox, domain
        if r.peek() != 0x3E:
            return False, route, mailbox, domain
        r.pos += 1
        return r.skip_lwsp() >= 0, route, mailbox, domain

    def route(self) -> bytes | None:
        """obs-domain-list: "@a,@b" up to the colon; None when it ends early or is broken."""
        r = self.r
        out = bytearray()
        while True:
            if r.pos >= r.end:
                return None
            if r.peek() != 0x40:
                return bytes(out)
            if out:
                out.append(0x2C)
            out.append(0x40)
            if r.domain(out) <= 0:
                return None
            while r.skip_lwsp() > 0 and r.peek() == 0x2C:
                r.pos += 1

    def local_part(self, out: bytearray) -> int:
        r = self.r
        if r.peek() == 0x22:
            return r.quoted_string(out)
        return r.local_atoms(out)

    def addr_spec(self):
        """local-part ["@" domain], with the tolerance real mail needs: a trailing comment
        is the display name, several words without "@" are a display name."""
        r = self.r
        r.comment = b""
        quoted = r.peek() == 0x22
        text = bytearray()
        ret = self.local_part(text)
        # On failure `text` keeps what was read: it may become part of a display name.
        mailbox = bytes(text) if ret >= 0 else None
        invalid = ret <= 0
        name = domain = None
        at_domain = False
        if ret != 0 and r.pos < r.end and r.peek() == 0x40:
            at_domain = True
            part = bytearray()
            ret2 = r.domain(part)
            if ret2 >= 0:
                domain = bytes(part)
            if ret2 <= 0:
                ret = ret2
        if r.comment:
            name = r.comment
        elif not at_domain:
            text.append(0x20)
            before = len(text)
            r.phrase(text)
            if len(text) != before:
                mailbox, name = None, bytes(text)
            elif not quoted:
                domain = b""
            invalid = True
            ret = -1
        if invalid and name is None and mailbox is not None and domain is None:
            # A lone quoted word: take it for a name rather than a mailbox.
            name, mailbox = mailbox, None
        return ret, name, None, mailbox, domain


# The everyday shapes — `local@domain`, `Name <local@domain>`, `"Name" <local@domain>` —
# parsed by one regular expression; anything else goes to the full parser, which gives
# the same result for these shapes, only slower.
_A = rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff]"
_DOT_ATOM = _A + rb"+(?:\." + _A + rb"+)*"
_SIMPLE_ADDRESS = re.compile(
    rb"[ \t]*(?:"
    rb'(?:"(?P<quoted>[^"\\\r\n]*)"[ \t]*|(?P<words>' + _A + rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff.]*"
    rb"(?: " + _A + rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff.]*)*)[ \t]*)?"
    rb"<(?P<local>" + _DOT_ATOM + rb")@(?P<domain>" + _DOT_ATOM + rb")>"
    rb"|(?P<bare_local>" + _DOT_ATOM + rb")@(?P<bare_domain>" + _DOT_ATOM + rb"))"
    rb"[ \t]*(?:,|\Z)"
)


def _simple_addresses(value: bytes) -> list[Address] | None:
    out = []
    pos, end = 0, len(value)
    match = _SIMPLE_ADDRESS.match
    while pos < end:
        m = match(value, pos)
        if m is None:
            return None
        pos = m.end()
        if m.group("bare_local") is not None:
            out.append((None, None, m.group("bare_local"), m.group("bare_domain")))
        else:
            name = m.group("quoted")
            if name is None:
                name = m.group("words")
            out.append((name or None, None, m.group("local"), m.group("domain")))
        if value[pos - 1:pos] == b"," and pos >= end:
            return None  # a trailing comma: leave it to the full parser
    return out or None


def parse_addresses(value: bytes) -> list[Address]:
    """Parse an address-list header value into (name, route, mailbox, domain) tuples.

    A group is framed by (None, None, group name, None) and (None, None, None, None).
    """
    simple = _simple_addresses(value)
    if simple is not None:
        return simple
    return _AddressParser(value).parse()
