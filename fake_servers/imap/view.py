"""A session's view of its selected folder: the sequence numbers its client knows.

The folder changes under the session (other sessions, fault rules, the harness). The
client's sequence numbers must stay valid until the server tells it otherwise, so the view
keeps the UIDs it announced and turns folder changes into EXPUNGE / EXISTS / FETCH FLAGS
updates at the moments RFC 3501 §7.4.1 allows.
"""

from __future__ import annotations

import bisect

from ..mailstore import Folder, Message
from .encode import flag_list


class SelectedView:
    def __init__(self, folder: Folder, *, read_only: bool, condstore: bool) -> None:
        self.folder = folder
        self.read_only = read_only
        self.condstore = condstore
        self.uids: list[int] = list(folder.uids)  # what the client knows, by sequence number
        self.uidvalidity = folder.uidvalidity
        self.keywords: set[str] = set()  # announced in FLAGS; SELECT fills it
        self._synced_modseq = folder.highest_modseq
        self._synced_version = folder.version
        # uid -> modseq of flags this session's own responses already showed its client
        self._reported: dict[int, int] = {}

    # -- lookups in the client's numbering ---------------------------------------------

    def __len__(self) -> int:
        return len(self.uids)

    def message_at(self, seq: int) -> Message | None:
        """The message the client calls ``seq`` (None if it was expunged meanwhile)."""
        return self.folder.by_uid(self.uids[seq - 1])

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def largest_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    # -- updates -------------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        return self.folder.version != self._synced_version

    def updates(self, *, allow_expunge: bool) -> list[bytes]:
        """Untagged lines (without ``* `` and CRLF) that bring the client up to date."""
        if not self.stale:
            return []
        lines: list[bytes] = []
        current = set(self.folder.uids)
        if allow_expunge:
            if self.folder.uidvalidity != self.uidvalidity:
                return lines  # the session closes the connection: the view is no longer valid
            for seq in range(len(self.uids), 0, -1):
                if self.uids[seq - 1] not in current:
                    lines.append(b"%d EXPUNGE" % seq)
                    del self.uids[seq - 1]
        last = self.uids[-1] if self.uids else 0
        added = [uid for uid in self.folder.uids if uid > last]
        if added:
            self.uids.extend(added)
            lines.append(b"%d EXISTS" % len(self.uids))
        if self.folder.highest_modseq != self._synced_modseq:
            synced, first_new = self._synced_modseq, added[0] if added else None
            for msg in self.folder.messages:
                if msg.modseq <= synced or self._reported.get(msg.uid) == msg.modseq:
                    continue  # unchanged, or the session's own STORE/FETCH response showed it
                if first_new is not None and msg.uid >= first_new:
                    break  # just announced by EXISTS: the client fetches its flags anyway
                seq = self.seq_of(msg.uid)
                if seq is None:
                    continue
                extra = b" MODSEQ (%d)" % msg.modseq if self.condstore else b""
                lines.append(b"%d FETCH (UID %d FLAGS %s%s)" % (seq, msg.uid, flag_list(msg.flags), extra))
            self._synced_modseq = self.folder.highest_modseq
            self._reported.clear()
        if allow_expunge:
            self._synced_version = self.folder.version
        return lines

    def reported(self, msg: Message) -> None:
        """The session's own response just showed the client ``msg``'s current flags, so the
        change needs no unsolicited FETCH; changes made elsewhere still get one."""
        self._reported[msg.uid] = msg.modseq
