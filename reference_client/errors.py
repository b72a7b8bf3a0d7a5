"""How the client stops or backs off: exit statuses, the two exceptions, and reading server text.

Every failure ends as either :class:`ClientError` (stop now, with this status and one line)
or :class:`Retry` (drop the connection, wait, connect again). Keeping the decision in data
lets the run loop be the only place that sleeps, reconnects or exits.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_ERROR = 1  # the sync could not complete (server refused a folder, local I/O error, bug)
EXIT_USAGE = 2  # the environment is incomplete or malformed
EXIT_INSECURE = 3  # refused to continue without TLS, or with an invalid certificate
EXIT_AUTH = 4  # the server refused the credentials
EXIT_UNAVAILABLE = 5  # throttled, over quota, or unavailable for longer than the client waits


class ClientError(Exception):
    """Stop the run: ``status`` is the exit status, the message the one line for stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Retry(Exception):
    """The connection is gone or the server asked us to come back later.

    ``at_least`` is the wait the server asked for, in seconds (None: the client's own
    backoff); ``kind`` is ``"auth"`` for a temporary authentication failure, which has its
    own, smaller budget.
    """

    def __init__(self, message: str, *, at_least: float | None = None, kind: str = "connection") -> None:
        super().__init__(message)
        self.at_least = at_least
        self.kind = kind


_BACKOFF = re.compile(r"suggested\s+backoff\s+time:\s*(\d+)\s*(milliseconds|ms|seconds|s)\b", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def suggested_backoff(text: str) -> float | None:
    """The wait a server suggests ("Suggested Backoff Time: 2000 milliseconds"), in seconds."""
    match = _BACKOFF.search(text)
    if match is None:
        return None
    value = int(match.group(1))
    return value / 1000 if match.group(2).lower() in ("milliseconds", "ms") else float(value)


_RETRY_IN = re.compile(r"\b(?:try\s+again|retry|come\s+back|wait)\s+(?:in|after|for)?\s*(\d+(?:\.\d+)?)\s*"
                       r"(milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m)\b", re.IGNORECASE)


def retry_after(text: str) -> float | None:
    """A wait the server names in words, in seconds: "Suggested Backoff Time: 2000 milliseconds",
    "try again in 2 seconds", "retry after 1 minute"; None when it names none."""
    suggested = suggested_backoff(text)
    if suggested is not None:
        return suggested
    match = _RETRY_IN.search(text)
    if match is None:
        return None
    value, unit = float(match.group(1)), match.group(2).lower()
    if unit in ("ms", "millisecond", "milliseconds"):
        return value / 1000
    if unit.startswith("m"):
        return value * 60
    return value


def printable(text: str) -> str:
    """Untrusted server text as one printable line (no control characters, no line breaks)."""
    return _CONTROL.sub(" ", text).strip()


def has_code(text: str, *codes: str) -> bool:
    """Whether ``text`` carries one of the RFC 5530 response codes, as ``[CODE`` ."""
    upper = text.upper()
    return any(f"[{code}" in upper for code in codes)


def server_text(exc: BaseException) -> str:
    """What the server (or the socket) said, as one printable line.

    Server text is untrusted: control characters are replaced so it cannot forge lines or
    terminal escapes on stderr. imaplib wraps texts in ``[b'...']``; that is unwrapped.
    """
    text = str(exc) or type(exc).__name__
    text = re.sub(r"\[b(['\"])(.*?)\1\]", r"\2", text)
    text = re.sub(r"^b(['\"])(.*)\1$", r"\2", text)
    return _CONTROL.sub(" ", text).strip()


def trouble(exc: BaseException, doing: str) -> Exception:
    """Turn a failure of a command into what the run loop should do about it.

    ``[OVERQUOTA]`` stops the run (hammering an account over its limits makes it worse);
    everything else (BYE, reset, timeout, ``[UNAVAILABLE]``, ``[THROTTLED]``, a BAD such
    as Outlook's "User is authenticated but not connected") is worth a new connection.
    """
    text = server_text(exc)
    if has_code(text, "OVERQUOTA"):
        return ClientError(EXIT_UNAVAILABLE, f"server stopped the session while {doing}: {text}; "
                                             "stopping instead of hammering an account over quota")
    return Retry(f"{doing}: {text}", at_least=suggested_backoff(text))
