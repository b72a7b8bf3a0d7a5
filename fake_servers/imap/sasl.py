"""SASL mechanisms as small state machines: PLAIN, LOGIN, XOAUTH2 (RFC 4616, draft LOGIN, Google's XOAUTH2).

Each step takes the client's decoded response and returns either a challenge to send or a
finished :class:`Credentials`. Usernames and secrets are decoded as UTF-8 strictly; invalid
UTF-8 is a failure, never a guess, so a client that sends Latin-1 for ``jürgen`` fails.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass


class SaslError(Exception):
    """The client's SASL data is malformed (answered with BAD/NO by the caller)."""


@dataclass(frozen=True)
class Credentials:
    username: str
    secret: str
    kind: str = "password"  # or "oauth"
    authzid: str = ""


def b64decode(data: bytes) -> bytes:
    data = data.strip()
    if data == b"=":
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslError("Invalid base64 data") from exc


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslError(f"{what} is not valid UTF-8") from exc


class Mechanism:
    name = ""

    def __init__(self) -> None:
        self.step_count = 0

    def first_challenge(self) -> bytes:
        return b""

    def step(self, response: bytes) -> bytes | Credentials:
        raise NotImplementedError


class Plain(Mechanism):
    name = "PLAIN"

    def step(self, response: bytes) -> Credentials:
        parts = response.split(b"\0")
        if len(parts) != 3:
            raise SaslError("PLAIN: expected authzid NUL authcid NUL password")
        authzid, user, secret = (_utf8(p, "PLAIN data") for p in parts)
        return Credentials(user, secret, authzid=authzid)


class Login(Mechanism):
    name = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._user: str | None = None

    def first_challenge(self) -> bytes:
        return b"Username:"

    def step(self, response: bytes) -> bytes | Credentials:
        if self._user is None:
            self._user = _utf8(response, "LOGIN username")
            return b"Password:"
        return Credentials(self._user, _utf8(response, "LOGIN password"))


class XOAuth2(Mechanism):
    name = "XOAUTH2"

    def step(self, response: bytes) -> Credentials:
        fields = {}
        for part in response.split(b"\x01"):
            key, sep, value = part.partition(b"=")
            if sep:
                fields[key.decode("ascii", "replace").lower()] = value
        auth = fields.get("auth", b"")
        if "user" not in fields or not auth.lower().startswith(b"bearer "):
            raise SaslError("XOAUTH2: expected user=...^Aauth=Bearer ...^A^A")
        return Credentials(_utf8(fields["user"], "XOAUTH2 user"), _utf8(auth[7:], "XOAUTH2 token"), kind="oauth")


MECHANISMS = {cls.name: cls for cls in (Plain, Login, XOAuth2)}
