"""A command client that echoes every line the IMAP server sends it, from the greeting on.

It does STARTTLS (verifying the harness CA), logs in, lists the folders and logs out: a
"verbose" client that shows the user everything the server says, alerts included, without
asking whether a line arrived before TLS. Tests use it as the client that shows a pre-TLS
[ALERT] as if the server had said it. Run as ``python tests/clients/echo_server.py``.
"""

from __future__ import annotations

import imaplib
import os
import ssl
import sys


class EchoingIMAP4(imaplib.IMAP4):
    def _get_line(self) -> bytes:
        line = super()._get_line()
        print("server: " + line.decode("utf-8", "replace"), flush=True)
        return line


def main() -> int:
    env = os.environ
    context = ssl.create_default_context(cafile=env["MAILCONFORM_CA_FILE"])
    client = EchoingIMAP4(env["MAILCONFORM_IMAP_HOST"], int(env["MAILCONFORM_IMAP_PORT"]), timeout=10)
    client.starttls(context)
    client.login(env["MAILCONFORM_USERNAME"], env["MAILCONFORM_PASSWORD"])
    client.list()
    client.logout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
