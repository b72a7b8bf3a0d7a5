"""SEARCH criteria: parse once with :func:`parse_search`, then match message by message.

Grammar: RFC 3501 / RFC 9051 §6.4.4 search keys, an optional ``RETURN (...)`` (RFC 4731, and
``SAVE`` from RFC 5182) before an optional ``CHARSET``, ``$`` for the saved result (RFC 5182) and
``MODSEQ`` (RFC 7162). Matching follows Dovecot 2.3, checked by hand against 2.3.19, because a
fake that finds more or less than a real server would give clients false verdicts:

- Strings compare as substrings after :func:`fold`, Dovecot's "decomposed titlecase": ``cafe``
  finds ``Café``, ``abc`` finds ``ＡＢＣ``, but ``ss`` does not find ``ß``.
- ``HEADER name value``: every occurrence of the field (names compared case-insensitively,
  ``Subject :`` counts as ``Subject``), unfolded (line breaks dropped, whitespace kept), RFC 2047
  encoded-words decoded, 8-bit bytes read as UTF-8. An empty value tests that the field exists.
  ``SUBJECT`` also squeezes runs of whitespace to one space. ``FROM``/``TO``/``CC``/``BCC`` match
  the address list rewritten as ``name <local@domain>, group: <a@b>;`` (comments dropped, a
  comment names an address that has no display name, names with non-atom characters quoted,
  routes kept). The raw
  encoded-word text itself never matches (Dovecot does not match it either); an encoded-word that
  cannot be decoded stays in the text as written.
- ``BODY`` searches text parts only (``text/*`` and parts without a Content-Type), decoded from
  base64/quoted-printable and from their charset (unknown charsets read as UTF-8), inside
  multiparts and attached messages; no headers, no preamble/epilogue, no attachments.
  ``TEXT`` searches the same plus every header line of the message and of its parts.
- ``BEFORE``/``ON``/``SINCE`` use the calendar date of ``internal_date`` in its own timezone (the
  date a client sees in INTERNALDATE). ``SENT*`` use the date written in the first ``Date:``
  field; a missing or unparsable ``Date:`` counts as 1 January 1970, as in Dovecot 2.3.
- ``\\Recent`` is never stored here, so ``RECENT`` and ``NEW`` match nothing and ``OLD`` all.
- ``LARGER``/``SMALLER`` compare ``msg.size``; ``MODSEQ`` compares ``msg.modseq`` whatever the
  entry name (Dovecot keeps no per-flag mod-sequences either).
- Search strings are UTF-8 with or without ``CHARSET``; invalid UTF-8 is a syntax error. A
  ``CHARSET`` after ``ENABLE UTF8=ACCEPT`` is a syntax error (RFC 6855 §3 and its erratum).
- Stricter than Dovecot: an impossible date such as ``31-Feb-2024`` is a syntax error.

Cheap criteria run first; a message's header block is split once per match call, its MIME tree is
walked only when ``BODY`` or ``TEXT`` is asked.
"""

from __future__ import annotations

from .casefold import _FOLD, fold
from .criteria import RETURN_OPTIONS, parse_search
from .errors import SUPPORTED_CHARSETS, BadCharset, SearchSyntaxError
from .query import SearchQuery, highest_modseq, search

__all__ = [
    "SUPPORTED_CHARSETS",
    "RETURN_OPTIONS",
    "SearchSyntaxError",
    "BadCharset",
    "SearchQuery",
    "parse_search",
    "search",
    "highest_modseq",
    "fold",
]
