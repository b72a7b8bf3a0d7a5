"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_servers.imap.mutf7 import decode, encode

PAIRS = [
    ("INBOX", "INBOX"),
    ("", ""),
    ("Entwürfe", "Entw&APw-rfe"),
    ("日本語", "&ZeVnLIqe-"),
    ("&", "&-"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("ä&", "&AOQ-&-"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
    ("😀", "&2D3eAA-"),  # a surrogate pair in UTF-16
    ("a😀b𝄞", "a&2D3eAA-b&2DTdHg-"),
    ("tab\there", "tab&AAk-here"),  # control characters are encoded too
    ("\x7f", "&AH8-"),
    ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
]


@pytest.mark.parametrize(("text", "wire"), PAIRS)
def test_encode(text, wire):
    assert encode(text) == wire


@pytest.mark.parametrize(("text", "wire"), PAIRS)
def test_decode(text, wire):
    assert decode(wire) == text


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        ("&AGE-", "printable ASCII"),  # 'a' must stand for itself
        ("&ACY-", "printable ASCII"),  # '&' must be "&-"
        ("&AOQ-&APw-", "null shift"),  # two runs must be one
        ("&AOQ", "unterminated"),
        ("a&", "unterminated"),
        ("&ZeVnLIqe", "unterminated"),
        ("&AOQA-", "does not end on a character"),  # leftover base64 character
        ("&AOR-", "does not end on a character"),  # non-zero padding bits
        ("&AO-", "does not end on a character"),  # half a UTF-16 code unit
        ("&2D0-", "unpaired UTF-16 surrogate"),  # a high surrogate alone
        ("&2D3-", "does not end on a character"),
        ("&2D0AYQ-", "unpaired UTF-16 surrogate"),
        ("&3gA-", "unpaired UTF-16 surrogate"),
        ("&AO/k-", "invalid modified base64 character '/'"),
        ("&AO=-", "invalid modified base64 character '='"),
        ("Entwürfe", "must be encoded"),
        ("tab\there", "must be encoded"),
    ],
)
def test_decode_rejects(wire, why):
    with pytest.raises(ValueError, match=why):
        decode(wire)


def test_encode_rejects_lone_surrogates():
    with pytest.raises(ValueError):
        encode("a\ud800b")


_unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


@settings(max_examples=500)
@given(_unicode_text)
def test_round_trip(text):
    wire = encode(text)
    assert all(" " <= c <= "~" for c in wire)
    assert decode(wire) == text


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from("&-AaBZz09+,/=_ü\t"), max_size=16) | _unicode_text)
def test_decode_accepts_only_canonical_names(wire):
    try:
        text = decode(wire)
    except ValueError:
        return
    assert encode(text) == wire
