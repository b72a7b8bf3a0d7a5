"""What an IMAP fake offers: capabilities per TLS and login state, mechanisms, reply texts.

Defaults describe a well-behaved modern server (the texts are Dovecot's); personas and
scenarios change them. Capabilities are computed, not stored, so "no STARTTLS",
"LOGINDISABLED before TLS" and "capabilities differ before and after TLS" are settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BASE_CAPABILITIES = (
    "IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+", "NAMESPACE",
)
AUTHENTICATED_CAPABILITIES = (
    "IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+", "NAMESPACE",
    "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE", "CONDSTORE", "UTF8=ACCEPT", "LIST-EXTENDED",
    "LIST-STATUS",
)

PERMANENT_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\*")
SELECT_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


@dataclass
class Texts:
    """Reply texts; personas replace them with their provider's words."""

    greeting: str = "mailconform IMAP ready."
    bye_logout: str = "Logging out"
    login_ok: str = "Logged in"
    auth_failed: str = "[AUTHENTICATIONFAILED] Authentication failed."
    app_password_required: str = "[ALERT] Application-specific password required"
    privacy_required: str = "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
    privacy_required_sasl: str = "[PRIVACYREQUIRED] Plaintext authentication disabled."  # AUTHENTICATE
    starttls_ok: str = "Begin TLS negotiation now."
    starttls_unavailable: str = "TLS support isn't enabled."
    autologout: str = "Disconnected for inactivity."


@dataclass
class ImapConfig:
    """Behaviour of one IMAP server of a fake provider."""

    starttls: bool = True  # advertise and accept STARTTLS on the plaintext port
    login_disabled: bool = True  # LOGINDISABLED (and refuse plaintext auth) before TLS
    mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    send_uidnext: bool = True  # imap.sync.no-uidnext turns this off
    preauth: bool = False  # greet with PREAUTH (STARTTLS stripping)
    preauth_user: str | None = None  # whom PREAUTH logs in (default: the store's only account)
    utf8_accept: bool = True
    search_refuses_not: bool = False  # answer BAD to SEARCH with NOT (a Yahoo behaviour)
    hierarchy_delimiter: str = "/"
    # Full overrides of the capability list per state, when a scenario wants exact control.
    capabilities_plaintext: tuple[str, ...] | None = None
    capabilities_tls: tuple[str, ...] | None = None
    capabilities_authenticated: tuple[str, ...] | None = None
    capabilities_add: tuple[str, ...] = ()
    capabilities_remove: tuple[str, ...] = ()
    greeting_capabilities: bool = True  # put [CAPABILITY ...] in the greeting
    max_append_size: int = 64 * 1024 * 1024
    texts: Texts = field(default_factory=Texts)

    def capabilities(self, *, tls: bool, authenticated: bool) -> list[str]:
        if authenticated:
            caps = list(self.capabilities_authenticated or AUTHENTICATED_CAPABILITIES)
        else:
            override = self.capabilities_tls if tls else self.capabilities_plaintext
            if override is not None:
                caps = list(override)
            else:
                caps = list(BASE_CAPABILITIES)
                if self.starttls and not tls:
                    caps.append("STARTTLS")
                if self.login_disabled and not tls:
                    caps.append("LOGINDISABLED")
                else:
                    caps.extend(f"AUTH={m}" for m in self.mechanisms)
        if not self.utf8_accept and "UTF8=ACCEPT" in caps:
            caps.remove("UTF8=ACCEPT")
        for cap in self.capabilities_add:
            if cap not in caps:
                caps.append(cap)
        remove = {c.upper() for c in self.capabilities_remove}
        return [c for c in caps if c.upper() not in remove]
