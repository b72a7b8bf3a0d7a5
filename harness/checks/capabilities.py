"""What an IMAP client had been told it may use, at each command it sent.

A server announces capabilities in its greeting (``* OK [CAPABILITY ...]``), in ``* CAPABILITY``
responses, and in a tagged ``OK [CAPABILITY ...]`` (after LOGIN). The list *in force* for a
command is the latest announcement the client had received before sending it, on the same
connection and under the same TLS state: STARTTLS voids everything learnt in plaintext
(RFC 3501 §6.2.1), so a plaintext announcement never covers a command sent over TLS.

Commands map to the capability that makes them legal (IDLE needs IDLE, UID MOVE needs MOVE,
AUTHENTICATE X needs AUTH=X, an initial response needs SASL-IR, a ``{n+}`` literal needs
LITERAL+ or LITERAL-). A requirement is a tuple of alternatives; ``X=`` means any ``X=...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CAPABILITY_RESPONSE = re.compile(r"^\* CAPABILITY(?: (.*))?$", re.IGNORECASE)
_CAPABILITY_CODE = re.compile(r"^\S+ (?:OK|PREAUTH) \[CAPABILITY(?: ([^\]]*))?\]", re.IGNORECASE)

# command name as the wire log records it -> the capability that makes it legal
COMMAND_CAPABILITY: dict[str, str] = {
    "IDLE": "IDLE",
    "MOVE": "MOVE", "UID MOVE": "MOVE",
    "UID EXPUNGE": "UIDPLUS",
    "ENABLE": "ENABLE",
    "ID": "ID",
    "NAMESPACE": "NAMESPACE",
    "UNSELECT": "UNSELECT",
    "SORT": "SORT", "UID SORT": "SORT",
    "THREAD": "THREAD=", "UID THREAD": "THREAD=",
    "COMPRESS": "COMPRESS=",
    "GETQUOTA": "QUOTA", "GETQUOTAROOT": "QUOTA", "SETQUOTA": "QUOTA",
    "GETMETADATA": "METADATA", "SETMETADATA": "METADATA",
    "GETACL": "ACL", "SETACL": "ACL", "DELETEACL": "ACL", "MYRIGHTS": "ACL", "LISTRIGHTS": "ACL",
    "STARTTLS": "STARTTLS",
    "XLIST": "XLIST",
    "REPLACE": "REPLACE", "UID REPLACE": "REPLACE",
    "UNAUTHENTICATE": "UNAUTHENTICATE",
}
LITERAL_PLUS = ("LITERAL+", "LITERAL-")

Requirement = tuple[str, ...]  # any one of these capabilities


@dataclass(frozen=True)
class Announcement:
    index: int  # position in the connection's responses
    at: float
    tls: bool
    injected: bool
    caps: frozenset[str]
    line: str


def parse(line: str) -> frozenset[str] | None:
    """The capabilities a response line announces, or None when it announces none."""
    match = _CAPABILITY_RESPONSE.match(line) or _CAPABILITY_CODE.match(line)
    if match is None:
        return None
    return frozenset(token.upper() for token in (match.group(1) or "").split())


def announcements(conn) -> list[Announcement]:
    out = []
    for i, resp in enumerate(conn.responses):
        caps = parse(resp.line)
        if caps is not None:
            out.append(Announcement(i, resp.at, resp.tls, resp.injected, caps, resp.line))
    return out


def in_force(anns: list[Announcement], cmd, *, injected: bool = True) -> Announcement | None:
    """The announcement in force when ``cmd`` was sent (None: nothing had been announced)."""
    current = None
    for ann in anns:
        if ann.at > cmd.at:
            break
        if ann.tls == cmd.tls and (injected or not ann.injected):
            current = ann
    return current


def satisfied(req: Requirement, caps: frozenset[str] | set[str]) -> bool:
    for alternative in req:
        if alternative.endswith("="):
            if any(cap.startswith(alternative) for cap in caps):
                return True
        elif alternative in caps:
            return True
    return False


def show(req: Requirement) -> str:
    return " or ".join(alt + "..." if alt.endswith("=") else alt for alt in req)


def requirements(cmd) -> list[tuple[str, Requirement]]:
    """What ``cmd`` relies on, as (what a scenario lists to check it, the capabilities that
    allow it); empty for IMAP4rev1 base commands. The label is the command's name without
    ``UID``, or ``LITERAL+`` for a non-synchronizing literal."""
    reqs: list[tuple[str, Requirement]] = []
    name = cmd.name.upper()
    label = name.removeprefix("UID ")
    if name == "AUTHENTICATE":
        words = cmd.redacted.split()
        if len(words) >= 3:
            reqs.append((label, (f"AUTH={words[2].upper()}",)))
        if len(words) >= 4:  # an initial response on the command line
            reqs.append((label, ("SASL-IR",)))
    elif name in COMMAND_CAPABILITY:
        reqs.append((label, (COMMAND_CAPABILITY[name],)))
    if _non_synchronizing_literal(cmd.raw):
        reqs.append(("LITERAL+", LITERAL_PLUS))
    return reqs


_LITERAL_AT_END = re.compile(rb"\{(\d+)(\+?)\}\r?\n$")


def _non_synchronizing_literal(raw: bytes) -> bool:
    """Whether a command line announces a ``{n+}`` literal (literal contents are skipped)."""
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end + 1
        match = _LITERAL_AT_END.search(raw[pos:end])
        if match is None:
            return False
        if match.group(2):
            return True
        pos = end + int(match.group(1))
    return False
