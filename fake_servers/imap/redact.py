"""How a command appears in a transcript: secrets hidden, message bodies summarised."""

from __future__ import annotations

import re

from .parser import Command, String

# The tag and command name of a line the parser rejected; what follows them is hidden when the
# command carries credentials, because a malformed LOGIN still carries the password.
_HEAD = re.compile(rb"^([^ \r\n]*) +(?:UID +)?([A-Za-z]+)", re.IGNORECASE)
_SECRET_COMMANDS = {"LOGIN", "AUTHENTICATE"}


def describe_command(cmd: Command) -> tuple[str, bool, bool]:
    """(redacted text, carries credentials, carries mail data) for one parsed command."""
    head = f"{cmd.tag} {'UID ' if cmd.uid else ''}{cmd.name}"
    if cmd.name == "LOGIN":
        user = _show(cmd.args[0]) if cmd.args else ""
        return f"{head} {user} ***", True, False
    if cmd.name == "AUTHENTICATE":
        mech = str(cmd.args[0]) if cmd.args else ""
        if len(cmd.args) > 1:
            return f"{head} {mech} ***", True, False
        return f"{head} {mech}", False, False
    mail = cmd.name == "APPEND"
    return head + "".join(" " + _show(a) for a in cmd.args), False, mail


def describe_unparsable(raw: bytes) -> tuple[str, bool]:
    """(redacted text, carries credentials) for input the parser rejected."""
    m = _HEAD.match(raw)
    if m is not None and m.group(2).decode("ascii").upper() in _SECRET_COMMANDS:
        return raw[: m.end()].decode("utf-8", "replace") + " ***", True
    return raw.decode("utf-8", "replace").rstrip("\r\n"), False


def _show(value) -> str:
    if isinstance(value, list):
        return "(" + " ".join(_show(v) for v in value) + ")"
    if isinstance(value, String):
        if value.literal and (len(value) > 80 or b"\n" in value):
            return f"{{{len(value)} bytes}}"
        text = bytes(value).decode("utf-8", "replace")
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)
