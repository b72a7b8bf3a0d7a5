"""The values a client gets for one run: CONTRACT.md's environment table as one object.

The same values reach every adapter kind: as ``MAILCONFORM_*`` environment variables
(``environ()``), as ``{placeholders}`` in command and config templates (``placeholders()``),
and as attributes of the object a python client is called with.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

SECURITY = ("tls", "starttls", "none")
_CONNECT_TO = re.compile(r"^([^:\[\]]+):(\d+):(\[[^\]]+\]|[^:]+):(\d+)$")  # name:port:host:port

# Attribute → environment variable. Names are public (CONTRACT.md): never rename one.
ENVIRONMENT: dict[str, str] = {
    "scenario": "MAILCONFORM_SCENARIO",
    "run": "MAILCONFORM_RUN",
    "imap_host": "MAILCONFORM_IMAP_HOST",
    "imap_port": "MAILCONFORM_IMAP_PORT",
    "imap_security": "MAILCONFORM_IMAP_SECURITY",
    "smtp_host": "MAILCONFORM_SMTP_HOST",
    "smtp_port": "MAILCONFORM_SMTP_PORT",
    "smtp_security": "MAILCONFORM_SMTP_SECURITY",
    "username": "MAILCONFORM_USERNAME",
    "password": "MAILCONFORM_PASSWORD",
    "email": "MAILCONFORM_EMAIL",
    "ca_file": "MAILCONFORM_CA_FILE",
    "maildir": "MAILCONFORM_MAILDIR",
    "state_dir": "MAILCONFORM_STATE_DIR",
    "outbox": "MAILCONFORM_OUTBOX",
    "autodiscover_email": "MAILCONFORM_AUTODISCOVER_EMAIL",
    "dns": "MAILCONFORM_DNS",
    "oauth_token_url": "MAILCONFORM_OAUTH_TOKEN_URL",
    # Addition to the contract's table: where the scenario's names really are (curl --connect-to
    # entries, comma-separated: autodiscover.example.test:443:127.0.0.1:40123,...).
    "connect_to": "MAILCONFORM_CONNECT_TO",
    # Addition to the contract's table: the rendered config file, when there is one.
    "config": "MAILCONFORM_CONFIG",
}

ENV_PREFIX = "MAILCONFORM_"

# Placeholder names every template may use; ``config`` only with a config template.
PLACEHOLDERS = frozenset(ENVIRONMENT) - {"config"}


@dataclass(frozen=True)
class ClientContext:
    """Everything one run of a client may know. Unset values (``None``) are left out of the
    environment and render as empty strings in templates.

    Frozen, because one context may be read by a client thread while the runner moves on;
    adapters derive changed copies with ``dataclasses.replace`` (see ``with_config``).
    """

    scenario: str
    run: int
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    username: str | None = None
    password: str | None = None
    email: str | None = None
    ca_file: Path | None = None
    maildir: Path | None = None
    state_dir: Path | None = None
    outbox: Path | None = None
    autodiscover_email: str | None = None
    dns: str | None = None  # host:port of the fake DNS server
    oauth_token_url: str | None = None
    connect_to: str | None = None  # curl --connect-to entries, comma-separated (see connect_to_map)
    config: Path | None = None  # set by the command/daemon adapters after rendering

    def __post_init__(self) -> None:
        if not self.scenario:
            raise ValueError("scenario must be a non-empty id")
        if isinstance(self.run, bool) or not isinstance(self.run, int) or self.run < 1:
            raise ValueError(f"run is 1-based, not {self.run!r}")
        for name in ("imap_security", "smtp_security"):
            value = getattr(self, name)
            if value is not None and value not in SECURITY:
                raise ValueError(f"{name} must be one of {', '.join(SECURITY)}, not {value!r}")
        for name in ("ca_file", "maildir", "state_dir", "outbox", "config"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))  # accept str paths

    def values(self) -> dict[str, str]:
        """Every set value as a string, keyed by attribute name."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = str(value)
        return out

    def environ(self) -> dict[str, str]:
        """The ``MAILCONFORM_*`` variables of this run (unset values omitted)."""
        return {ENVIRONMENT[name]: value for name, value in self.values().items()}

    def placeholders(self) -> dict[str, str]:
        """Values for ``{name}`` templates: every attribute (unset ones as ``""``), plus
        ``config`` when a config file was rendered."""
        values = self.values()
        out = {name: values.get(name, "") for name in sorted(PLACEHOLDERS)}
        if self.config is not None:
            out["config"] = values["config"]
        return out

    def connect_to_map(self) -> dict[tuple[str, int], tuple[str, int]]:
        """``connect_to`` as a map, ``{(name, port): (host, port)}`` (empty when unset), the form
        ``fake_servers.discovery.resolve_to_fakes`` takes."""
        out: dict[tuple[str, int], tuple[str, int]] = {}
        for entry in (self.connect_to or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            match = _CONNECT_TO.match(entry)
            if match is None:
                raise ValueError(f"connect_to: {entry!r} is not name:port:host:port")
            name, port, host, target = match.groups()
            out[(name, int(port))] = (host.strip("[]"), int(target))
        return out

    def with_config(self, path: Path) -> "ClientContext":
        return dataclasses.replace(self, config=Path(path))


def client_environment(ctx: ClientContext, base: dict[str, str]) -> dict[str, str]:
    """``base`` (normally ``os.environ``) with this run's variables.

    Inherited ``MAILCONFORM_*`` variables are dropped first: one exported in the shell that
    started the harness must not leak into a scenario that leaves that value unset.
    """
    env = {k: v for k, v in base.items() if not k.startswith(ENV_PREFIX)}
    env.update(ctx.environ())
    return env
