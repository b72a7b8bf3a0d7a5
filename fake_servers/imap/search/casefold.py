"""Dovecot-compatible case folding ("decomposed titlecase") for substring matching."""

from __future__ import annotations

import functools
import re
import unicodedata


class _FoldTable(dict):
    """Fold of one code point, computed on first use (``str.translate`` calls ``__missing__``).

    Dovecot maps each character to its simple titlecase, then applies one level of its
    Unicode decomposition, canonical or compatibility alike.
    """

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        title = ch.title()
        if len(title) == 1:  # simple one-to-one mappings only: "ß" stays "ß"
            ch = title
        if "\uac00" <= ch <= "\ud7a3":  # Hangul syllables decompose algorithmically
            out = unicodedata.normalize("NFD", ch)
        else:
            parts = unicodedata.decomposition(ch).split()
            out = "".join(chr(int(p, 16)) for p in parts if not p.startswith("<")) or ch
        self[code] = out
        return out


_FOLD = _FoldTable()
_PLACEHOLDER = 0xF0000  # private use plane: NFKD and upper() leave it alone
_MAX_PLACEHOLDERS = 16
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_odd_bmp: re.Pattern[str] | None = None


@functools.lru_cache(maxsize=4096)
def _is_odd(ch: str) -> bool:
    """Whether ``NFKD(ch).upper()`` misses Dovecot's fold of ``ch``, or NFKD could reorder it."""
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF or code >= 0x30000:
        return True
    if not (unicodedata.decomposition(ch) or unicodedata.combining(ch)
            or ch.upper() != ch or ch.title() != ch):
        return False  # NFKD and upper() leave it as it is (Hangul decomposes alike)
    fast = unicodedata.normalize("NFKD", ch).upper()
    return (unicodedata.combining(ch) != 0 or fast != _FOLD[code]
            or unicodedata.combining(fast[:1]) != 0)


def _odd_bmp_pattern() -> re.Pattern[str]:
    """The odd characters of the BMP as one class (sre tests it through a bitmap), built on
    first use in about 0.1 s. Characters above the BMP are rare in a text: tested one by one."""
    global _odd_bmp
    if _odd_bmp is None:
        spans: list[list[int]] = []
        for code in range(0x80, 0x10000):
            if _is_odd.__wrapped__(chr(code)):
                if spans and spans[-1][1] == code - 1:
                    spans[-1][1] = code
                else:
                    spans.append([code, code])
        _odd_bmp = re.compile("[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in spans) + "]")
    return _odd_bmp


def fold(text: str) -> str:
    """Normalise text for case-insensitive substring matching, the way Dovecot does.

    Same result as translating every character through :class:`_FoldTable`, but at C speed:
    ``NFKD`` then ``upper()`` agrees with Dovecot except for a few characters (``ß``, ``ﬁ``,
    Vietnamese double accents, combining marks...), which are swapped for placeholders first.
    """
    if text.isascii():
        return text.upper()
    odd = set(_odd_bmp_pattern().findall(text))
    if _ASTRAL.search(text):
        odd.update(ch for ch in set(_ASTRAL.findall(text)) if _is_odd(ch))
    if not odd:
        return unicodedata.normalize("NFKD", text).upper()
    if len(odd) > _MAX_PLACEHOLDERS or max(odd) >= chr(_PLACEHOLDER):
        return text.translate(_FOLD)
    marks = {}
    for i, ch in enumerate(odd):
        mark = chr(_PLACEHOLDER + i)
        text = text.replace(ch, mark)
        marks[mark] = _FOLD[ord(ch)]
    out = unicodedata.normalize("NFKD", text).upper()
    for mark, folded in marks.items():
        out = out.replace(mark, folded)
    return out
