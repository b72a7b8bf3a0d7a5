"""One-way sync, server to Maildir: every selectable folder, resumable across reconnects.

Per folder: EXAMINE, compare UIDVALIDITY with the saved state (a change discards the UID
map), then repeat "UID SEARCH ALL; delete local messages whose UID is gone; fetch the UIDs
not stored yet" until a search finds nothing missing. A second search after fetching
catches messages expunged or delivered meanwhile.

Messages are matched by content where UIDs cannot be trusted: every file in the folder's
Maildir that the UID map does not account for (all of them after a UIDVALIDITY change; a
file written just before a crash) is a *spare*, known by its SHA-256. A fetched message
whose hash matches a spare takes over that file instead of writing a new one; spares left
over when the folder is complete are no longer on the server and are deleted. So the
store converges to the server's content without duplicates, whatever UIDs did.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import EXIT_ERROR, ClientError
from .maildir import MaildirFolder, folder_path
from .remote import FolderUnavailable, Remote, RemoteFolder
from .state import Entry, FolderState, StateStore

CHUNK = 100  # UIDs per UID FETCH
MAX_PASSES = 4  # search/fetch rounds per folder before the server is deemed inconsistent


@dataclass
class Totals:
    folders: int = 0
    fetched: int = 0
    adopted: int = 0  # matched to a file already stored (by content)
    removed: int = 0
    uidvalidity_changes: int = 0


class Spares:
    """Files not accounted for by UID, by content hash (a hash may hold several files)."""

    def __init__(self) -> None:
        self._by_hash: dict[str, list[str]] = defaultdict(list)

    def add(self, digest: str, name: str) -> None:
        self._by_hash[digest].append(name)

    def take(self, digest: str) -> str | None:
        names = self._by_hash.get(digest)
        return names.pop() if names else None

    def left(self) -> list[str]:
        return [name for names in self._by_hash.values() for name in names]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Sync:
    """The sync of one run; :meth:`run` may be called again on a new connection and goes
    on where the last one stopped (finished folders are not visited again)."""

    def __init__(self, maildir: Path, states: StateStore, *, progress: Callable[[], None] = lambda: None,
                 notify: Callable[[str], None] = lambda line: None) -> None:
        self.root = maildir
        self.states = states
        self.progress = progress
        self.notify = notify
        self.done: set[str] = set()
        self.failed: dict[str, str] = {}
        self.totals = Totals()
        self._listed: list[RemoteFolder] | None = None

    def run(self, remote: Remote) -> None:
        if self._listed is None:
            self._listed = remote.folders()
        for folder in self._listed:
            if not folder.selectable or folder.name in self.done:
                continue
            try:
                self.sync_folder(remote, folder)
            except FolderUnavailable as exc:
                self.failed[folder.name] = str(exc)
                self.notify(f"cannot open folder {exc}")
            self.done.add(folder.name)
            self.progress()
        self.forget_deleted_folders({f.name for f in self._listed if f.selectable})
        if self.failed:
            raise ClientError(EXIT_ERROR, f"sync incomplete: {len(self.failed)} folder(s) could not be opened: "
                                          + "; ".join(self.failed.values()))

    def sync_folder(self, remote: Remote, folder: RemoteFolder) -> None:
        path = folder_path(self.root, folder.name, folder.delimiter)
        local = MaildirFolder(path)
        uidvalidity, exists = remote.examine(folder.name)
        state = self.states.load(folder.name, str(path.relative_to(self.root)))
        on_disk = local.messages()
        known_hashes = state.hashes()
        if state.uidvalidity is None or state.uidvalidity != uidvalidity:
            if state.messages:
                self.totals.uidvalidity_changes += 1
                self.notify(f"{folder.name}: UIDVALIDITY changed ({state.uidvalidity} -> {uidvalidity}); "
                            "matching stored messages by content")
            state = FolderState(folder.name, str(path.relative_to(self.root)), uidvalidity)
        else:  # a file removed locally is fetched again
            state.messages = {uid: e for uid, e in state.messages.items() if e.file in on_disk}
        tracked = {e.file for e in state.messages.values()}
        spares = Spares()
        for name, file in on_disk.items():
            if name not in tracked:
                spares.add(known_hashes.get(name) or file_sha256(file), name)
        try:
            self._converge(remote, folder.name, local, state, spares, empty=exists == 0)
            for name in spares.left():
                local.remove(on_disk[name])
                self.totals.removed += 1
        finally:
            self.states.save(state)
        self.totals.folders += 1

    def _converge(self, remote: Remote, name: str, local: MaildirFolder, state: FolderState, spares: Spares,
                  *, empty: bool) -> None:
        for round_ in range(MAX_PASSES):
            on_server = set() if empty and round_ == 0 else set(remote.uids(name))
            gone = sorted(set(state.messages) - on_server)  # expunged on the server
            files = local.messages() if gone else {}
            for uid in gone:
                file = files.get(state.messages.pop(uid).file)
                if file is not None:
                    local.remove(file)
                self.totals.removed += 1
            missing = sorted(on_server - set(state.messages))
            if not missing:
                return
            for start in range(0, len(missing), CHUNK):
                chunk = missing[start:start + CHUNK]
                for uid, (body, flags) in remote.fetch(name, chunk).items():
                    if uid in state.messages:
                        continue
                    digest = sha256(body)
                    adopted = spares.take(digest)
                    if adopted is not None:
                        self.totals.adopted += 1
                    else:
                        adopted = local.deliver(body, flags)
                        self.totals.fetched += 1
                    state.messages[uid] = Entry(adopted, digest)
                self.progress()
        raise ClientError(EXIT_ERROR, f"{name}: the server keeps listing messages it does not return "
                                      f"after {MAX_PASSES} rounds of UID SEARCH and UID FETCH")

    def forget_deleted_folders(self, on_server: set[str]) -> None:
        """Folders that were synced before and are gone from the server: remove what we stored."""
        for state in self.states.all():
            if state.name in on_server:
                continue
            local_path = self.root / state.path
            if local_path.is_dir():
                local = MaildirFolder(local_path)
                files = local.messages()
                for entry in state.messages.values():
                    if entry.file in files:
                        local.remove(files[entry.file])
                        self.totals.removed += 1
                local.prune()
            self.states.forget(state.name)
            self.notify(f"{state.name}: deleted on the server; removed its local copy")
