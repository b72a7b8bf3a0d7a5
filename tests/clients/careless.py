"""A deliberately careless in-process client: it logs in whatever the server offers.

It ignores a missing STARTTLS and certificate errors, never handles UIDVALIDITY and names
its files by UID: every shortcut a real client should not take, for tests that must see the
harness fail it.
"""

from __future__ import annotations

import ssl

import imapclient


def sync(ctx) -> None:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    if ctx.imap_security == "tls":
        client = imapclient.IMAPClient(ctx.imap_host, port=ctx.imap_port, ssl=True, ssl_context=insecure, timeout=10)
    else:
        client = imapclient.IMAPClient(ctx.imap_host, port=ctx.imap_port, ssl=False, timeout=10)
        if b"STARTTLS" in client.capabilities():
            client.starttls(insecure)
    client.plain_login(ctx.username, ctx.password) if not ctx.username.isascii() else client.login(ctx.username, ctx.password)
    for _flags, _delimiter, name in client.list_folders():
        client.select_folder(name, readonly=True)
        folder = ctx.maildir.joinpath(*name.split("/"))
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        uids = client.search(["ALL"])
        if not uids:
            continue
        for uid, data in client.fetch(uids, ["BODY.PEEK[]"]).items():
            path = folder / "cur" / f"{uid}.careless:2,"
            if not path.exists():
                path.write_bytes(data[b"BODY[]"])
    client.logout()
