"""The local side: one Maildir per IMAP folder, written atomically and byte-exact.

Layout (the client contract): ``MAILDIR/<folder path>/{cur,new,tmp}``, the folder's
hierarchy as nested directories (``Archive/2024`` → ``MAILDIR/Archive/2024``), INBOX as
``MAILDIR/INBOX``. A message is written to ``tmp/`` in full, flushed to disk, then renamed
into ``new/`` (no flags) or ``cur/`` with its flags in the ``:2,`` suffix, so a reader
never sees half a message. Bytes are written as fetched: line endings are never touched.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

# IMAP system flags and their Maildir letters (kept in ASCII order when written).
FLAG_LETTERS = {"\\DRAFT": "D", "\\FLAGGED": "F", "\\ANSWERED": "R", "\\SEEN": "S", "\\DELETED": "T"}
SUBDIRS = ("cur", "new", "tmp")

_counter = itertools.count(1)


def folder_path(root: Path, name: str, delimiter: str | None) -> Path:
    """Where folder ``name`` lives under ``root``.

    Each hierarchy level becomes a directory. A level that could escape or confuse the
    layout is escaped with %XX: ``/`` inside a name (when the delimiter is ``.``), a leading
    ``.`` (``..``, hidden names, Maildir++ look-alikes), ``%`` itself, and below the top
    level the names ``cur``, ``new`` and ``tmp`` (which are the parent's own Maildir).
    """
    parts = name.split(delimiter) if delimiter else [name]
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    path = root
    for depth, part in enumerate(parts):
        path = path / _escape(part, nested=depth > 0)
    return path


def _escape(part: str, *, nested: bool) -> str:
    out = part.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if out.startswith(".") or out == "":
        out = "%2E" + out[1:] if out else "%"
    if nested and out in SUBDIRS:
        out = "%" + format(ord(out[0]), "02X") + out[1:]
    return out


def flag_suffix(flags) -> str:
    """The Maildir info for IMAP ``flags`` (bytes or str): ``:2,FS``, or "" for none."""
    letters = sorted({FLAG_LETTERS[f] for f in (_text(f).upper() for f in flags) if f in FLAG_LETTERS})
    return ":2," + "".join(letters) if letters else ""


def _text(flag) -> str:
    return flag.decode("ascii", "replace") if isinstance(flag, bytes) else str(flag)


def base_name(filename: str) -> str:
    """A message's unique name without its ``:2,`` info (which changes with flags)."""
    return filename.split(":", 1)[0]


class MaildirFolder:
    """One folder's Maildir; created on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in SUBDIRS:
            (path / sub).mkdir(parents=True, exist_ok=True)

    def messages(self) -> dict[str, Path]:
        """Every message in ``cur/`` and ``new/``, by unique name."""
        found: dict[str, Path] = {}
        for sub in ("new", "cur"):
            with os.scandir(self.path / sub) as entries:
                for entry in entries:
                    if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                        found[base_name(entry.name)] = Path(entry.path)
        return found

    def deliver(self, data: bytes, flags=()) -> str:
        """Store ``data`` exactly; returns the message's unique name."""
        unique = _unique_name(len(data))
        tmp = self.path / "tmp" / unique
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            suffix = flag_suffix(flags)
            os.rename(tmp, self.path / ("cur" if suffix else "new") / (unique + suffix))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return unique

    def remove(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def prune(self) -> None:
        """Remove the folder's directories if nothing is left in them (a deleted folder)."""
        for sub in SUBDIRS:
            try:
                (self.path / sub).rmdir()
            except OSError:
                return
        try:
            self.path.rmdir()
        except OSError:
            pass


def _unique_name(size: int) -> str:
    """``time.MusecPpidQn.host,S=size``, the usual Maildir form."""
    now = time.time()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
    return f"{int(now)}.M{int(now * 1e6) % 1_000_000}P{os.getpid()}Q{next(_counter)}.{host},S={size}"
