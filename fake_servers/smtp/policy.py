"""The submission policy, without I/O: which reply a provider gives to AUTH, MAIL, RCPT and a message.

Everything a provider limits lives here, so each limit is testable by calling a method:
authentication results (app passwords, too many attempts), MAIL parameters against what
EHLO advertised (SIZE, BODY=8BITMIME, SMTPUTF8), recipients per message and per day,
messages per day, the size limit, and greylisting. A method returns None to let the
command through, or the reply line to answer instead.

:class:`Counters` is shared by both ports of a provider and lives as long as it does, so
"daily" means "over the provider's life" (one scenario).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..mailstore import AuthResult
from .config import SmtpConfig

BODY_TYPES = ("7BIT", "8BITMIME")


@dataclass
class Counters:
    """What the quotas and greylisting remember between connections."""

    messages: dict[str, int] = field(default_factory=dict)  # account -> accepted messages
    recipients: dict[str, int] = field(default_factory=dict)  # account -> recipients of accepted messages
    greylist: dict[tuple[str, str, str], float] = field(default_factory=dict)  # triplet -> first seen


@dataclass
class MailParams:
    """The MAIL parameters the fake understood."""

    size: int | None = None
    body: str | None = None
    smtputf8: bool = False


def parse_params(words: Sequence[str]) -> dict[str, str | bool] | None:
    """``KEY=VALUE`` / ``KEY`` words as a dict with upper-cased keys; None when malformed."""
    params: dict[str, str | bool] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not key or not key.replace("-", "").isalnum() or not key.isascii() or (eq and not value):
            return None
        params[key.upper()] = value if eq else True
    return params


class SubmissionPolicy:
    """One provider's limits, applied to one command at a time."""

    def __init__(self, config: SmtpConfig, counters: Counters | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.counters = counters if counters is not None else Counters()
        self.clock = clock

    @property
    def texts(self):
        return self.config.texts

    # -- AUTH ------------------------------------------------------------------------------

    def auth(self, result: AuthResult, failures_before: int) -> tuple[str, bool]:
        """The reply to a finished AUTH exchange and whether to close the connection after it.

        ``failures_before`` counts the failed AUTHs on this connection before this one.
        """
        if result is AuthResult.OK:
            return self.texts.auth_ok, False
        limit = self.config.max_auth_failures
        if limit and failures_before + 1 >= limit:
            return self.texts.too_many_attempts, True
        if result is AuthResult.APP_PASSWORD_REQUIRED:
            return self.texts.app_password_required, False
        return self.texts.auth_failed, False

    # -- MAIL ------------------------------------------------------------------------------

    def mail(self, address: str, words: Sequence[str], advertised: set[str] | frozenset[str], authenticated: bool,
             extended: bool = True) -> tuple[str | None, MailParams]:
        """Check MAIL FROM: authentication first, then each parameter against what EHLO
        advertised (``advertised``: extension keywords), then the address."""
        params = MailParams()
        if self.config.require_auth and not authenticated:
            return self.texts.auth_required, params
        if not words:
            return self._address(address, params), params
        if not extended:
            return "555 5.5.4 MAIL parameters are not allowed after HELO", params
        parsed = parse_params(words)
        if parsed is None:
            return "501 5.5.4 Syntax error in MAIL parameters", params
        for key, value in parsed.items():
            if key == "SIZE":
                if "SIZE" not in advertised:
                    return "555 5.5.4 Unsupported option: SIZE", params
                if value is True or not str(value).isdigit():
                    return "501 5.5.4 Bad SIZE value", params
                params.size = int(value)
            elif key == "BODY":
                if value is True:
                    return "501 5.5.4 Bad BODY value", params
                body = str(value).upper()
                if body == "8BITMIME" and "8BITMIME" not in advertised:
                    return "555 5.5.4 Unsupported option: BODY=8BITMIME", params
                if body not in BODY_TYPES:
                    return f"555 5.5.4 Unsupported option: BODY={value}", params
                params.body = body
            elif key == "SMTPUTF8":
                if "SMTPUTF8" not in advertised:
                    return "555 5.5.4 Unsupported option: SMTPUTF8", params
                if value is not True:
                    return "501 5.5.4 SMTPUTF8 takes no value", params
                params.smtputf8 = True
            elif key == "AUTH" and "AUTH" in advertised:
                continue  # RFC 4954 section 5: accepted, the value is not trusted
            else:
                return f"555 5.5.4 Unsupported option: {key}", params
        return self._address(address, params), params

    def _address(self, address: str, params: MailParams) -> str | None:
        """MAIL's address and declared size, once its parameters passed."""
        if not address.isascii() and not params.smtputf8:
            return self.texts.smtputf8_required
        limit = self.config.size_limit
        if limit and params.size is not None and params.size > limit:
            return self.texts.message_too_large
        return None

    # -- RCPT ------------------------------------------------------------------------------

    def rcpt(self, address: str, words: Sequence[str], account: str, smtputf8: bool, accepted: int) -> str | None:
        """Check RCPT TO; ``accepted`` recipients of this message were accepted before it."""
        if words:
            parsed = parse_params(words)
            if parsed is None:
                return "501 5.5.4 Syntax error in RCPT parameters"
            return f"555 5.5.4 Unsupported option: {next(iter(parsed))}"
        if not address.isascii() and not smtputf8:
            return self.texts.smtputf8_required
        if self.config.max_recipients and accepted >= self.config.max_recipients:
            return self.texts.too_many_recipients
        quota = self.config.daily_recipients
        if quota and self.counters.recipients.get(account, 0) + accepted >= quota:
            return self.texts.daily_recipients
        return None

    # -- end of DATA -----------------------------------------------------------------------

    def message(self, account: str, user: str | None, sender: str, recipients: tuple[str, ...], size: int,
                oversize: bool = False) -> str | None:
        """Check a complete message; None accepts it (then call :meth:`commit`)."""
        limit = self.config.size_limit
        if oversize or (limit and size > limit):
            return self.texts.message_too_large
        quota = self.config.daily_messages
        if quota and self.counters.messages.get(account, 0) >= quota:
            return self.texts.daily_quota
        if self.config.greylist and self._greylisted(user or "", sender, recipients):
            return self.texts.greylisted
        return None

    def _greylisted(self, user: str, sender: str, recipients: tuple[str, ...]) -> bool:
        now = self.clock()
        seen = self.counters.greylist
        refused = False
        for rcpt in recipients:
            triplet = (user, sender.lower(), rcpt.lower())
            first = seen.get(triplet)
            if first is None:
                seen[triplet] = now
                refused = True
            elif now - first < self.config.greylist_delay:
                refused = True
        return refused

    def commit(self, account: str, recipients: tuple[str, ...]) -> None:
        """Count an accepted message against the daily quotas."""
        self.counters.messages[account] = self.counters.messages.get(account, 0) + 1
        self.counters.recipients[account] = self.counters.recipients.get(account, 0) + len(recipients)

    # -- what EHLO said --------------------------------------------------------------------

    def advertised(self, *, tls: bool) -> frozenset[str]:
        return self.config.advertised(tls=tls)


def account_key(user: str | None, sender: str) -> str:
    """Whom the quotas count: the authenticated account, else the envelope sender."""
    return user if user is not None else sender.lower()


__all__ = ["BODY_TYPES", "Counters", "MailParams", "SubmissionPolicy", "account_key", "parse_params"]
