"""Header and body text extraction: unfolding, RFC 2047 decoding, addresses, MIME parts."""

from __future__ import annotations

import binascii
import re

_MAX_MIME_DEPTH = 20

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")
_LWSP = re.compile(r"[ \t\r\n]+")
_ENCODED_WORD = re.compile(r"=\?([^?]*)\?([bBqQ])\?(.*?)\?=")
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^\s;]*))', re.S)
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")

# One parsed header field: (lower-cased name, the whole unfolded line, the unfolded value).
_Field = tuple[str, str, str]


def _split_message(raw: bytes) -> tuple[bytes, bytes]:
    """Header block and body, at the first empty line (CRLF or bare LF)."""
    if raw.startswith(b"\n"):
        return b"", raw[1:]
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    m = _BLANK_LINE.search(raw)
    if m is None:
        return raw, b""
    return raw[: m.start()], raw[m.end() :]


def _parse_fields(header: bytes) -> list[_Field]:
    lines: list[str] = []
    for line in _LINE_BREAK.split(header.decode("utf-8", "replace")):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line  # unfold: the line break goes, the whitespace stays
        elif line:
            lines.append(line)
    fields: list[_Field] = []
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            fields.append((name.rstrip(" \t").lower(), line, value.lstrip(" \t")))
        else:  # Dovecot's reading: a field with an empty name whose value is the line
            fields.append(("", line, line))
    return fields


def _first(fields: list[_Field], name: str) -> str | None:
    for field_name, _, value in fields:
        if field_name == name:
            return value
    return None


def _to_text(data: bytes, charset: str | None) -> str:
    """Bytes in a MIME charset as text; unknown or missing charsets read as UTF-8."""
    name = (charset or "").strip().lower()
    if name and name not in ("us-ascii", "ascii", "utf-8", "utf8"):
        try:
            return data.decode(name, "replace")
        except (LookupError, ValueError, TypeError):
            pass
    return data.decode("utf-8", "replace")


def _unbase64(data: bytes) -> bytes:
    """Lenient base64: junk characters dropped, padding repaired."""
    data = _BASE64_JUNK.sub(b"", data)
    extra = len(data) % 4
    if extra == 1:
        data = data[:-1]
    elif extra:
        data += b"=" * (4 - extra)
    return binascii.a2b_base64(data)


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words; whitespace between two adjacent words goes away."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    after_word = False
    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos : m.start()]
        charset, encoding, payload = m.groups()
        data = payload.encode("utf-8", "replace")
        try:
            raw = _unbase64(data) if encoding in "bB" else binascii.a2b_qp(data, header=True)
        except (binascii.Error, ValueError):
            out.append(gap + m.group(0))
            after_word, pos = False, m.end()
            continue
        if not (after_word and not gap.strip(" \t\r\n")):
            out.append(gap)
        out.append(_to_text(raw, charset.partition("*")[0]))
        after_word, pos = True, m.end()
    out.append(text[pos:])
    return "".join(out)


def _address_tokens(text: str) -> list[tuple[str, str]]:
    """Split an address list into (kind, text): ``word``, ``quoted``, ``comment`` or a special."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in "<>,:;@":
            tokens.append((ch, ch))
            i += 1
        elif ch in "\"(":
            close, depth, j, buf = ('"' if ch == '"' else ")"), 1, i + 1, []
            while j < n:
                c = text[j]
                if c == "\\" and j + 1 < n:
                    j += 1
                    c = text[j]
                elif c == close:
                    depth -= 1
                    if depth == 0:
                        break
                elif c == "(" and ch == "(":
                    depth += 1
                buf.append(c)
                j += 1
            tokens.append(("quoted" if ch == '"' else "comment", "".join(buf)))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n"(<>,:;@':
                j += 1
            tokens.append(("word", text[i:j]))
            i = j
    return tokens


_ATEXT_SPECIALS = set("!#$%&'*+-/=?^_`{|}~")


def _quote_name(name: str) -> str:
    """Quote a display or group name unless it is atoms only; encoded-words stay bare so that
    they are decoded afterwards (what Dovecot does)."""
    if "=?" in name or all(c.isalnum() or c in _ATEXT_SPECIALS or not c.isascii() for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _phrase(tokens: list[tuple[str, str]]) -> str:
    return " ".join(text for kind, text in tokens if kind in ("word", "quoted"))


def _format_mailbox(tokens: list[tuple[str, str]]) -> str:
    kinds = [kind for kind, _ in tokens]
    if "<" in kinds:
        start = kinds.index("<")
        name = _phrase(tokens[:start])
        inner = tokens[start + 1 :]
        if ">" in kinds[start + 1 :]:
            inner = inner[: kinds[start + 1 :].index(">")]
    else:
        comments = [text.strip() for kind, text in tokens if kind == "comment"]
        name = comments[-1] if comments else ""
        inner = tokens
    spec = "".join(text for kind, text in inner if kind not in ("comment", "<", ">"))
    return f"{_quote_name(name)} <{spec}>" if name else f"<{spec}>"


def _normalize_addresses(value: str) -> str:
    """An address list rewritten the way Dovecot matches it:
    ``name <addr>, <@route:addr>, group: <addr>, <addr>;, empty:;``."""
    out: list[str] = []
    group: tuple[str, list[str]] | None = None
    current: list[tuple[str, str]] = []
    in_angle = False

    def flush() -> None:
        if current:
            (group[1] if group is not None else out).append(_format_mailbox(current))
        current.clear()

    def close_group() -> None:
        assert group is not None
        name, members = _quote_name(group[0]), group[1]
        out.append(f"{name}: {', '.join(members)};" if members else f"{name}:;")

    for kind, text in _address_tokens(value):
        if in_angle or kind == "<":  # a route's "," and ":" belong to the address
            in_angle = kind != ">"
            current.append((kind, text))
        elif kind == ",":
            flush()
        elif kind == ":" and group is None:
            group = (_phrase(current), [])
            current.clear()
        elif kind == ";" and group is not None:
            flush()
            close_group()
            group = None
        else:
            current.append((kind, text))
    flush()
    if group is not None:
        close_group()
    return ", ".join(out)


def _render(value: str, mode: str) -> str:
    if mode == "address":
        return _decode_words(_normalize_addresses(value))
    if mode == "compress":
        return _decode_words(_LWSP.sub(" ", value).lstrip(" "))
    return _decode_words(value)


def _content_type(fields: list[_Field], default: str) -> tuple[str, dict[str, str]]:
    value = _first(fields, "content-type")
    if value is None:
        return default, {}
    main, _, rest = value.partition(";")
    params = {
        name.lower(): re.sub(r"\\(.)", r"\1", quoted) if quoted else bare
        for name, quoted, bare in _PARAM.findall(";" + rest)
    }
    main = main.strip().lower()
    return (main if "/" in main else "text/plain"), params


def _decode_transfer(data: bytes, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            return _unbase64(data)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(data)
    except (binascii.Error, ValueError):
        pass
    return data


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts between delimiter lines; the preamble and the epilogue are dropped."""
    delimiter = b"--" + boundary
    parts: list[bytes] = []
    current: list[bytes] | None = None
    for line in body.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n").rstrip(b" \t")
        if bare.startswith(delimiter) and bare[len(delimiter) :] in (b"", b"--"):
            if current is not None:
                parts.append(_strip_last_break(b"".join(current)))
            if bare.endswith(b"--") and bare != delimiter:
                return parts
            current = []
        elif current is not None:
            current.append(line)
    if current is not None:  # no closing delimiter
        parts.append(b"".join(current))
    return parts


def _strip_last_break(part: bytes) -> bytes:
    """The line break before a delimiter belongs to the delimiter."""
    if part.endswith(b"\r\n"):
        return part[:-2]
    if part.endswith((b"\n", b"\r")):
        return part[:-1]
    return part


# Bodies made of header-like text, which Dovecot searches as text (delivery reports, MDNs).
_HEADER_LIKE_BODIES = frozenset({"message/delivery-status", "message/disposition-notification",
                                 "message/global-headers", "message/global-delivery-status"})


def _collect(
    fields: list[_Field], body: bytes, default: str, depth: int, heads: list[str], bodies: list[str]
) -> None:
    """Gather the searchable text of one MIME entity: header lines and decoded text bodies."""
    heads.extend(_decode_words(line) for _, line, _ in fields)
    if depth >= _MAX_MIME_DEPTH:
        return
    ctype, params = _content_type(fields, default)
    encoding = (_first(fields, "content-transfer-encoding") or "").strip().lower()
    boundary = params.get("boundary")
    if ctype.startswith("multipart/") and boundary:
        child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        for part in _split_multipart(body, boundary.encode("utf-8", "replace")):
            head, rest = _split_message(part)
            _collect(_parse_fields(head), rest, child_default, depth + 1, heads, bodies)
    elif ctype == "message/rfc822":
        head, rest = _split_message(_decode_transfer(body, encoding))
        _collect(_parse_fields(head), rest, "text/plain", depth + 1, heads, bodies)
    elif ctype.startswith(("text/", "multipart/")) or ctype in _HEADER_LIKE_BODIES:
        bodies.append(_to_text(_decode_transfer(body, encoding), params.get("charset")))
