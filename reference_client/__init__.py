"""The bundled reference client: a small, honest, conformant one-way IMAP sync client.

It is the default client of ``mailconform run`` and the worked example of the command
adapter: it reads only the ``MAILCONFORM_*`` environment of the client contract, mirrors
every selectable folder of the account into ``MAILCONFORM_MAILDIR`` and reports what went
wrong in one line on stderr with a distinct exit status::

    python -m reference_client

Exit statuses (see :mod:`reference_client.errors`): 0 synced, 1 sync or local error,
2 bad configuration, 3 refused for security (no TLS, bad certificate), 4 authentication
failed, 5 the server is unavailable or throttling and the client gave up.
"""

from .errors import (EXIT_AUTH, EXIT_ERROR, EXIT_INSECURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE)

__all__ = ["EXIT_AUTH", "EXIT_ERROR", "EXIT_INSECURE", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE"]
