"""IMAP's modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Printable ASCII other than ``&`` stands for itself, ``&`` is ``&-``, and every other run of
characters is ``&`` + base64 of its UTF-16BE form (``,`` instead of ``/``, no padding) + ``-``.

:func:`decode` is strict on purpose: it accepts only the one canonical spelling of a name, so
``encode(decode(s)) == s`` whenever ``decode`` succeeds. A fake server that quietly accepted
``&AGE-`` (an encoded ``a``) or ``&AOQ-&APw-`` (a null shift) would hide a client's bug.
"""

from __future__ import annotations

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}

__all__ = ["encode", "decode"]


def _is_direct(ch: str) -> bool:
    """Characters that represent themselves: printable ASCII except ``&``."""
    return " " <= ch <= "~" and ch != "&"


def _b64(data: bytes) -> str:
    bits = nbits = 0
    out = []
    for byte in data:
        bits = (bits << 8) | byte
        nbits += 8
        while nbits >= 6:
            nbits -= 6
            out.append(_ALPHABET[(bits >> nbits) & 0x3F])
    if nbits:
        out.append(_ALPHABET[(bits << (6 - nbits)) & 0x3F])
    return "".join(out)


def encode(name: str) -> str:
    """Encode a mailbox name. Raises ``ValueError`` for lone surrogates (not Unicode text)."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append("&" + _b64("".join(run).encode("utf-16-be")) + "-")
            run.clear()

    for ch in name:
        if _is_direct(ch):
            flush()
            out.append(ch)
        elif ch == "&":
            flush()
            out.append("&-")
        else:
            run.append(ch)
    flush()
    return "".join(out)


def _unb64(chunk: str, where: int) -> str:
    """Decode one shifted run (the text between ``&`` and ``-``), enforcing canonical form."""
    bits = nbits = 0
    data = bytearray()
    for ch in chunk:
        value = _VALUE.get(ch)
        if value is None:
            raise ValueError(f"invalid modified base64 character {ch!r} at offset {where}")
        bits = (bits << 6) | value
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            data.append((bits >> nbits) & 0xFF)
    # Canonical form: fewer than 6 leftover bits, all zero, and whole UTF-16 code units.
    if nbits >= 6 or bits & ((1 << nbits) - 1) or len(data) % 2:
        raise ValueError(f"modified base64 run at offset {where} does not end on a character")
    try:
        text = data.decode("utf-16-be")
    except UnicodeDecodeError:
        raise ValueError(f"unpaired UTF-16 surrogate in run at offset {where}") from None
    for ch in text:
        if " " <= ch <= "~":
            raise ValueError(f"printable ASCII {ch!r} must not be base64-encoded (offset {where})")
    return text


def decode(name: str) -> str:
    """Decode a modified UTF-7 mailbox name; ``ValueError`` if it is not canonical mUTF-7."""
    out: list[str] = []
    i, n = 0, len(name)
    after_run = False
    while i < n:
        ch = name[i]
        if ch != "&":
            if not _is_direct(ch):
                raise ValueError(f"character {ch!r} at offset {i} must be encoded")
            out.append(ch)
            i += 1
            after_run = False
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise ValueError(f"unterminated '&' shift at offset {i}")
        if end == i + 1:
            out.append("&")
            after_run = False
        else:
            if after_run:
                raise ValueError(f"null shift '-&' at offset {i - 1}: adjacent runs must be merged")
            out.append(_unb64(name[i + 1 : end], i))
            after_run = True
        i = end + 1
    return "".join(out)
