"""What an SMTP submission fake offers and how it answers: extensions per TLS state, limits, texts.

Defaults describe a well-behaved modern submission server (STARTTLS, AUTH only under TLS,
authentication required, SIZE 20 MB, SMTPUTF8, 8BITMIME, enhanced status codes); personas
and scenarios change them. The EHLO extension list is computed from the settings, so "no
SMTPUTF8" or "no AUTH before TLS" is one setting, and what the fake accepts follows what
it advertised. ``ehlo_plaintext`` / ``ehlo_tls`` replace the computed list outright when a
scenario wants exact control.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER")
DELIVERY_TARGETS = ("sent", "inbox")

_REPLY = re.compile(r"^[2-5][0-9][0-9]( |$)")


@dataclass
class SmtpTexts:
    """Full reply lines (status, enhanced code, text). A text may hold several lines separated
    by ``\\n``, each a full line (``NNN `` or ``NNN-``); the fake makes all but the last
    ``NNN-`` continuation lines. ``{hostname}`` is replaced by the server's host name, and
    ``{id}`` (in ``accepted``) by a queue id."""

    greeting: str = "220 {hostname} ESMTP mailconform ready"
    auth_ok: str = "235 2.7.0 Accepted"
    auth_failed: str = "535 5.7.8 Username and Password not accepted"
    app_password_required: str = "534 5.7.9 Application-specific password required"
    too_many_attempts: str = "454 4.7.0 Too many login attempts, please try again later."
    auth_required: str = "530 5.7.0 Authentication required"
    too_many_recipients: str = "452 4.5.3 Your message has too many recipients"
    daily_quota: str = "550 5.4.5 Daily user sending quota exceeded."
    daily_recipients: str = "550 5.4.5 Daily recipient quota exceeded."
    greylisted: str = "451 4.7.1 Greylisted, please try again later"
    message_too_large: str = "552 5.3.4 Message size exceeds fixed limit"
    smtputf8_required: str = "553 5.6.7 SMTPUTF8 is required for this address"
    accepted: str = "250 2.0.0 OK"


TEXT_KEYS = tuple(f.name for f in fields(SmtpTexts))


def reply_error(text: str) -> str | None:
    """Why ``text`` is not a usable reply text (None when it is)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not (_REPLY.match(line) or i < len(lines) - 1 and _REPLY.match(line.replace("-", " ", 1))):
            return f"each line must start with a 3-digit reply code from 200 to 599 and a space, not {line!r}"
        if line[:3] != lines[0][:3]:
            return f"every line of a reply has the same code ({lines[0][:3]}), not {line!r}"
    return None


@dataclass
class SmtpConfig:
    """Behaviour of the SMTP submission servers of a fake provider (both ports)."""

    starttls: bool = True  # advertise and accept STARTTLS on the plaintext port
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    auth_before_tls: bool = False  # False: AUTH neither advertised nor accepted before TLS (538)
    require_auth: bool = True  # MAIL without AUTH gets the auth_required text
    size_limit: int = 20 * 1024 * 1024  # SIZE advertised and enforced; 0: no SIZE extension
    smtputf8: bool = True
    eightbitmime: bool = True
    enhanced_status_codes: bool = True  # False: also strips x.y.z codes from the fake's replies
    # Exact extension lines (after the host name line) per TLS state, replacing the computed ones.
    ehlo_plaintext: tuple[str, ...] | None = None
    ehlo_tls: tuple[str, ...] | None = None
    # Extension lines added / removed (by keyword) on top of the computed or exact ones; the
    # "capabilities" fault action changes these at run time.
    ehlo_add: tuple[str, ...] = ()
    ehlo_remove: tuple[str, ...] = ()
    max_recipients: int = 0  # per message; 0: no limit
    daily_messages: int = 0  # per account over the provider's life; 0: no quota
    daily_recipients: int = 0  # per account over the provider's life; 0: no quota
    max_auth_failures: int = 0  # the Nth failed AUTH on a connection: too_many_attempts, then close
    greylist: bool = False  # refuse each new (user, sender, recipient) triplet once
    greylist_delay: float = 0.0  # seconds before a greylisted triplet is accepted
    deliver_to: tuple[str, ...] = ("sent",)  # "sent": sender's Sent folder; "inbox": recipients' INBOX
    hostname: str = "smtp.example.test"
    texts: SmtpTexts = field(default_factory=SmtpTexts)

    def __post_init__(self) -> None:
        for name in ("auth_mechanisms", "deliver_to", "ehlo_add", "ehlo_remove"):
            setattr(self, name, tuple(getattr(self, name)))
        for name in ("ehlo_plaintext", "ehlo_tls"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(getattr(self, name)))
        self.auth_mechanisms = tuple(m.upper() for m in self.auth_mechanisms)
        unknown = [m for m in self.auth_mechanisms if m not in MECHANISMS]
        if unknown:
            raise ValueError(f"unknown SASL mechanism(s) {unknown}; the fake knows {', '.join(MECHANISMS)}")
        unknown = [d for d in self.deliver_to if d not in DELIVERY_TARGETS]
        if unknown:
            raise ValueError(f"unknown delivery target(s) {unknown}; valid: {', '.join(DELIVERY_TARGETS)}")
        for name in ("size_limit", "max_recipients", "daily_messages", "daily_recipients", "max_auth_failures",
                     "greylist_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0, not {getattr(self, name)}")
        for name in TEXT_KEYS:
            problem = reply_error(getattr(self.texts, name))
            if problem:
                raise ValueError(f"texts.{name}: {problem}")

    def extensions(self, *, tls: bool) -> list[str]:
        """The EHLO extension lines (after the host name line) for this TLS state."""
        return list(self._extensions(tls))

    def advertised(self, *, tls: bool) -> frozenset[str]:
        """The extension keywords of :meth:`extensions`."""
        return _cached(_ADVERTISED, self._settings(tls),
                       lambda: frozenset(keyword(line) for line in self._extensions(tls)))

    def _settings(self, tls: bool) -> tuple:
        """Everything the extension lines depend on (the settings may change at any time)."""
        return (tls, self.ehlo_tls if tls else self.ehlo_plaintext, self.size_limit, self.eightbitmime, self.starttls,
                self.auth_mechanisms, self.auth_before_tls, self.enhanced_status_codes, self.smtputf8, self.ehlo_add,
                self.ehlo_remove)

    def _extensions(self, tls: bool) -> tuple[str, ...]:
        # Computed once per combination of settings: each EHLO and each MAIL needs them.
        return _cached(_EXTENSIONS, self._settings(tls), lambda: tuple(self._compute_extensions(tls)))

    def _compute_extensions(self, tls: bool) -> list[str]:
        exact = self.ehlo_tls if tls else self.ehlo_plaintext
        if exact is not None:
            lines = list(exact)
        else:
            lines = []
            if self.size_limit:
                lines.append(f"SIZE {self.size_limit}")
            if self.eightbitmime:
                lines.append("8BITMIME")
            if self.starttls and not tls:
                lines.append("STARTTLS")
            if self.auth_mechanisms and (tls or self.auth_before_tls):
                lines.append("AUTH " + " ".join(self.auth_mechanisms))
            if self.enhanced_status_codes:
                lines.append("ENHANCEDSTATUSCODES")
            lines.append("PIPELINING")
            if self.smtputf8:
                lines.append("SMTPUTF8")
        removed = {keyword(line) for line in self.ehlo_remove}
        lines = [line for line in lines if keyword(line) not in removed]
        present = {keyword(line) for line in lines}
        lines += [line for line in self.ehlo_add if keyword(line) not in present]
        return lines

    def change_extensions(self, add=(), remove=()) -> None:
        """Add, then remove, extension lines from now on (the ``capabilities`` fault action);
        a later change undoes an earlier opposite one."""
        added = {keyword(line) for line in add}
        removed = {keyword(line) for line in remove}
        keep_added = [line for line in self.ehlo_add if keyword(line) not in removed]
        keep_removed = [line for line in self.ehlo_remove if keyword(line) not in added]
        self.ehlo_add = tuple(dict.fromkeys(keep_added + [line for line in add if keyword(line) not in removed]))
        self.ehlo_remove = tuple(dict.fromkeys(keep_removed + list(remove)))


_EXTENSIONS: dict[tuple, tuple[str, ...]] = {}
_ADVERTISED: dict[tuple, frozenset[str]] = {}


def _cached(cache: dict, key: tuple, compute):
    try:
        found = cache.get(key)
    except TypeError:  # a list assigned to a setting after construction: computed each time
        return compute()
    if found is None:
        if len(cache) >= 256:  # scenarios change settings a few times, not thousands
            cache.clear()
        found = cache[key] = compute()
    return found


def keyword(line: str) -> str:
    """The extension keyword of an EHLO line ("SIZE" of "SIZE 1000")."""
    return line.split(" ", 1)[0].upper()
