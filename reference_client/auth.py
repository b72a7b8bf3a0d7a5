"""Logging in: the right mechanism for the credentials and what the server offers, once.

Choice, from the capabilities the server listed after TLS (or in plaintext with
``security = none``):

* ``AUTHENTICATE XOAUTH2`` when the account has an OAuth token source
  (``MAILCONFORM_OAUTH_TOKEN_URL``) and the server offers it; a refused token is renewed
  once (:mod:`reference_client.oauth`) and tried again on the same connection;
* ``AUTHENTICATE PLAIN`` when offered: the credentials travel as their exact UTF-8 bytes
  (RFC 4616), so ``jürgen.müller`` is never mangled and no quoting can go wrong;
* else ``AUTHENTICATE LOGIN`` when offered (also exact UTF-8, base64 per step);
* else the ``LOGIN`` command, only if the server does not say ``LOGINDISABLED`` and the
  credentials are plain printable ASCII (imaplib cannot send anything else in LOGIN).

A server that offers SASL mechanisms is asked with one of them ("uses the offered one"),
never with a mechanism it did not list. Failures: ``[UNAVAILABLE]`` (and the other
"try later" answers) become a :class:`Retry` of kind ``auth``; any other ``NO``/``BAD`` is
final (exit 4) with the server's words, ``[ALERT]`` texts included: the same credentials
are never tried again after a refusal. A connection lost during authentication (no answer
either way) earns one more try.
"""

from __future__ import annotations

import imaplib

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from .config import Config
from .connect import capabilities, preauthenticated
from .errors import EXIT_AUTH, EXIT_INSECURE, EXIT_UNAVAILABLE, ClientError, Retry, has_code, server_text

# Answers that mean "not now" rather than "not you" (RFC 5530 and providers' wording).
TEMPORARY_CODES = ("UNAVAILABLE", "INUSE", "THROTTLED")
TEMPORARY_WORDS = ("too many simultaneous connections", "too many connections", "try again later")


def login(client: IMAPClient, config: Config, *, tls: bool) -> str:
    """Authenticate (or accept PREAUTH when the connection is as secure as configured);
    returns the method used, for the summary."""
    if preauthenticated(client):
        return "PREAUTH"
    caps = capabilities(client)
    oauth = getattr(config, "oauth", None)  # reference_client.oauth.TokenSource, with a token URL
    if oauth is not None and "AUTH=XOAUTH2" in caps:
        return _xoauth2(client, config, oauth)
    method, attempt = choose(caps, config.username, config.password, tls=tls)
    try:
        attempt(client)
    except (imaplib.IMAP4.error, OSError) as exc:
        # imapclient re-raises a lost connection as LoginError; the cause tells them apart
        cause = exc.__context__ if isinstance(exc, LoginError) and exc.__context__ is not None else exc
        if isinstance(cause, (imaplib.IMAP4.abort, OSError)):
            raise _lost(server_text(cause), method) from None
        raise _refused(client, server_text(exc), method) from None
    client.capabilities()  # keep the [CAPABILITY] of the OK; EXAMINE would discard it
    return method


def _xoauth2(client: IMAPClient, config: Config, oauth) -> str:
    """XOAUTH2 with the account's access token; when the server refuses it (an expired token
    is refused like any other), one new token and one more try on the same connection."""
    method = "AUTHENTICATE XOAUTH2"
    renewed = False
    while True:
        try:
            client.sasl_login("XOAUTH2", _XOAuth2(config.username, oauth.token()))
        except (imaplib.IMAP4.error, OSError) as exc:
            cause = exc.__context__ if isinstance(exc, LoginError) and exc.__context__ is not None else exc
            if isinstance(cause, (imaplib.IMAP4.abort, OSError)):
                raise _lost(server_text(cause), method) from None
            error = _refused(client, server_text(exc), method)
            if renewed or isinstance(error, Retry) or not oauth.can_refresh:
                raise error from None
            oauth.refresh(f"the server refused the access token ({server_text(exc)})")
            renewed = True
            continue
        client.capabilities()
        return method + (" (token renewed)" if renewed else "")


def choose(caps: set[str], username: str, password: str, *, tls: bool):
    """The method to use, as ``(name, callable(client))``; ClientError when there is none."""
    mechanisms = {c[5:] for c in caps if c.startswith("AUTH=")}
    if "PLAIN" in mechanisms:
        return "AUTHENTICATE PLAIN", lambda client: client.plain_login(username, password)
    if "LOGIN" in mechanisms:
        return "AUTHENTICATE LOGIN", lambda client: client.sasl_login("LOGIN", _SaslLogin(username, password))
    if "LOGINDISABLED" in caps:
        if not tls:
            raise ClientError(EXIT_INSECURE, "server refuses to log in without TLS (LOGINDISABLED); "
                                             "configure MAILCONFORM_IMAP_SECURITY as tls or starttls")
        raise ClientError(EXIT_AUTH, "server offers no login method this client has "
                                     "(LOGINDISABLED, and neither AUTH=PLAIN nor AUTH=LOGIN)")
    if not (_plain_ascii(username) and _plain_ascii(password)):
        raise ClientError(EXIT_AUTH, "the credentials are not plain ASCII and the server offers neither "
                                     "AUTH=PLAIN nor AUTH=LOGIN to send them as UTF-8")
    return "LOGIN", lambda client: client.login(_quoted(username), password)


def _refused(client: IMAPClient, text: str, method: str) -> Exception:
    for prefix in ("login failed: ", "authenticate failed: "):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
    alerts = [a for a in _alerts(client) if a not in text]
    if alerts:
        text += " (server alert: " + "; ".join(alerts) + ")"
    if _temporary(text):
        return Retry(f"temporary authentication failure: {text}", kind="auth")
    return ClientError(EXIT_AUTH, f"authentication failed ({method}): {text}")


def _lost(text: str, method: str) -> Exception:
    """The connection ended during authentication (a BYE, a reset)."""
    if has_code(text, "OVERQUOTA"):
        return ClientError(EXIT_UNAVAILABLE, f"server ended the session during {method}: {text}")
    if _temporary(text):
        return Retry(f"temporary authentication failure: {text}", kind="auth")
    # maybe a refusal in disguise: one more try at most, never a loop on the same credentials
    return Retry(f"connection lost during {method}: {text}", kind="auth-lost")


def _temporary(text: str) -> bool:
    lowered = text.lower()
    return has_code(text, *TEMPORARY_CODES) or any(w in lowered for w in TEMPORARY_WORDS)


def _alerts(client: IMAPClient) -> list[str]:
    """Texts of untagged ``* OK/NO/BAD [ALERT] ...`` lines received during the login command.

    imaplib keeps a command's untagged status lines until the next command starts, so these
    are the login's own; any received before STARTTLS were discarded with the plaintext.
    """
    texts = []
    for status in ("OK", "NO", "BAD"):
        for line in client._imap.untagged_responses.get(status, []):
            if isinstance(line, bytes) and line.upper().startswith(b"[ALERT]"):
                texts.append(server_text(Exception(line.decode("utf-8", "replace"))))
    return texts


def _plain_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _quoted(text: str) -> str:
    """imaplib sends the LOGIN user name unquoted; quote it so spaces and specials survive."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _SaslLogin:
    """The LOGIN SASL mechanism: user name, then password, each as UTF-8."""

    def __init__(self, username: str, password: str) -> None:
        self._answers = [username.encode("utf-8"), password.encode("utf-8")]

    def __call__(self, challenge: bytes) -> bytes | None:
        return self._answers.pop(0) if self._answers else None  # None: abort with "*"


class _XOAuth2:
    """Google's XOAUTH2: ``user=…^Aauth=Bearer …^A^A``; to an error challenge (the server's
    JSON status), the empty response that lets it send its final NO."""

    def __init__(self, username: str, token: str) -> None:
        self._first = f"user={username}\x01auth=Bearer {token}\x01\x01".encode("utf-8")
        self._sent = False

    def __call__(self, challenge: bytes) -> bytes:
        if self._sent:
            return b""
        self._sent = True
        return self._first
