"""What the client remembers between runs, per folder, in ``MAILCONFORM_STATE_DIR``.

One JSON file per folder: its name, where its Maildir is, the UIDVALIDITY the UIDs belong
to, and for each UID the Maildir name and SHA-256 of the stored message. The hash lets a
later run recognise a message by content when UIDs mean nothing any more (UIDVALIDITY
changed, or a run was cut short after writing a file but before saving this). A missing or
unreadable state file is an empty state: the sync then matches the Maildir by content,
which costs a download but never duplicates or loses a message.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

VERSION = 1


@dataclass
class Entry:
    file: str  # Maildir unique name (without the :2, info)
    sha256: str


@dataclass
class FolderState:
    name: str
    path: str  # the Maildir directory, relative to MAILDIR
    uidvalidity: int | None = None
    messages: dict[int, Entry] = field(default_factory=dict)

    def hashes(self) -> dict[str, str]:
        """Content hash by Maildir name, for every message this state knows."""
        return {e.file: e.sha256 for e in self.messages.values()}


class StateStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "folders"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _file(self, name: str) -> Path:
        # hashed: folder names may hold any character, and file systems may fold case
        return self.dir / (hashlib.sha256(name.encode("utf-8")).hexdigest()[:32] + ".json")

    def load(self, name: str, path: str) -> FolderState:
        try:
            data = json.loads(self._file(name).read_text("utf-8"))
            if data.get("version") != VERSION or data.get("name") != name:
                raise ValueError("not this folder's state")
            messages = {int(uid): Entry(str(e["file"]), str(e["sha256"])) for uid, e in data["messages"].items()}
            uidvalidity = data.get("uidvalidity")
            return FolderState(name, str(data.get("path", path)),
                               int(uidvalidity) if uidvalidity is not None else None, messages)
        except FileNotFoundError:
            return FolderState(name, path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return FolderState(name, path)  # unreadable: rebuilt by content, see the module's note

    def save(self, state: FolderState) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        data = {
            "version": VERSION,
            "name": state.name,
            "path": state.path,
            "uidvalidity": state.uidvalidity,
            "messages": {str(uid): {"file": e.file, "sha256": e.sha256}
                         for uid, e in sorted(state.messages.items())},
        }
        target = self._file(state.name)
        tmp = target.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(data, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)

    def all(self) -> list[FolderState]:
        """Every folder with saved state (to find folders deleted on the server)."""
        found = []
        for file in sorted(self.dir.glob("*.json")):
            try:
                data = json.loads(file.read_text("utf-8"))
                found.append(self.load(str(data["name"]), str(data.get("path", ""))))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found

    def forget(self, name: str) -> None:
        try:
            self._file(name).unlink()
        except FileNotFoundError:
            pass
