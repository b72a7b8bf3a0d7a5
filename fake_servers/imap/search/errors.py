"""SEARCH errors: what the session answers BAD or NO [BADCHARSET] with, and how a token is shown."""

from __future__ import annotations

from typing import Any

SUPPORTED_CHARSETS = ("US-ASCII", "UTF-8")


# --- errors -------------------------------------------------------------------------------


class SearchSyntaxError(ValueError):
    """The criteria are malformed: the session answers ``BAD`` with :attr:`text`."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class BadCharset(SearchSyntaxError):
    """``CHARSET`` names a charset we lack: answer ``NO [BADCHARSET (US-ASCII UTF-8)]``."""

    def __init__(self, charset: str):
        super().__init__(f"Unsupported charset {charset}")
        self.charset = charset
        self.supported = SUPPORTED_CHARSETS


def _show(token: Any) -> str:
    """A token as error text: one printable ASCII line (it goes on the wire), kept short."""
    if isinstance(token, list):
        text = "(...)"
    elif isinstance(token, bytes):
        text = '"' + token.decode("utf-8", "replace") + '"'
    else:
        text = str(token) if token != "" else '""'
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= 60 else text[:57] + "..."
