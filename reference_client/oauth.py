"""OAuth 2.0 access tokens for XOAUTH2, from ``MAILCONFORM_OAUTH_TOKEN_URL``.

* **Getting one**: the resource-owner password grant (RFC 6749 §4.3) with the account's user
  name and password, over https only (TLS trusting ``MAILCONFORM_CA_FILE`` alone).
* **Keeping it**: the access and refresh tokens are kept in ``STATE_DIR/oauth-token.json``
  (mode 0600) for the next run, as a mail client keeps them between starts.
* **Refreshing**: when the server refuses the token (an expired token is refused like any
  other), the client exchanges the refresh token once (RFC 6749 §6) and tries again; without
  a usable refresh token it asks with the password grant instead. One refresh per login, a
  few per run at most: a token that keeps being refused ends the run (exit 4).
* **Whose token it is**: the ``id_token`` (a JWT; only its payload is read, it is not a
  security boundary here) names the identity the provider authenticated. When its ``email``
  or ``preferred_username`` differs from the address that started (Office 365's "returned us
  an email address different from the one that started the authentication process"), the
  account is refused (exit 4) and the token is neither used nor kept.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode, urlsplit

from .errors import EXIT_AUTH, EXIT_INSECURE, EXIT_UNAVAILABLE, EXIT_USAGE, ClientError, printable

CACHE = "oauth-token.json"
CLIENT_ID = "mailconform-reference-client"
MAX_REFRESHES = 3  # per run
EARLY = 30.0  # seconds: a token this close to its expiry is renewed before use


class IdentityMismatch(ClientError):
    """The token is for someone else than the address that started."""


def claims(jwt: str) -> dict:
    """The payload of a JWT (not verified); {} when it is not one."""
    parts = jwt.split(".")
    if len(parts) < 2:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


class TokenSource:
    def __init__(self, url: str, *, username: str, password: str, address: str, state_dir: Path, web,
                 notify: Callable[[str], None] = lambda line: None, clock: Callable[[], float] = time.time) -> None:
        if urlsplit(url).scheme != "https" or not urlsplit(url).hostname:
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_OAUTH_TOKEN_URL is not an https URL: {url!r}")
        self.url = url
        self.username = username
        self.password = password
        self.address = address
        self.path = Path(state_dir) / CACHE
        self.web = web
        self.notify = notify
        self.clock = clock
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.expires_at: float | None = None
        self.refreshes = 0
        self.grants: list[str] = []  # the grant types asked for in this run, in order

    # -- what auth uses ------------------------------------------------------------------------

    def ensure(self) -> None:
        """A token for the account (the kept one, or a new one): done at account setup, so an
        identity mismatch refuses the account before any mail server is contacted."""
        if self.access_token is None:
            self._load()
        if self.access_token is None:
            self._grant({"grant_type": "password", "username": self.username, "password": self.password})
        elif self.expires_at is not None and self.clock() >= self.expires_at - EARLY:
            self.refresh("the kept token has expired")

    def token(self) -> str:
        self.ensure()
        assert self.access_token is not None
        return self.access_token

    @property
    def can_refresh(self) -> bool:
        return self.refreshes < MAX_REFRESHES

    def refresh(self, why: str) -> None:
        """A new access token: the refresh grant, or the password grant when there is no
        refresh token or it is refused."""
        if not self.can_refresh:
            raise ClientError(EXIT_AUTH, f"OAuth: {why}; already renewed {self.refreshes} time(s) in this run, "
                                         "giving up")
        self.refreshes += 1
        self.notify(f"OAuth: {why}; renewing the access token")
        if self.refresh_token:
            try:
                self._grant({"grant_type": "refresh_token", "refresh_token": self.refresh_token})
                return
            except ClientError as exc:
                if exc.status != EXIT_AUTH or isinstance(exc, IdentityMismatch):
                    raise
                self.notify(f"OAuth: the refresh token was refused ({exc}); asking with the password")
        self._grant({"grant_type": "password", "username": self.username, "password": self.password})

    # -- the token endpoint -----------------------------------------------------------------------

    def _grant(self, form: dict[str, str]) -> None:
        from .discover.web import WebError

        kind = form["grant_type"]
        self.grants.append(kind)
        body = urlencode({**form, "client_id": CLIENT_ID}).encode("ascii")
        try:
            reply = self.web.request("POST", self.url, body=body, secret=True,
                                     headers={"Content-Type": "application/x-www-form-urlencoded",
                                              "Accept": "application/json"})
        except WebError as exc:
            raise ClientError(EXIT_INSECURE if exc.insecure else EXIT_UNAVAILABLE,
                              f"OAuth token endpoint: {exc}") from None
        try:
            data = json.loads(reply.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise ClientError(EXIT_UNAVAILABLE, f"OAuth token endpoint answered HTTP {reply.status} without JSON")
        if reply.status != 200 or not data.get("access_token"):
            error = printable(str(data.get("error", f"HTTP {reply.status}")))
            detail = printable(str(data.get("error_description", "")))
            status = EXIT_AUTH if reply.status in (400, 401) else EXIT_UNAVAILABLE
            raise ClientError(status, f"OAuth token endpoint refused the {kind} grant: {error}"
                                      + (f" ({detail})" if detail else ""))
        self._check_identity(data.get("id_token"))
        self.access_token = str(data["access_token"])
        self.refresh_token = str(data.get("refresh_token") or self.refresh_token or "") or None
        try:
            lifetime = float(data.get("expires_in", 0))
        except (TypeError, ValueError):
            lifetime = 0.0
        self.expires_at = self.clock() + lifetime if lifetime > 0 else None
        self._save()

    def _check_identity(self, id_token) -> None:
        if not id_token:
            return
        found = claims(str(id_token))
        names = {str(found[k]).strip() for k in ("email", "preferred_username") if found.get(k)}
        other = sorted(n for n in names if n.lower() != self.address.lower())
        if other:
            self._forget()
            raise IdentityMismatch(EXIT_AUTH, f"OAuth: the provider authenticated {printable(other[0])}, not "
                                         f"{self.address} that started the authentication; refusing the account "
                                         "(identity mismatch)")

    # -- kept between runs ------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("token_url") != self.url or data.get("username") != self.username:
            return
        self.access_token = data.get("access_token") or None
        self.refresh_token = data.get("refresh_token") or None
        self.expires_at = data.get("expires_at")

    def _save(self) -> None:
        data = {"token_url": self.url, "username": self.username, "access_token": self.access_token,
                "refresh_token": self.refresh_token, "expires_at": self.expires_at}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out)
            os.replace(tmp, self.path)
        except OSError as exc:
            self.notify(f"warning: could not keep the OAuth token in {self.path}: {exc}")

    def _forget(self) -> None:
        self.access_token = self.refresh_token = self.expires_at = None
        try:
            self.path.unlink()
        except OSError:
            pass
