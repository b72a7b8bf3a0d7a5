"""Reading what a client left in MAILCONFORM_MAILDIR, as CONTRACT.md lays it out.

One Maildir per folder: ``MAILDIR/INBOX/{cur,new,tmp}``, nested folders as nested
directories (``MAILDIR/Archive/2024``). Maildir++ is accepted as well: ``MAILDIR/.Archive.2024``
is folder ``Archive/2024``, and messages in ``MAILDIR/{cur,new}`` belong to INBOX.

Folder names come back as Unicode with ``/`` between hierarchy levels, exactly as the
client wrote them (a client that stores ``Entw&APw-rfe`` has not decoded modified UTF-7,
and that is what a check must see); only two spellings are undone: ``%XX`` escapes (which
a client needs for ``/``, a leading ``.`` or ``cur``/``new``/``tmp`` inside a name), and
Unicode normalisation (NFC, so a file system that stores NFD does not count as a
wrong name). Messages are read from ``cur`` and ``new``; ``tmp`` holds deliveries in
progress and is ignored, as are hidden files (a client's own state).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

SUBDIRS = ("cur", "new", "tmp")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class LocalMessage:
    """One message file of a client's Maildir."""

    folder: str
    path: Path
    data: bytes

    @property
    def name(self) -> str:
        """The file's unique name without its ``:2,`` flags."""
        return self.path.name.split(":", 1)[0]

    @property
    def flags(self) -> str:
        """The Maildir flag letters (``"FS"``), empty when the message has none."""
        _, sep, info = self.path.name.partition(":2,")
        return info if sep else ""


def read_maildir(root: Path | str) -> dict[str, list[LocalMessage]]:
    """Every folder under ``root`` with its messages (files in name order); folders that exist
    without messages are included with an empty list. A missing root is an empty store."""
    root = Path(root)
    folders: dict[str, list[LocalMessage]] = {}
    if not root.is_dir():
        return folders
    if _is_maildir(root):  # Maildir++: the root itself is INBOX
        _add(folders, "INBOX", root)
    for entry in _subdirs(root):
        if entry.name in SUBDIRS:
            continue
        if entry.name.startswith("."):
            if _is_maildir(entry) and entry.name not in (".", ".."):
                parts = entry.name[1:].split(".")
                _add(folders, folder_name(parts), entry)
            continue
        _walk(folders, entry, [entry.name])
    return folders


def folder_name(parts: list[str]) -> str:
    """The folder name for directory levels ``parts``: unescaped, NFC, INBOX spelt INBOX."""
    names = [unicodedata.normalize("NFC", _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), p)) for p in parts]
    if names and names[0].upper() == "INBOX":
        names[0] = "INBOX"
    return "/".join(names)


def _walk(folders: dict, directory: Path, parts: list[str]) -> None:
    if _is_maildir(directory):
        _add(folders, folder_name(parts), directory)
    for entry in _subdirs(directory):
        if entry.name in SUBDIRS or entry.name.startswith("."):
            continue
        _walk(folders, entry, parts + [entry.name])


def _add(folders: dict, name: str, directory: Path) -> None:
    messages = folders.setdefault(name, [])
    for sub in ("new", "cur"):
        path = directory / sub
        if not path.is_dir():
            continue
        with os.scandir(path) as entries:
            files = sorted((e for e in entries if not e.name.startswith(".") and e.is_file(follow_symlinks=False)),
                           key=lambda e: e.name)
        for entry in files:
            messages.append(LocalMessage(name, Path(entry.path), Path(entry.path).read_bytes()))


def _is_maildir(directory: Path) -> bool:
    return (directory / "cur").is_dir() or (directory / "new").is_dir()


def _subdirs(directory: Path) -> list[Path]:
    with os.scandir(directory) as entries:
        return sorted((Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)), key=lambda p: p.name)
