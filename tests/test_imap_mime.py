"""MIME structure, ENVELOPE, BODY/BODYSTRUCTURE and section extraction (RFC 3501 §6.4.5,
§7.4.2; RFC 2045/2046/2231; RFC 5322 addresses).

Expected bytes follow the RFCs where they decide, and Dovecot 2.3 where they leave a choice
(spelling of defaults, what a broken header turns into); the cases marked "Dovecot" were
checked against a real Dovecot 2.3.19.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_servers.imap import mime
from fake_servers.imap.mime import bodystructure, envelope, parse_addresses, section

SIMPLE = b"From: A <a@b.c>\r\nSubject: hi\r\n\r\nbody\r\n"

ALTERNATIVE = (
    b'From: "Joe Q. Public" <john.q.public@example.com>\r\n'
    b"To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n"
    b'Cc: <boss@nil.test>, "Giant; \\"Big\\" Box" <sysservices@example.net>\r\n'
    b"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
    b"Message-ID: <5678.21-Nov-1997@example.com>\r\n"
    b"Subject: alt test\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="XXX"; foo=bar\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XXX\r\n"
    b"Content-Type: text/plain; charset=UTF-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"hello =C3=A9\r\n"
    b"line2\r\n"
    b"--XXX\r\n"
    b'Content-Type: text/html; charset="utf-8"\r\n'
    b"\r\n"
    b"<p>hello</p>\r\n"
    b"--XXX--\r\n"
    b"epilogue\r\n"
)

INNER = (
    b"From: x@y.z\r\nTo: q@r.s\r\nSubject: inner msg\r\n"
    b"Content-Type: multipart/mixed; boundary=b3\r\n\r\n"
    b"--b3\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\ninner text\r\n"
    b"--b3\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
    b"--b3--\r\n"
)
PNG_MIME = (
    b'Content-Type: image/png; name="p.png"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-ID: <img1@x>\r\n"
    b"Content-Description: a picture\r\n"
    b'Content-Disposition: attachment; filename="p.png"; size=3\r\n'
    b"Content-Language: en, de\r\n"
    b"Content-Location: http://x.test/p.png\r\n"
    b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\r\n"
)
NESTED = (
    b"From: a@b.c\r\nSubject: nested\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    b"--inner\r\nContent-Type: text/html\r\n\r\n<b>h</b>\r\n"
    b"--inner--\r\n"
    b"--outer\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
    + INNER
    + b"\r\n--outer\r\n" + PNG_MIME + b"iVBO\r\n"
    b"--outer--\r\n"
)


# -- ENVELOPE -----------------------------------------------------------------------------------


def test_envelope_simple():
    assert envelope(SIMPLE) == (
        b'(NIL "hi" (("A" NIL "a" "b.c")) (("A" NIL "a" "b.c")) (("A" NIL "a" "b.c")) NIL NIL NIL NIL NIL)'
    )


def test_envelope_all_fields_sender_and_reply_to_default_to_from():
    assert envelope(ALTERNATIVE) == (
        b'("Tue, 1 Jul 2003 10:52:37 +0200" "alt test"'
        b' (("Joe Q. Public" NIL "john.q.public" "example.com"))'
        b' (("Joe Q. Public" NIL "john.q.public" "example.com"))'
        b' (("Joe Q. Public" NIL "john.q.public" "example.com"))'
        b' (("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "example.org")("Who?" NIL "one" "y.test"))'
        b' ((NIL NIL "boss" "nil.test")({16}\r\nGiant; "Big" Box NIL "sysservices" "example.net"))'
        b' NIL NIL "<5678.21-Nov-1997@example.com>")'
    )


def test_envelope_groups_routes_comments_and_missing_parts():
    # Dovecot
    raw = (
        b"From: Pete <pete@silly.test>\r\n"
        b"To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\r\n"
        b"Cc: Undisclosed recipients:;\r\n"
        b'Bcc: (comment) x@y.z (c2), "q\\"x" <@route1,@route2:r@s.t>, bare\r\n'
        b"Reply-To: list@x.test\r\nSender: \r\nIn-Reply-To: <a@b> <c@d>\r\n\r\nx\r\n"
    )
    assert envelope(raw) == (
        b'(NIL NIL (("Pete" NIL "pete" "silly.test")) (("Pete" NIL "pete" "silly.test"))'
        b' ((NIL NIL "list" "x.test"))'
        b' ((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")'
        b'("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL))'
        b' ((NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL))'
        b' (("c2" NIL "x" "y.z")({3}\r\nq"x "@route1,@route2" "r" "s.t")(NIL NIL "bare" "MISSING_DOMAIN"))'
        b' "<a@b> <c@d>" NIL)'
    )


def test_envelope_8bit_and_encoded_words_are_sent_as_they_are():
    # Dovecot: encoded-words are not decoded, 8-bit text goes out as a literal, and of two
    # Subject fields the last one counts.
    raw = (
        b"From: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?= <t@x.jp>\r\n"
        b"Subject: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\r\n"
        b"To: \xe5\xb1\xb1\xe7\x94\xb0 <yamada@x.jp>\r\n"
        b'Cc: "\xe5\xb1\xb1" <y@x.jp>\r\n'
        b"Subject: second\r\n"
        b"Content-Type: text/plain; charset=ISO-2022-JP\r\n\r\n\x1b$B%F%9%H\x1b(B\r\n"
    )
    from_ = b'(("=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=" NIL "t" "x.jp"))'
    assert envelope(raw) == (
        b'(NIL "second" ' + from_ + b" " + from_ + b" " + from_
        + b' (({6}\r\n\xe5\xb1\xb1\xe7\x94\xb0 NIL "yamada" "x.jp"))'
        b' (({3}\r\n\xe5\xb1\xb1 NIL "y" "x.jp")) NIL NIL NIL)'
    )


def test_envelope_8bit_subject_is_a_literal():
    assert envelope(b"Subject: caf\xc3\xa9\r\n\r\n") == b"(NIL {5}\r\ncaf\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_envelope_missing_message_id_and_empty_message():
    raw = b"Date: 1 Jan 2020 00:00:00 +0000\r\nFrom: a@b.c\r\n\r\n"
    assert envelope(raw) == (
        b'("1 Jan 2020 00:00:00 +0000" NIL ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c"))'
        b' ((NIL NIL "a" "b.c")) NIL NIL NIL NIL NIL)'
    )
    assert envelope(b"") == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_envelope_subject_white_space_is_collapsed():
    # Dovecot: folding, tabs and runs of blanks become one space; changed text is a literal.
    assert envelope(b"Subject:\tleading tab\t \r\n folded\r\n\r\n").startswith(b"(NIL {18}\r\nleading tab folded NIL")
    assert envelope(b"Subject: hi   \r\n\r\n").startswith(b"(NIL {2}\r\nhi NIL")
    assert envelope(b"Subject:\r\n\r\n").startswith(b'(NIL "" NIL')
    assert envelope(b"Subject: \t \r\n\r\n").startswith(b'(NIL "" NIL')
    assert envelope(b'Subject: say "hi" \\ bye\r\n\r\n').startswith(b'(NIL {14}\r\nsay "hi" \\ bye NIL')


def test_envelope_other_strings_are_unfolded_but_otherwise_kept():
    raw = b'Date:   Mon, 2 Jan 2006 15:04:05 -0700 (MST)  \r\nMessage-ID:\r\n   <abc@def>  \r\nIn-Reply-To: a "q" \\ b\r\n\r\n'
    assert envelope(raw) == (
        b'("Mon, 2 Jan 2006 15:04:05 -0700 (MST)  " NIL NIL NIL NIL NIL NIL NIL'
        b' "a \\"q\\" \\\\ b" "   <abc@def>  ")'
    )


def test_envelope_bare_lf_and_nul():
    assert envelope(b"From: a@b.c\nSubject: bare\n lf folded\n\nx\n") == (
        b'(NIL {14}\r\nbare lf folded ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) NIL NIL NIL NIL NIL)'
    )
    # Dovecot replaces NUL in header text with U+FFFD.
    assert envelope(b"Subject: n\x00ul\r\n\r\n").startswith(b"(NIL {6}\r\nn\xef\xbf\xbdul NIL")


def test_envelope_very_long_subject():
    raw = b"From: a@b.c\r\nSubject: " + b"word " * 400 + b"\r\n\tcontinued\r\nX-Long: " + b"y" * 5000 + b"\r\n\r\nbody\r\n"
    text = b"word " * 400 + b"continued"
    assert envelope(raw).startswith(b"(NIL {%d}\r\n" % len(text) + text + b' ((NIL NIL "a" "b.c"))')


def test_envelope_repeated_address_fields_accumulate():
    raw = b"From: a@b\r\nFrom: c@d\r\n\r\n"
    assert envelope(raw).startswith(b'(NIL NIL ((NIL NIL "a" "b")(NIL NIL "c" "d"))')


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"a@b.c", [(None, None, b"a", b"b.c")]),
        (b'"" <a@b.c>', [(None, None, b"a", b"b.c")]),
        (b"a@b.c (Real Name)", [(b"Real Name", None, b"a", b"b.c")]),
        (b"A  B\t C <a@b>", [(b"A B C", None, b"a", b"b")]),
        (b'"john doe"@x.y', [(None, None, b"john doe", b"x.y")]),
        (b"a@[1.2.3.4]", [(None, None, b"a", b"[1.2.3.4]")]),
        (b"<a(c)@b>", [(None, None, b"a", b"b")]),
        (b"@bad", [(None, None, b"MISSING_MAILBOX", b"bad")]),
        (b"loc@", [(None, None, b"loc", b"MISSING_DOMAIN")]),
        (b"Alice Example bad", [(b"Alice Example bad", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
        (b"x@b. c", [(None, None, b"x", b"b.c")]),
        (b"Mr.  Spaces u", [(b"Mr.  Spaces u", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
        (b"<>", [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
        (b"Name <u@>", [(b"Name", None, b"u", b"SYNTAX_ERROR")]),
        (b"G: a@b", [(None, None, b"G", None), (None, None, b"a", b"b"), (None, None, None, None)]),
        (b"", []),
        (b"  ", []),
        (b";", [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
    ],
)
def test_parse_addresses(value, expected):
    assert parse_addresses(value) == expected


# -- BODY / BODYSTRUCTURE -----------------------------------------------------------------------


def test_bodystructure_simple_text():
    assert bodystructure(SIMPLE) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)'
    assert bodystructure(SIMPLE, extensible=False) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)'


def test_bodystructure_multipart_alternative():
    assert bodystructure(ALTERNATIVE) == (
        b'(("text" "plain" ("charset" "UTF-8") NIL NIL "quoted-printable" 19 1 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 12 0 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "XXX" "foo" "bar") NIL NIL NIL)'
    )
    assert bodystructure(ALTERNATIVE, extensible=False) == (
        b'(("text" "plain" ("charset" "UTF-8") NIL NIL "quoted-printable" 19 1)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 12 0) "alternative")'
    )


def test_bodystructure_nested_with_message_rfc822_and_attachment():
    inner_envelope = (
        b'(NIL "inner msg" ((NIL NIL "x" "y.z")) ((NIL NIL "x" "y.z")) ((NIL NIL "x" "y.z"))'
        b' ((NIL NIL "q" "r.s")) NIL NIL NIL NIL)'
    )
    assert bodystructure(NESTED) == (
        b'((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "inner") NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7bit" 251 ' + inner_envelope + b' '
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
        b'("application" "octet-stream" NIL NIL NIL "base64" 4 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "b3") NIL NIL NIL) 15 NIL ("inline" NIL) NIL NIL)'
        b'("image" "png" ("name" "p.png") "<img1@x>" "a picture" "base64" 4 "Q2hlY2sgSW50ZWdyaXR5IQ=="'
        b' ("attachment" ("filename" "p.png" "size" "3")) ("en" "de") "http://x.test/p.png")'
        b' "mixed" ("boundary" "outer") NIL NIL NIL)'
    )
    assert bodystructure(NESTED, extensible=False) == (
        b'((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0) "alternative")'
        b'("message" "rfc822" NIL NIL NIL "7bit" 251 ' + inner_envelope + b' '
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0)'
        b'("application" "octet-stream" NIL NIL NIL "base64" 4) "mixed") 15)'
        b'("image" "png" ("name" "p.png") "<img1@x>" "a picture" "base64" 4) "mixed")'
    )


def test_bodystructure_rfc2231_and_spelling_as_in_the_message():
    # Dovecot: continuations are joined but not decoded; names and values keep their case.
    raw = (
        b'From: a@b.c\r\nContent-Type: multipart/mixed; boundary="=_b"\r\n\r\n'
        b"--=_b\r\nContent-Type: application/pdf; NAME*=utf-8''%E2%82%AC%20rates.pdf\r\n"
        b"Content-Disposition: ATTACHMENT; filename*0*=utf-8''%E2%82%AC; filename*1=\" rates.pdf\"\r\n\r\nPDF\r\n"
        b"--=_b\r\nContent-Type: TEXT/PLAIN; CHARSET=ISO-8859-1; Format=flowed\r\n"
        b"Content-Disposition: inline\r\nContent-Language: fr\r\n\r\nbonjour\r\n--=_b--\r\n"
    )
    assert bodystructure(raw) == (
        b'(("application" "pdf" ("NAME*" "utf-8\'\'%E2%82%AC%20rates.pdf") NIL NIL "7bit" 3 NIL'
        b' ("ATTACHMENT" ("filename*" "utf-8\'\'%E2%82%AC rates.pdf")) NIL NIL)'
        b'("TEXT" "PLAIN" ("CHARSET" "ISO-8859-1" "Format" "flowed") NIL NIL "7bit" 7 0 NIL ("inline" NIL) ("fr") NIL)'
        b' "mixed" ("boundary" "=_b") NIL NIL NIL)'
    )


def test_bodystructure_rfc2231_pieces():
    raw = b"Content-Type: application/x; FILENAME*0=\"a b\"; FILENAME*1*=%41; NAME*1=two; NAME*0=one\r\n\r\nx"
    assert bodystructure(raw).startswith(b'("application" "x" ("FILENAME*" "\'\'a b%41" "NAME" "onetwo")')
    gap = b"Content-Type: application/x; name*=x; name=y; a*0=1; a*2=3\r\n\r\nx"
    assert bodystructure(gap).startswith(b'("application" "x" ("name" "y" "a*0" "1" "a*2" "3" "name*" "x")')


def test_bodystructure_parameter_quirks():
    raw = b'Content-Type: application/x-foo; A=1; b="two words"; c="q\\"q"; D = 4 ; e\r\n\r\nzz\r\n'
    assert bodystructure(raw) == (
        b'("application" "x-foo" ("A" "1" "b" "two words" "c" "q\\"q" "D" "4") NIL NIL "7bit" 4 NIL NIL NIL NIL)'
    )
    # A text part without charset gets the default one, after the others.
    assert bodystructure(b"Content-Type: text/html; format=flowed\r\n\r\nzz\r\n") == (
        b'("text" "html" ("format" "flowed" "charset" "us-ascii") NIL NIL "7bit" 4 1 NIL NIL NIL NIL)'
    )
    assert bodystructure(b'Content-Type: text/plain; name="caf\xc3\xa9.txt"\r\n\r\nx\r\n').startswith(
        b'("text" "plain" ("name" {9}\r\ncaf\xc3\xa9.txt "charset" "us-ascii")'
    )


def test_bodystructure_plain_7bit_message_has_a_fixed_spelling():
    # Dovecot writes a plain us-ascii 7bit message the same way whatever the header says.
    raw = b"Content-Type: Text/Plain; CHARSET=US-ASCII\r\nContent-Transfer-Encoding: 7BIT\r\n\r\nx\r\n"
    assert bodystructure(raw) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 1 NIL NIL NIL NIL)'
    assert bodystructure(b"Content-Type: TEXT/HTML; Charset=UTF-8\r\nContent-Transfer-Encoding: BASE64\r\n\r\nPGI+\r\n") == (
        b'("TEXT" "HTML" ("Charset" "UTF-8") NIL NIL "BASE64" 6 1 NIL NIL NIL NIL)'
    )


@pytest.mark.parametrize(
    "content_type, expected",
    [
        (b"text", b'("text" "" ("charset" "us-ascii") NIL NIL "7bit" 5 1 NIL NIL NIL NIL)'),
        (b";;", b'("" "" NIL NIL NIL "7bit" 5 NIL NIL NIL NIL)'),
        (b"image/", b'("" "" NIL NIL NIL "7bit" 5 NIL NIL NIL NIL)'),
        (b"multipart", b'("application" "octet-stream" NIL NIL NIL "7bit" 5 NIL NIL NIL NIL)'),
        (b"text/plain (a comment); charset=(c)\"utf-8\"", b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 1 NIL NIL NIL NIL)'),
        (b"message/global", b'("message" "global" NIL NIL NIL "7bit" 5 NIL NIL NIL NIL)'),
    ],
)
def test_bodystructure_broken_content_types(content_type, expected):
    # Dovecot
    assert bodystructure(b"Content-Type: " + content_type + b"\r\n\r\nabc\r\n") == expected


def test_content_headers_need_mime():
    # Without MIME-Version or Content-Type, Content-* headers are not MIME and are ignored.
    raw = b"Content-Language: en\r\nContent-Disposition: inline\r\n\r\nx"
    assert bodystructure(raw) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)'
    raw = b"MIME-Version: 1.0\r\nContent-Language: en-US , fr\r\nContent-Location: foo\r\n\r\nx"
    assert bodystructure(raw) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL ("en-US" "fr") "foo")'


def test_bodystructure_missing_final_boundary():
    raw = (
        b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
        b"--zz\r\nContent-Type: text/plain\r\n\r\none\r\n"
        b"--zz\r\nContent-Type: text/plain\r\n\r\ntwo\r\nmore\r\n"
    )
    assert bodystructure(raw) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0 NIL NIL NIL NIL)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 2 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "zz") NIL NIL NIL)'
    )
    assert section(raw, "2") == b"two\r\nmore\r\n"


def test_bodystructure_multipart_without_parts_gets_an_empty_text_part():
    empty = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
    assert bodystructure(b"Content-Type: multipart/mixed; boundary=nope\r\n\r\njust text\r\n") == (
        b"(" + empty + b' "mixed" ("boundary" "nope") NIL NIL NIL)'
    )
    assert bodystructure(b"Content-Type: multipart/mixed\r\n\r\n--x\r\nfoo\r\n") == b"(" + empty + b' "mixed" NIL NIL NIL NIL)'


def test_bodystructure_digest_parts_default_to_message_rfc822():
    raw = (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n"
        b"--d\r\n\r\nSubject: d1\r\n\r\nbody1\r\n"
        b"--d\r\nContent-Type: text/plain\r\n\r\nnot msg\r\n--d--\r\n"
    )
    assert bodystructure(raw) == (
        b'(("message" "rfc822" NIL NIL NIL "7bit" 20 (NIL "d1" NIL NIL NIL NIL NIL NIL NIL NIL)'
        b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 0 NIL NIL NIL NIL)'
        b' "digest" ("boundary" "d") NIL NIL NIL)'
    )


def test_bodystructure_empty_message_rfc822():
    assert bodystructure(b"Content-Type: message/rfc822\r\n\r\n") == (
        b'("message" "rfc822" NIL NIL NIL "7bit" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)'
        b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL)'
    )


def test_bodystructure_bare_lf_counts_raw_octets():
    # Sizes are those of the bytes BODY[n] sends, so a bare-LF message has smaller sizes
    # than the same message with CRLF.
    raw = (
        b"From: a@b.c\nSubject: bare\n lf folded\nContent-Type: multipart/mixed; boundary=q\n\n"
        b"--q\nContent-Type: text/plain\n\nx\ny\n--q\n\nno header part\n--q--\n"
    )
    assert bodystructure(raw) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 1 NIL NIL NIL NIL)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 0 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "q") NIL NIL NIL)'
    )
    assert section(raw, "1") == b"x\ny"
    assert section(raw, "2.MIME") == b"\n"


def test_bodystructure_nul_bytes():
    raw = b"From: a@b.c\r\nSubject: n\x00ul\r\n\r\nbo\x00dy\r\n\x00\r\n"
    assert bodystructure(raw) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 2 NIL NIL NIL NIL)'
    assert section(raw, "TEXT") == b"bo\x00dy\r\n\x00\r\n"


def test_boundaries_prefix_match_and_longest_wins():
    # "--wsX" closes a part of boundary "ws"; with "ab" and "abc" open, "--abc" is abc's.
    raw = b"Content-Type: multipart/mixed; boundary=ws\r\n\r\n--ws\r\n\r\np1\r\n--wsX\r\n\r\np2\r\n--ws--\r\n"
    assert (section(raw, "1"), section(raw, "2")) == (b"p1", b"p2")
    raw = (
        b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n"
        b"--ab\r\nContent-Type: multipart/mixed; boundary=abc\r\n\r\n--abc\r\n\r\nin\r\n"
        b"--ab\r\n\r\nouter2\r\n--ab--\r\n"
    )
    assert (section(raw, "1.1"), section(raw, "2")) == (b"in", b"outer2")


def test_part_header_without_empty_line():
    # The header runs into the next boundary: the part has a header and no body.
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\nbody without blank\r\n--x--\r\n"
    assert section(raw, "1") == b""
    assert section(raw, "1.MIME") == b"Content-Type: text/plain\r\nbody without blank"


def test_depth_limit_leaves_deep_parts_closed():
    depth = 150
    raw = b"".join(b"Content-Type: multipart/mixed; boundary=F%03d\r\n\r\n--F%03d\r\n" % (i, i) for i in range(depth))
    raw += b"\r\nfond\r\n"
    out = bodystructure(raw)  # no RecursionError
    assert out.count(b'"mixed"') == mime.MAX_DEPTH - 1
    assert b'("application" "octet-stream" ("boundary" "F099") NIL NIL "7bit" ' in out
    rfc = b"Content-Type: message/rfc822\r\n\r\n" * 150 + b"Subject: x\r\n\r\nbody\r\n"
    assert bodystructure(rfc).count(b'"message" "rfc822"') == mime.MAX_DEPTH - 1


def test_part_count_limit():
    raw = b"Content-Type: multipart/mixed; boundary=A\r\n\r\n"
    raw += b"--A\r\nContent-Type: text/plain\r\n\r\nx\r\n" * (mime.MAX_PARTS + 5) + b"--A--\r\n"
    root = mime.parse(raw)
    assert len(root.children) == mime.MAX_PARTS - 1
    assert root.children[-1].end == len(raw)  # the last part takes the rest


# -- sections ----------------------------------------------------------------------------------


def test_sections_of_a_simple_message():
    assert section(SIMPLE, "") == SIMPLE
    assert section(SIMPLE, "HEADER") == b"From: A <a@b.c>\r\nSubject: hi\r\n\r\n"
    assert section(SIMPLE, "TEXT") == b"body\r\n"
    assert section(SIMPLE, "1") == b"body\r\n"
    assert section(SIMPLE, "1.MIME") == b"From: A <a@b.c>\r\nSubject: hi\r\n\r\n"
    # Dovecot: part 1 of a single-part message has no part 1.1, and no 2.
    assert section(SIMPLE, "1.1") == b""
    assert section(SIMPLE, "2") == b""
    assert section(SIMPLE, "1.HEADER") == b""


def test_sections_of_a_nested_message():
    assert section(NESTED, "1") == (
        b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--inner\r\nContent-Type: text/html\r\n\r\n<b>h</b>\r\n--inner--\r\n"
    )
    assert section(NESTED, "1.MIME") == b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
    assert section(NESTED, "1.2") == b"<b>h</b>"
    assert section(NESTED, "1.2.MIME") == b"Content-Type: text/html\r\n\r\n"
    assert section(NESTED, "2") == INNER
    assert section(NESTED, "2.MIME") == b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
    assert section(NESTED, "2.HEADER") == INNER[: INNER.index(b"\r\n\r\n") + 4]
    assert section(NESTED, "2.TEXT") == INNER[INNER.index(b"\r\n\r\n") + 4:]
    assert section(NESTED, "2.HEADER.FIELDS (SUBJECT)") == b"Subject: inner msg\r\n\r\n"
    assert section(NESTED, "2.1") == b"inner text"
    assert section(NESTED, "2.2") == b"AAAA"
    assert section(NESTED, "2.2.MIME") == b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    assert section(NESTED, "3") == b"iVBO"
    assert section(NESTED, "3.MIME") == PNG_MIME
    # A leaf may be named with one extra ".1"; HEADER and TEXT only exist for messages.
    assert section(NESTED, "3.1") == b"iVBO"
    assert section(NESTED, "3.1.1") == b""
    assert section(NESTED, "3.HEADER") == b""
    assert section(NESTED, "1.TEXT") == b""
    assert section(NESTED, "4") == b""
    assert section(NESTED, "0") == b""
    assert section(NESTED, "01") == section(NESTED, "1")


def test_sections_of_a_message_rfc822_message():
    raw = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: i@n.r\r\n\r\ninner body\r\nline\r\n"
    assert section(raw, "1") == b"Subject: inner\r\nFrom: i@n.r\r\n\r\ninner body\r\nline\r\n"
    assert section(raw, "1.MIME") == b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n"
    assert section(raw, "1.HEADER") == b"Subject: inner\r\nFrom: i@n.r\r\n\r\n"
    assert section(raw, "1.TEXT") == b"inner body\r\nline\r\n"
    assert section(raw, "1.1") == b"inner body\r\nline\r\n"
    assert section(raw, "1.1.MIME") == b"Subject: inner\r\nFrom: i@n.r\r\n\r\n"
    assert section(raw, "1.1.1") == b""


def test_header_fields():
    raw = b"Subject: s\r\nX-Folded: a\r\n\tb\r\nthis is not a header\r\nFrom: a@b.c\r\nsubject : again\r\n\r\nx\r\n"
    assert section(raw, "HEADER.FIELDS (SUBJECT x-folded)") == b"Subject: s\r\nX-Folded: a\r\n\tb\r\nsubject : again\r\n\r\n"
    assert section(raw, "HEADER.FIELDS.NOT (Subject X-FOLDED)") == b"this is not a header\r\nFrom: a@b.c\r\n\r\n"
    assert section(raw, 'HEADER.FIELDS ("From")') == b"From: a@b.c\r\n\r\n"
    assert section(raw, "HEADER.FIELDS (NOPE)") == b"\r\n"
    assert section(raw, "header.fields (from)") == b"From: a@b.c\r\n\r\n"


def test_header_fields_of_a_header_without_empty_line():
    # Dovecot ends HEADER.FIELDS with an empty line even then; .NOT sends what there is.
    assert section(b"Subject: only header\r\n", "HEADER.FIELDS (SUBJECT)") == b"Subject: only header\r\n\r\n"
    assert section(b"Subject: x\r\nFrom: a@b.c", "HEADER.FIELDS (FROM)") == b"From: a@b.c\r\n"
    assert section(b"Subject: x\r\nFrom: a@b.c", "HEADER.FIELDS.NOT (SUBJECT)") == b"From: a@b.c"


def test_very_long_header_line_is_returned_whole():
    raw = b"From: a@b.c\r\nX-Long: " + b"y" * 5000 + b"\r\n\r\nbody\r\n"
    assert section(raw, "HEADER.FIELDS (X-LONG)") == b"X-Long: " + b"y" * 5000 + b"\r\n\r\n"


def test_sections_of_an_empty_message():
    for spec in ("", "HEADER", "TEXT", "1", "1.MIME", "HEADER.FIELDS (A)", "2.TEXT"):
        assert section(b"", spec) == b""


@pytest.mark.parametrize("spec", ["MIME", "1.", ".1", "1..2", "TEXT.MIME", "1.TEXT.HEADER", "HEADER.FIELDS", "HEADER.FIELDS ()", "X"])
def test_invalid_section_specs(spec):
    with pytest.raises(ValueError):
        section(SIMPLE, spec)


def test_binary_decodes_leaf_parts():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n"
        b"--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 \r\nsoft=\r\nbreak\r\n"
        b"--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"
        b"--b--\r\n"
    )
    assert mime.binary(raw, (1,)) == (b"hello", True)
    assert mime.binary(raw, (2,)) == (b"caf\xc3\xa9\r\nsoftbreak", True)
    assert mime.binary(raw, (4,)) == (b"", False)
    with pytest.raises(mime.UnknownCTE):
        mime.binary(raw, (3,))


# -- nothing breaks it -------------------------------------------------------------------------

_PIECES = st.sampled_from([
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n\n", b"--", b"--b", b"--b--", b"--c", b"\x00", b"\xff\xfe", b" ", b"\t",
    b"Content-Type: multipart/mixed; boundary=b", b"Content-Type: multipart/digest; boundary=c",
    b"Content-Type: message/rfc822", b"Content-Type: text/plain; charset=", b"MIME-Version: 1.0",
    b"Content-Transfer-Encoding: base64", b"Content-Disposition: attachment; filename*0*=x; filename*1=y",
    b"From: ", b"To: a@b, G: c@d;, <@r:x@y>", b"Subject: ", b'"', b"(", b")", b"<", b">", b"@", b",", b";", b":",
    b"=?utf-8?q?x?=", b"\\", b"body text", b"Content-Language: en", b"boundary=",
])
_MESSAGES = st.one_of(st.binary(max_size=300), st.lists(_PIECES, max_size=40).map(b"".join))
_SPECS = ["", "HEADER", "TEXT", "1", "2", "1.1", "1.2", "2.1", "1.MIME", "2.MIME", "1.HEADER", "1.TEXT",
          "2.1.1", "1.1.TEXT", "HEADER.FIELDS (FROM SUBJECT)", "HEADER.FIELDS.NOT (TO)", "1.HEADER.FIELDS (TO)"]


@settings(max_examples=400, deadline=None)
@given(_MESSAGES)
def test_random_messages_never_break_anything(raw):
    mime._cache.clear()
    env = envelope(raw)
    assert env.startswith(b"(") and env.endswith(b")")
    for extensible in (True, False):
        out = bodystructure(raw, extensible)
        assert out.startswith(b"(") and out.endswith(b")")
    assert section(raw, "") == raw
    for spec in _SPECS:
        data = section(raw, spec)
        assert isinstance(data, bytes) and len(data) <= len(raw) + 2
    _check_tree(mime.parse(raw), raw)


def _check_tree(part: mime.Part, raw: bytes) -> None:
    """Every part is a slice of its parent; children come in order."""
    assert 0 <= part.start <= part.hdr_end <= part.end <= len(raw)
    last = part.hdr_end
    for child in part.children:
        assert last <= child.start and child.end <= part.end
        last = child.end
        _check_tree(child, raw)
