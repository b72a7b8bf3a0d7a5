"""What a check result shows a person: results with evidence, wire excerpts, messages by name.

A verdict is only as good as its evidence, so every failure says which command on which
connection (with a redacted window of the transcript around it), or which message by
Message-ID, subject and size. Excerpts hide secrets twice: the fakes' own redaction of
LOGIN/AUTHENTICATE, and any given secret that a client put somewhere unexpected.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..verdicts import CheckResult, Evidence

EXCERPT_BEFORE = 4  # transcript lines shown before the offending one
EXCERPT_AFTER = 3
LINE_WIDTH = 200
MAX_EVIDENCE = 5  # violations listed one by one; the rest are summarised


# -- results -------------------------------------------------------------------------------------


def passed(level: str, evidence: Iterable[Evidence] = ()) -> CheckResult:
    return CheckResult(check="", passed=True, level=level, evidence=list(evidence))


def failed(level: str, evidence: Iterable[Evidence], *, security: bool = False) -> CheckResult:
    evidence = list(evidence)
    if not evidence:
        raise ValueError("a failing result needs evidence")
    return CheckResult(check="", passed=False, level=level, evidence=evidence, security=security)


def measured(evidence: Iterable[Evidence]) -> CheckResult:
    return CheckResult(check="", passed=None, level="INFO", evidence=list(evidence))


def capped(items: list, summary) -> list:
    """The first MAX_EVIDENCE items, plus ``summary(rest)`` standing for the others."""
    if len(items) <= MAX_EVIDENCE:
        return items
    return items[:MAX_EVIDENCE] + [summary(items[MAX_EVIDENCE:])]


# -- wire excerpts -------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[bytes]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            shown = secret.decode("utf-8", "replace")
            text = text.replace(shown, "***")
    return text


def excerpt(conn, *, command=None, response=None, secrets: Iterable[bytes] = (), end: bool = False) -> str:
    """A redacted window of ``conn``'s transcript around ``command`` or ``response`` (marked
    ``>>``); else its last lines (``end``: where a client stopped or hung) or its first."""
    lines = conn.transcript().splitlines()
    head, body = lines[0], lines[1:]
    index = None
    if end and body:
        command = response = None
        index = len(body) - 1
    if command is not None:
        index = _nth_line(body, _command_text(command), _occurrence(conn.commands, command, _command_text))
    elif response is not None:
        index = _nth_line(body, _response_text(response), _occurrence(conn.responses, response, _response_text))
    if index is None:
        window = [f"   {line}" for line in body[: EXCERPT_BEFORE + EXCERPT_AFTER + 1]]
        rest = len(body) - len(window)
    else:
        low, high = max(0, index - EXCERPT_BEFORE), min(len(body), index + EXCERPT_AFTER + 1)
        window = [(">> " if i == index else "   ") + body[i] for i in range(low, high)]
        if low > 0:
            window.insert(0, f"   ... {low} earlier lines")
        rest = len(body) - high
    if rest > 0:
        window.append(f"   ... {rest} more lines")
    text = "\n".join([head] + [_clip(line) for line in window])
    return redact(text, secrets)


def _clip(line: str) -> str:
    return line if len(line) <= LINE_WIDTH else line[: LINE_WIDTH - 3] + "..."


def _command_text(cmd) -> str:
    return f"C: {cmd.redacted}" + ("" if cmd.executed else "   [not executed]")


def _response_text(resp) -> str:
    return f"S: {resp.line}" + ("   [injected]" if resp.injected else "")


def _occurrence(items: list, item, text) -> int:
    """How many items before ``item`` read the same in a transcript."""
    wanted = text(item)
    count = 0
    for other in items:
        if other is item:
            return count
        if text(other) == wanted:
            count += 1
    return count


def _nth_line(lines: list[str], text: str, n: int) -> int | None:
    seen = 0
    for i, line in enumerate(lines):
        if line == text:
            if seen == n:
                return i
            seen += 1
    return None


def where(conn, cmd=None) -> str:
    """``connection #3 (imap/imap, run 2, before TLS)`` for evidence text."""
    state = ""
    if cmd is not None:
        state = ", over TLS" if cmd.tls else ", in plaintext"
    return f"connection #{conn.id} ({conn.protocol}/{conn.server}, run {conn.run}{state})"


# -- messages ------------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def header(raw: bytes, name: str) -> str | None:
    """The first ``name`` header of a message, unfolded, as text (None when absent).

    A tolerant reader: messages under test have broken headers on purpose.
    """
    end = _HEADER_END.search(raw)
    block = raw[: end.start()] if end else raw[:65536]
    value = None
    wanted = name.lower().encode() + b":"
    for line in re.split(rb"\r?\n", block):
        if value is not None and line[:1] in (b" ", b"\t"):
            value += b" " + line.strip()
            continue
        if value is not None:
            break
        if line.lower().startswith(wanted):
            value = line[len(wanted):].strip()
    return None if value is None else value.decode("utf-8", "replace")


def describe_message(raw: bytes) -> str:
    """``<id@example.test> "Subject" (1234 bytes)``: how evidence names a message."""
    msgid = header(raw, "Message-ID")
    subject = header(raw, "Subject")
    parts = [_short(msgid) if msgid else "(no Message-ID)"]
    if subject is not None:
        parts.append(f'"{_short(subject, 60)}"')
    parts.append(f"({len(raw)} bytes)")
    return " ".join(parts)


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def first_difference(a: bytes, b: bytes) -> int:
    """The offset of the first differing byte (the shorter length if one is a prefix)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))
