"""An OAuth 2.0 token endpoint (RFC 6749 §4.3, §4.4, §6) whose tokens the mail fakes accept.

``grant_type=password`` checks the account's password, ``refresh_token`` exchanges a refresh
token, ``client_credentials`` issues for the scenario's account. Each access token is
registered on the account it logs in as (:meth:`Account.register_token`) with its expiry:
seconds, a number of authentications, or the last run it works in. Once expired, XOAUTH2
refuses it and a refresh gives a new one (seed 001: token lifetimes).

Identity mismatch (seed 001, "Office 365 OAuth 403"): with ``identity`` set, the id_token
names another address than the one that asked, and the access token logs in as that other
account. id_tokens are unsigned (``alg: none``) or HS256 with :data:`HS256_TEST_KEY`: they
are test data, never secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from ..mailstore import Account, MailStore
from .config import OAuthConfig
from .http_messages import HttpReply, HttpRequest

HS256_TEST_KEY = b"mailconform-test-key-not-a-secret"
FORM = "application/x-www-form-urlencoded"
GRANTS = ("password", "refresh_token", "client_credentials")


@dataclass(frozen=True)
class Grant:
    """One token the endpoint issued: kept as evidence of what the client was given."""

    grant_type: str
    requested_by: str  # the username in the request (or the account, for refresh/client_credentials)
    identity: str  # whom the token logs in as, and whom the id_token names
    access_token: str
    refresh_token: str | None
    run: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(claims: dict, signing: str = "none", key: bytes = HS256_TEST_KEY) -> str:
    header = {"alg": "none" if signing == "none" else "HS256", "typ": "JWT"}
    head = _b64url(json.dumps(header, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    if signing == "none":
        return f"{head}.{body}."
    signature = hmac.new(key, f"{head}.{body}".encode("ascii"), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(signature)}"


def read_jwt(token: str) -> dict:
    """The claims of a JWT (signature not checked: for tests and clients of the fake)."""
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def _json(status: int, data: dict, note: str = "") -> HttpReply:
    return HttpReply(status, [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store"),
                              ("Pragma", "no-cache")], json.dumps(data).encode(), note=note)


def _error(status: int, error: str, description: str) -> HttpReply:
    return _json(status, {"error": error, "error_description": description}, note=f"oauth: {error}")


class TokenEndpoint:
    """Issues, refreshes and registers tokens. Lives on the loop thread, like the store."""

    def __init__(self, config: OAuthConfig, store: MailStore, *, current_run: Callable[[], int],
                 body_cap: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.store = store
        self.current_run = current_run
        self.body_cap = body_cap
        self.clock = clock
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> identity it renews
        self.grants: list[Grant] = []

    def prepare(self) -> None:
        """Create the other identity's account if the scenario did not, so a client that
        accepts the mismatched identity visibly logs in as someone else."""
        identity = self.config.identity
        if identity and self.store.account(identity) is None:
            self.store.add_account(identity, secrets.token_urlsafe(16))

    # -- the endpoint ---------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpReply:
        if request.method != "POST":
            reply = _error(405, "invalid_request", "The token endpoint takes POST.")
            reply.headers.append(("Allow", "POST"))
            return reply
        if request.body_length > self.body_cap:
            return _error(413, "invalid_request", "Request body too large.")
        if request.content_type != FORM:
            return _error(400, "invalid_request", f"Expected {FORM}.")
        form = request.form()
        client_error = self._check_client(request, form)
        if client_error is not None:
            return client_error
        grant = form.get("grant_type", "")
        if grant == "password":
            return self._password(form)
        if grant == "refresh_token":
            return self._refresh(form)
        if grant == "client_credentials":
            return self._client_credentials()
        return _error(400, "unsupported_grant_type", f"Grant type {grant!r} is not supported.")

    def _check_client(self, request: HttpRequest, form: dict[str, str]) -> HttpReply | None:
        basic = request.basic_credentials()
        client_id = basic[0] if basic else form.get("client_id")
        client_secret = basic[1] if basic else form.get("client_secret")
        if self.config.client_id is not None and client_id != self.config.client_id:
            return _error(401, "invalid_client", "Unknown client_id.")
        if self.config.client_secret is not None and client_secret != self.config.client_secret:
            return _error(401, "invalid_client", "Invalid client secret.")
        return None

    def _password(self, form: dict[str, str]) -> HttpReply:
        username, password = form.get("username", ""), form.get("password", "")
        account = self.store.account(username)
        if account is None or not (password == account.password or password in account.app_passwords):
            return _error(400, "invalid_grant", "The user name or password is incorrect.")
        return self._issue("password", username, self.config.identity or account.username, refresh=True)

    def _refresh(self, form: dict[str, str]) -> HttpReply:
        token = form.get("refresh_token", "")
        identity = self.refresh_tokens.get(token)
        if not self.config.refresh or identity is None:
            return _error(400, "invalid_grant", "The refresh token is invalid or expired.")
        return self._issue("refresh_token", identity, identity, refresh=True, keep_refresh=token)

    def _client_credentials(self) -> HttpReply:
        name = self.config.account
        if name is None:
            accounts = list(self.store.accounts)
            name = accounts[0] if len(accounts) == 1 else None
        if name is None or self.store.account(name) is None:
            return _error(400, "invalid_grant", "No account for client_credentials (set oauth.account).")
        return self._issue("client_credentials", name, self.config.identity or name, refresh=False)

    def _issue(self, grant_type: str, requested_by: str, identity: str, *, refresh: bool,
               keep_refresh: str | None = None) -> HttpReply:
        account: Account | None = self.store.account(identity)
        if account is None:
            return _error(400, "invalid_grant", f"No account {identity!r}.")
        cfg = self.config
        access = "mc-at-" + secrets.token_urlsafe(24)
        # "until run K" for a token issued in run K or earlier; one issued later (a refresh in a
        # later run) works in the run it was issued in.
        until_run = max(cfg.until_run, self.current_run()) if cfg.until_run else None
        account.register_token(access, lifetime=cfg.lifetime or None, uses=cfg.uses or None,
                               until_run=until_run, current_run=self.current_run, clock=self.clock)
        refresh_token = None
        if refresh and cfg.refresh:
            refresh_token = keep_refresh or "mc-rt-" + secrets.token_urlsafe(24)
            self.refresh_tokens[refresh_token] = identity
        now = int(time.time())
        claims = {"iss": f"https://{cfg.host}/", "sub": _subject(identity), "aud": cfg.client_id or "mailconform",
                  "iat": now, "nbf": now, "exp": now + (cfg.lifetime or 3600), "email": identity,
                  "preferred_username": identity, "name": identity.split("@", 1)[0]}
        body = {"token_type": "Bearer", "scope": cfg.scope, "expires_in": cfg.lifetime or 3600,
                "ext_expires_in": cfg.lifetime or 3600, "access_token": access,
                "id_token": make_jwt(claims, cfg.signing)}
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        self.grants.append(Grant(grant_type, requested_by, identity, access, refresh_token, self.current_run()))
        note = f"oauth: {grant_type} grant issued a token for {identity}"
        if identity != requested_by:
            note += f" (asked for by {requested_by})"
        return _json(200, body, note=note)


def _subject(identity: str) -> str:
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
