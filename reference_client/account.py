"""Account setup: the configuration as given, or discovered, and an OAuth token source when
the account uses one. Runs before any mail server is contacted.

* ``MAILCONFORM_AUTODISCOVER_EMAIL`` set and ``MAILCONFORM_IMAP_HOST`` unset: the IMAP server
  (and, when ``MAILCONFORM_OUTBOX`` is set, the SMTP server) are discovered
  (:mod:`reference_client.discover`); otherwise the ``MAILCONFORM_IMAP_*``/``SMTP_*`` values
  are used as before (:func:`reference_client.config.load`).
* ``MAILCONFORM_OAUTH_TOKEN_URL`` set: a token is obtained now (:mod:`reference_client.oauth`),
  and IMAP and SMTP log in with XOAUTH2 when the server offers it (else as before).
* ``MAILCONFORM_CONNECT_TO`` / ``MAILCONFORM_DNS``: where names are
  (:class:`reference_client.discover.names.Names`), for discovery, the token endpoint, and
  the mail servers.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .config import Config, SmtpConfig, load
from .errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, ClientError


@dataclass(frozen=True)
class AccountConfig(Config):
    """The IMAP configuration plus what account setup added."""

    oauth: Any = None  # a reference_client.oauth.TokenSource: XOAUTH2 when offered
    found_by: str = ""  # how the server was discovered ("" when it was configured)


@dataclass
class Setup:
    imap: Config | None
    smtp: SmtpConfig | None
    names: Any  # reference_client.discover.names.Names: ``with setup.names.routing(): run(…)``
    status: int = EXIT_OK  # a problem already reported (an outbox no discovered server can take)


@dataclass(frozen=True)
class AccountSmtpConfig(SmtpConfig):
    """The SMTP configuration plus the OAuth token source: XOAUTH2 when offered."""

    oauth: Any = None


def load_account(env: Mapping[str, str] | None = None, *, notify: Callable[[str], None] = lambda line: None) -> Setup:
    """What this run does, and where the names it uses are."""
    from .discover.names import Names

    env = os.environ if env is None else env
    names = Names.from_env(env)
    address = env.get("MAILCONFORM_AUTODISCOVER_EMAIL") or ""
    found_by = ""
    status = EXIT_OK
    if address and not env.get("MAILCONFORM_IMAP_HOST"):
        env, found_by, status = _discovered(env, address, names, notify)
    imap, smtp = load(env)
    token_url = env.get("MAILCONFORM_OAUTH_TOKEN_URL") or ""
    oauth = None
    if token_url:
        oauth = _token_source(env, token_url, names, notify)
        oauth.ensure()
    if imap is not None and (oauth is not None or found_by):
        imap = AccountConfig(**{f.name: getattr(imap, f.name) for f in dataclasses.fields(Config)},
                             oauth=oauth, found_by=found_by)
    if smtp is not None and oauth is not None:
        smtp = AccountSmtpConfig(**{f.name: getattr(smtp, f.name) for f in dataclasses.fields(SmtpConfig)},
                                 oauth=oauth)
    return Setup(imap, smtp, names, status)


def _need(env: Mapping[str, str], name: str) -> str:
    value = env.get(f"MAILCONFORM_{name}")
    if not value:
        raise ClientError(EXIT_USAGE, f"MAILCONFORM_{name} is not set")
    return value


def _discovered(env: Mapping[str, str], address: str, names, notify) -> tuple[dict[str, str], str, int]:
    """The environment with the discovered servers filled in, how they were found, and the
    status of a problem already reported."""
    from .discover import discover

    for name in ("USERNAME", "PASSWORD", "MAILDIR", "STATE_DIR"):  # before any request
        _need(env, name)
    ca_file = env.get("MAILCONFORM_CA_FILE") or None
    if ca_file is not None and not os.path.isfile(ca_file):
        raise ClientError(EXIT_USAGE, f"MAILCONFORM_CA_FILE does not name a file: {ca_file}")
    found = discover(address, names=names, ca_file=ca_file, username=env["MAILCONFORM_USERNAME"],
                     password=env["MAILCONFORM_PASSWORD"], notify=notify)
    assert found.imap is not None
    filled = dict(env)
    filled.update({"MAILCONFORM_IMAP_HOST": found.imap.host, "MAILCONFORM_IMAP_PORT": str(found.imap.port),
                   "MAILCONFORM_IMAP_SECURITY": found.imap.security})
    line = f"discovered IMAP {found.imap}"
    status = EXIT_OK
    if env.get("MAILCONFORM_OUTBOX") and not env.get("MAILCONFORM_SMTP_HOST"):
        if found.smtp is not None:
            filled.update({"MAILCONFORM_SMTP_HOST": found.smtp.host, "MAILCONFORM_SMTP_PORT": str(found.smtp.port),
                           "MAILCONFORM_SMTP_SECURITY": found.smtp.security})
            line += f", SMTP {found.smtp}"
        elif _outbox_has_mail(env["MAILCONFORM_OUTBOX"]):
            notify(f"error: discovery found no SMTP server with TLS for {address}; the outbox is not sent")
            status = EXIT_ERROR
    notify(f"{line} from {found.via}")
    return filled, found.via, status


def _outbox_has_mail(path: str) -> bool:
    try:
        return any(name.endswith(".eml") for name in os.listdir(path))
    except OSError:
        return False


def _token_source(env: Mapping[str, str], url: str, names, notify):
    from .discover.web import Web
    from .oauth import TokenSource

    username = _need(env, "USERNAME")
    address = env.get("MAILCONFORM_AUTODISCOVER_EMAIL") or env.get("MAILCONFORM_EMAIL") or username
    return TokenSource(url, username=username, password=_need(env, "PASSWORD"), address=address,
                       state_dir=_need(env, "STATE_DIR"), web=Web(names, env.get("MAILCONFORM_CA_FILE") or None),
                       notify=notify)
