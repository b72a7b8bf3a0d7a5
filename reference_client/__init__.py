"""The bundled reference client: a small, honest, conformant one-way IMAP sync and SMTP
submission client.

It is the default client of ``mailconform run`` and the worked example of the command
adapter: it reads only the ``MAILCONFORM_*`` environment of the client contract, mirrors
every selectable folder of the account into ``MAILCONFORM_MAILDIR``, then (when
``MAILCONFORM_SMTP_HOST`` is set) submits every ``*.eml`` file of ``MAILCONFORM_OUTBOX``
over SMTP, deleting a file only once every recipient was accepted (the IMAP part is skipped
when ``MAILCONFORM_IMAP_HOST`` is unset). Given only ``MAILCONFORM_AUTODISCOVER_EMAIL`` it
discovers the servers first (:mod:`reference_client.discover`: Mozilla autoconfig, POX
Autodiscover, RFC 6186 SRV), and with ``MAILCONFORM_OAUTH_TOKEN_URL`` it logs in with XOAUTH2,
renewing a refused token once (:mod:`reference_client.oauth`). It reports what went wrong in
one line on stderr with a distinct exit status::

    python -m reference_client

Exit statuses (see :mod:`reference_client.errors`): 0 synced and sent, 1 sync, sending or
local error (a message not sent is reported and kept), 2 bad configuration, 3 refused for
security (no TLS, bad certificate), 4 authentication failed, 5 the server is unavailable,
throttling or over quota and the client gave up.
"""

from .errors import (EXIT_AUTH, EXIT_ERROR, EXIT_INSECURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE)

__all__ = ["EXIT_AUTH", "EXIT_ERROR", "EXIT_INSECURE", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE"]
