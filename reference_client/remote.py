"""The IMAP session as the sync sees it: the few commands it sends, and nothing else.

The sync only ever sends LIST, EXAMINE, UID SEARCH ALL and UID FETCH (plus the CAPABILITY,
STARTTLS, AUTHENTICATE/LOGIN and LOGOUT of :mod:`connect` and :mod:`auth`): all of them
IMAP4rev1 base commands, so nothing unadvertised is ever sent, and no IDLE (this is a
one-shot client). This class is the one seam where imapclient's exceptions become
:class:`Retry` or :class:`ClientError`, so the sync code deals in folders and messages only.
"""

from __future__ import annotations

import imaplib
from dataclasses import dataclass

from imapclient import IMAPClient

from . import auth, connect
from .config import Config
from .errors import EXIT_AUTH, ClientError, server_text, trouble

NOT_SELECTABLE = {"\\NOSELECT", "\\NONEXISTENT"}


@dataclass(frozen=True)
class RemoteFolder:
    name: str  # decoded from modified UTF-7
    delimiter: str | None
    selectable: bool


class FolderUnavailable(Exception):
    """The server answered NO to EXAMINE of a folder it listed: skip it, report it."""


class Remote:
    def __init__(self, client: IMAPClient, method: str) -> None:
        self.client = client
        self.method = method

    @classmethod
    def open(cls, config: Config) -> "Remote":
        client = connect.open_connection(config)
        try:
            method = auth.login(client, config, tls=config.security != "none")
        except ClientError as exc:
            connect.close(client)
            found_by = getattr(config, "found_by", "")
            if found_by and exc.status == EXIT_AUTH:  # say which server discovery sent us to
                raise ClientError(exc.status, f"{exc} (at {config.host}:{config.port}, the IMAP server "
                                              f"discovered from {found_by})") from None
            raise
        except BaseException:
            connect.close(client)
            raise
        return cls(client, method)

    def _call(self, doing: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ClientError:
            raise
        except (imaplib.IMAP4.error, OSError, EOFError) as exc:  # abort is an error; sockets raise OSError
            raise trouble(exc, doing) from None

    def folders(self) -> list[RemoteFolder]:
        found = []
        for flags, delimiter, name in self._call("listing folders", self.client.list_folders):
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            if isinstance(delimiter, bytes):
                delimiter = delimiter.decode("ascii", "replace")
            attrs = {(f.decode("ascii", "replace") if isinstance(f, bytes) else str(f)).upper() for f in flags}
            found.append(RemoteFolder(str(name), delimiter or None, not (attrs & NOT_SELECTABLE)))
        return found

    def examine(self, name: str) -> tuple[int | None, int]:
        """Open ``name`` read-only; returns (UIDVALIDITY or None if not sent, EXISTS)."""
        try:
            info = self.client.select_folder(name, readonly=True)
        except imaplib.IMAP4.abort as exc:
            raise trouble(exc, f"opening {name}") from None
        except imaplib.IMAP4.error as exc:
            text = server_text(exc)
            if "command error: BAD" in str(exc) or "[UNAVAILABLE" in text.upper():
                raise trouble(exc, f"opening {name}") from None
            raise FolderUnavailable(f"{name}: {text}") from None
        except OSError as exc:
            raise trouble(exc, f"opening {name}") from None
        uidvalidity = info.get(b"UIDVALIDITY")
        return (int(uidvalidity) if uidvalidity is not None else None), int(info.get(b"EXISTS", 0) or 0)

    def uids(self, name: str) -> list[int]:
        return [int(u) for u in self._call(f"listing the messages of {name}", self.client.search, ["ALL"])]

    def fetch(self, name: str, uids: list[int]) -> dict[int, tuple[bytes, tuple]]:
        """Bodies and flags of ``uids`` (those the server returned).

        imapclient returns only once the tagged OK arrived, after every literal was read in
        full; a connection cut inside a literal raises instead, so a truncated message is
        never handed out (and never stored).
        """
        data = self._call(f"fetching messages of {name}", self.client.fetch, uids, ["BODY.PEEK[]", "FLAGS"])
        out = {}
        for uid, items in data.items():
            body = items.get(b"BODY[]")
            if isinstance(body, bytes):
                out[int(uid)] = (body, tuple(items.get(b"FLAGS", ())))
        return out

    def logout(self) -> None:
        try:
            self.client.logout()
        except Exception:
            connect.close(self.client)

    def close(self) -> None:
        connect.close(self.client)

