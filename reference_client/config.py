"""The client's configuration, read only from the ``MAILCONFORM_*`` environment of the contract.

Nothing is read from files or the command line: the harness (or a person) sets the
environment, and anything missing or malformed is a usage error (exit 2) named precisely.

Two parts, each optional when the other is there (:func:`load`): the IMAP sync
(:class:`Config`, needs ``MAILCONFORM_IMAP_*``) and the sending of the outbox
(:class:`SmtpConfig`, needs ``MAILCONFORM_SMTP_*`` and ``MAILCONFORM_OUTBOX``). With
``MAILCONFORM_SMTP_HOST`` unset the IMAP part is required, as it always was; with it set, the
IMAP part runs only when ``MAILCONFORM_IMAP_HOST`` is set too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import EXIT_USAGE, ClientError

SECURITY_MODES = ("tls", "starttls", "none")


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    security: str  # tls (implicit), starttls, none
    username: str
    password: str
    ca_file: str | None  # the only CA trusted; None: the system's trust store
    maildir: Path
    state_dir: Path
    scenario: str = ""
    run: int = 1

    @property
    def password_bytes(self) -> bytes:
        return self.password.encode("utf-8")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if env is None else env
        need, utf8 = _readers(env)
        security = _security(need, "IMAP")
        port = _port(need, "IMAP")
        return cls(
            host=need("IMAP_HOST"),
            port=port,
            security=security,
            username=utf8("USERNAME", need("USERNAME")),
            password=utf8("PASSWORD", need("PASSWORD")),
            ca_file=_ca_file(env),
            maildir=Path(need("MAILDIR")),
            state_dir=Path(need("STATE_DIR")),
            scenario=env.get("MAILCONFORM_SCENARIO", ""),
            run=_run(env),
        )


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to submit the outbox (``MAILCONFORM_SMTP_*``, ``MAILCONFORM_OUTBOX``)."""
    host: str
    port: int
    security: str  # tls (implicit), starttls, none
    username: str
    password: str
    ca_file: str | None
    outbox: Path
    state_dir: Path
    email: str = ""  # MAILCONFORM_EMAIL: the envelope sender of a message without From
    scenario: str = ""
    run: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SmtpConfig":
        env = os.environ if env is None else env
        need, utf8 = _readers(env)
        security = _security(need, "SMTP")
        port = _port(need, "SMTP")
        return cls(
            host=need("SMTP_HOST"),
            port=port,
            security=security,
            username=utf8("USERNAME", need("USERNAME")),
            password=utf8("PASSWORD", need("PASSWORD")),
            ca_file=_ca_file(env),
            outbox=Path(need("OUTBOX")),
            state_dir=Path(need("STATE_DIR")),
            email=utf8("EMAIL", env.get("MAILCONFORM_EMAIL", "")),
            scenario=env.get("MAILCONFORM_SCENARIO", ""),
            run=_run(env),
        )


def load(env: Mapping[str, str] | None = None) -> tuple[Config | None, SmtpConfig | None]:
    """The parts this run does: (IMAP sync or None, outbox submission or None)."""
    env = os.environ if env is None else env
    if not env.get("MAILCONFORM_SMTP_HOST"):
        return Config.from_env(env), None
    smtp = SmtpConfig.from_env(env)
    imap = Config.from_env(env) if env.get("MAILCONFORM_IMAP_HOST") else None
    return imap, smtp


def _readers(env: Mapping[str, str]):
    def need(name: str) -> str:
        value = env.get(f"MAILCONFORM_{name}")
        if value is None or value == "":
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_{name} is not set")
        return value

    def utf8(name: str, value: str) -> str:
        try:
            value.encode("utf-8")  # bytes that were not UTF-8 arrive as lone surrogates
        except UnicodeEncodeError:
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_{name} is not valid UTF-8") from None
        return value

    return need, utf8


def _security(need, protocol: str) -> str:
    security = need(f"{protocol}_SECURITY").strip().lower()
    if security not in SECURITY_MODES:
        raise ClientError(EXIT_USAGE, f"MAILCONFORM_{protocol}_SECURITY is {security!r}; "
                                      f"expected one of {', '.join(SECURITY_MODES)}")
    return security


def _port(need, protocol: str) -> int:
    port_text = need(f"{protocol}_PORT")
    try:
        port = int(port_text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ClientError(EXIT_USAGE, f"MAILCONFORM_{protocol}_PORT is not a port number: {port_text!r}")
    return port


def _run(env: Mapping[str, str]) -> int:
    run_text = env.get("MAILCONFORM_RUN") or "1"
    try:
        return int(run_text)
    except ValueError:
        raise ClientError(EXIT_USAGE, f"MAILCONFORM_RUN is not a number: {run_text!r}") from None


def _ca_file(env: Mapping[str, str]) -> str | None:
    ca_file = env.get("MAILCONFORM_CA_FILE") or None
    if ca_file is not None and not os.path.isfile(ca_file):
        raise ClientError(EXIT_USAGE, f"MAILCONFORM_CA_FILE does not name a file: {ca_file}")
    return ca_file
