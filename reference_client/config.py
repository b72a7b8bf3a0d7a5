"""The client's configuration, read only from the ``MAILCONFORM_*`` environment of the contract.

Nothing is read from files or the command line: the harness (or a person) sets the
environment, and anything missing or malformed is a usage error (exit 2) named precisely.
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

        security = need("IMAP_SECURITY").strip().lower()
        if security not in SECURITY_MODES:
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_IMAP_SECURITY is {security!r}; "
                                          f"expected one of {', '.join(SECURITY_MODES)}")
        port_text = need("IMAP_PORT")
        try:
            port = int(port_text)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_IMAP_PORT is not a port number: {port_text!r}")
        run_text = env.get("MAILCONFORM_RUN") or "1"
        try:
            run = int(run_text)
        except ValueError:
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_RUN is not a number: {run_text!r}") from None
        ca_file = env.get("MAILCONFORM_CA_FILE") or None
        if ca_file is not None and not os.path.isfile(ca_file):
            raise ClientError(EXIT_USAGE, f"MAILCONFORM_CA_FILE does not name a file: {ca_file}")
        return cls(
            host=need("IMAP_HOST"),
            port=port,
            security=security,
            username=utf8("USERNAME", need("USERNAME")),
            password=utf8("PASSWORD", need("PASSWORD")),
            ca_file=ca_file,
            maildir=Path(need("MAILDIR")),
            state_dir=Path(need("STATE_DIR")),
            scenario=env.get("MAILCONFORM_SCENARIO", ""),
            run=run,
        )
