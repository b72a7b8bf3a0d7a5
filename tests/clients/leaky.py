"""An in-process client that spills its password: into a command the fakes do not redact (an
IMAP ID parameter, after STARTTLS) and into the message of the exception it fails with.

For tests that everything the harness prints hides the account's secrets.
"""

from __future__ import annotations

import ssl

import imapclient


def sync(ctx) -> None:
    client = imapclient.IMAPClient(ctx.imap_host, port=ctx.imap_port, ssl=False, timeout=10)
    client.starttls(ssl.create_default_context(cafile=str(ctx.ca_file)))
    client.id_({"name": "leaky", "note": ctx.password})
    raise RuntimeError(f"giving up as {ctx.username} with password {ctx.password}")
