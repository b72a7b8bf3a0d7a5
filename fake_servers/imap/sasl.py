"""SASL mechanisms as small state machines: PLAIN, LOGIN, XOAUTH2, OAUTHBEARER (RFC 4616, draft
LOGIN, Google's XOAUTH2, RFC 7628).

Each step takes the client's decoded response and returns either a challenge to send or a
finished :class:`Credentials`. Usernames and secrets are decoded as UTF-8 strictly; invalid
UTF-8 is a failure, never a guess, so a client that sends Latin-1 for ``jürgen`` fails.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
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


# RFC 7628 §3.2.2: the error challenge for a refused bearer token (expired, revoked, unknown or
# not the authzid's). No "openid-configuration": the discovery fake serves no such document.
OAUTHBEARER_ERROR = json.dumps({"status": "invalid_token", "scope": "https://mail.example.test/"},
                               separators=(",", ":")).encode()
OAUTHBEARER_ACK = b"\x01"  # the client's answer to the error challenge (RFC 7628 §3.2.3)

_KEY = re.compile(rb"[A-Za-z]+")
_VALUE = re.compile(rb"[\x20-\x7e\t\r\n]*")  # VCHAR / SP / HTAB / CR / LF
_BEARER = re.compile(rb"bearer +([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)  # RFC 6750 §2.1 b64token
_SASLNAME_ESCAPE = re.compile(rb"=(?!2C|3D)")


class OAuthBearer(Mechanism):
    """RFC 7628 §3.1: ``n,a=USER,^Ahost=H^Aport=P^Aauth=Bearer TOKEN^A^A``.

    The GS2 header's channel-binding flag is ``n`` or ``y`` (``p=…`` is refused: OAUTHBEARER has
    no channel binding); ``a=`` is optional, with ``=2C`` and ``=3D`` for ``,`` and ``=``.
    Without it the username is empty and the login is the account holding the token
    (:func:`account_for`). ``host`` and ``port`` are optional, ``port`` digits; other keys are
    accepted and ignored; ``auth`` is required, once. Anything else is a :class:`SaslError`.
    """

    name = "OAUTHBEARER"

    def step(self, response: bytes) -> Credentials:
        header, sep, rest = response.partition(b"\x01")
        if not sep:
            raise SaslError("OAUTHBEARER: expected gs2-header ^A auth=Bearer <token> ^A ^A")
        authzid = _gs2_authzid(header)
        if not rest.endswith(b"\x01\x01"):
            raise SaslError("OAUTHBEARER: the key/value pairs must end with ^A ^A")
        fields: dict[bytes, bytes] = {}
        for number, pair in enumerate(rest[:-2].split(b"\x01"), 1):
            key, eq, value = pair.partition(b"=")
            if not eq or not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
                raise SaslError(f"OAUTHBEARER: key/value pair {number} is not key=value")
            if key in fields:
                raise SaslError(f"OAUTHBEARER: {key.decode()}= given twice")
            fields[key] = value
        if b"port" in fields and not fields[b"port"].isdigit():
            raise SaslError("OAUTHBEARER: port= is not a number")
        if b"auth" not in fields:
            raise SaslError("OAUTHBEARER: no auth=Bearer <token>")
        bearer = _BEARER.fullmatch(fields[b"auth"])
        if bearer is None:
            raise SaslError("OAUTHBEARER: auth= is not Bearer <token>")
        return Credentials(authzid, bearer.group(1).decode("ascii"), kind="oauth", authzid=authzid)


def _gs2_authzid(header: bytes) -> str:
    """The authzid of a GS2 header (RFC 5801 §4: ``cbflag "," [ "a=" saslname ] ","``), or ""."""
    flag, comma, rest = header.partition(b",")
    if flag.startswith(b"p="):
        raise SaslError("OAUTHBEARER: channel binding is not supported")
    if flag not in (b"n", b"y") or not comma or not rest.endswith(b",") or b"," in rest[:-1]:
        raise SaslError(f"OAUTHBEARER: malformed GS2 header {_show(header)} (expected n,a=user, or n,,)")
    name = rest[:-1]
    if not name:
        return ""
    if not name.startswith(b"a=") or len(name) == 2 or b"\0" in name or _SASLNAME_ESCAPE.search(name, 2):
        raise SaslError(f"OAUTHBEARER: malformed authzid {_show(name)} (a=user, with =2C and =3D escapes)")
    return _utf8(name[2:].replace(b"=2C", b",").replace(b"=3D", b"="), "OAUTHBEARER authzid")


def _show(data: bytes) -> str:
    """Client data in an error message: short, control characters escaped, never a token."""
    if b"bearer" in data.lower():
        return "(not shown: it holds a token)"
    text = data[:40].decode("utf-8", "replace").encode("unicode_escape").decode("ascii")
    return repr(text + ("…" if len(data) > 40 else ""))


def account_for(store, creds: Credentials):
    """The account ``creds`` log in as: the named one, or, for a bearer token without a user
    (OAUTHBEARER without ``a=``), the account holding the token; None if there is none."""
    if creds.username or creds.kind != "oauth":
        return store.account(creds.username)
    for account in store.accounts.values():
        if creds.secret in account.oauth_tokens or creds.secret in account.issued_tokens:
            return account
    return None


MECHANISMS = {cls.name: cls for cls in (Plain, Login, XOAuth2, OAuthBearer)}
