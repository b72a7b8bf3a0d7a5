"""Checks that compare the client's Maildir with the server's mailboxes.

Messages are matched by content, per folder, as multisets: what the server holds N times the
Maildir must hold N times. Line endings are normalised to CRLF (a client may store LF, as
Maildir tools do), except in ``byte_exact``, which is for scenarios whose point is the exact
bytes (broken MIME, bare LF, 8-bit headers). A local file that is a strict prefix of a
server message is *truncated*, not merely stale: that is the signature of a client that
trusted RFC822.SIZE or stored a FETCH cut by a reset.
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from ..maildir import LocalMessage, folder_name, read_maildir
from ..verdicts import Evidence
from . import check
from .evidence import describe_message, excerpt, failed, first_difference, header, passed

LISTED = 3  # messages named per category in one folder's evidence


def normalise(data: bytes) -> bytes:
    """Line endings as CRLF: bare LF becomes CRLF, CRLF stays; a lone CR is content."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass
class FolderDiff:
    """How one folder of the Maildir differs from the server's."""

    folder: str
    server: list[bytes]
    local: list[LocalMessage]
    missing: list[bytes] = field(default_factory=list)  # server messages without a complete local copy
    duplicated: list[LocalMessage] = field(default_factory=list)  # copies beyond the server's count
    stale: list[LocalMessage] = field(default_factory=list)  # content the server does not hold
    truncated: list[tuple[LocalMessage, bytes]] = field(default_factory=list)  # (file, the message it cuts)


class _Prefixes:
    """Finds the server message a local file is a strict prefix of (compared normalised).

    Messages are kept sorted, so every message that starts with some bytes sits in one run
    beginning where those bytes would be inserted: a lookup is a binary search, which keeps a
    10,000-message comparison with thousands of unmatched files fast.
    """

    def __init__(self, messages: list[bytes]) -> None:
        pairs = sorted(((normalise(m), m) for m in messages), key=lambda pair: pair[0])
        self.keys = [flat for flat, _ in pairs]
        self.originals = [orig for _, orig in pairs]

    def find(self, data: bytes) -> bytes | None:
        """The original server message that ``data`` (normalised) cuts short, if any."""
        i = bisect.bisect_left(self.keys, data)
        while i < len(self.keys) and self.keys[i].startswith(data):
            if len(self.keys[i]) > len(data):
                return self.originals[i]
            i += 1
        return None


def server_state(obs, run: int | None) -> tuple[dict[str, list[bytes]], int]:
    """(the server's mailboxes, the run they are from): after ``run``, or after the last run."""
    states = obs.server_after_run
    if not states:
        raise ValueError("no server state was recorded for this scenario")
    if run is None:
        return states[-1], len(states)
    if not 1 <= run <= len(states):
        raise ValueError(f"no server state after run {run}: {len(states)} run(s) recorded")
    return states[run - 1], run


def known_folders(server: dict[str, list[bytes]], folders: list[str] | None) -> None:
    """A listed folder the server does not have is a scenario's typo, not an empty folder."""
    for name in folders or ():
        if name not in server:
            match = difflib.get_close_matches(name, list(server), n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else f" (it has: {', '.join(sorted(server))})"
            raise ValueError(f"the server has no folder {name!r}{hint}")


def local_key(name: str, delimiter: str) -> str:
    """Where the Maildir reader files server folder ``name`` (hierarchy joined with ``/``)."""
    parts = name.split(delimiter) if delimiter else [name]
    return folder_name(parts)


def compare(server: dict[str, list[bytes]], local: dict[str, list[LocalMessage]], *,
            folders: list[str] | None = None, delimiter: str = "/") -> list[FolderDiff]:
    """Per folder (``folders`` as the server names them; all folders of either side when None),
    what is missing, duplicated, stale or truncated, with line endings normalised."""
    known_folders(server, folders)
    by_key = {local_key(name, delimiter): msgs for name, msgs in server.items()}
    keys = list(dict.fromkeys(by_key) | dict.fromkeys(local)) if folders is None else \
        [local_key(name, delimiter) for name in folders]
    prefixes = _Prefixes([m for msgs in server.values() for m in msgs])
    return [_compare_folder(key, by_key.get(key, []), local.get(key, []), prefixes) for key in keys]


def _compare_folder(name: str, server: list[bytes], local: list[LocalMessage], prefixes: _Prefixes) -> FolderDiff:
    diff = FolderDiff(name, server, local)
    wanted: dict[bytes, list[bytes]] = defaultdict(list)
    for msg in server:
        wanted[_digest(normalise(msg))].append(msg)
    have: dict[bytes, list[LocalMessage]] = defaultdict(list)
    for msg in local:
        have[_digest(normalise(msg.data))].append(msg)
    for digest, copies in wanted.items():
        held = have.get(digest, [])
        diff.missing += copies[len(held):]
        diff.duplicated += held[len(copies):]
    cut_here = _Prefixes(diff.missing)  # a cut copy most likely belongs to a message missing here
    for digest, held in have.items():
        if digest in wanted:
            continue
        diff.duplicated += held[1:]
        for msg in held:
            flat = normalise(msg.data)
            cut = cut_here.find(flat) or prefixes.find(flat)
            if cut is not None:
                diff.truncated.append((msg, cut))
            else:
                diff.stale.append(msg)
    return diff


# -- evidence ------------------------------------------------------------------------------------


def _name_local(msg: LocalMessage) -> str:
    return f"{msg.path.parent.name}/{msg.path.name} {describe_message(msg.data)}"


def _listing(items: list, show) -> str:
    shown = "; ".join(show(item) for item in items[:LISTED])
    return shown + (f"; and {len(items) - LISTED} more" if len(items) > LISTED else "")


def _fetch_excerpt(obs, run: int, size: int, probe: bytes, *, last: bool = False) -> str:
    """The transcript window around the FETCH response that carried a message: a response
    announcing a ``size``-byte literal, the one whose bytes hold ``probe`` (the message's
    start); the last such when ``last``. Run ``run`` is searched first, then the others."""
    marker = f"{{{size}}}"
    conns = obs.wire.select(protocol="imap")
    ordered = [c for c in conns if c.run == run] + [c for c in conns if c.run != run]
    if last:
        ordered.reverse()
    fallback = None
    for conn in ordered:
        candidates = [r for r in conn.responses if "FETCH" in r.line and marker in r.line]
        if not candidates:
            continue
        best = _carrier(conn, candidates, probe[:256], last) if probe else None
        if best is not None:
            return excerpt(conn, response=best, secrets=tuple(obs.secrets))
        if fallback is None and conn.run == run:
            fallback = (conn, candidates[-1] if last else candidates[0])
    if fallback is not None:
        return excerpt(fallback[0], response=fallback[1], secrets=tuple(obs.secrets))
    return f"(no FETCH response carried a {marker} literal)"


def _carrier(conn, candidates: list, probe: bytes, last: bool):
    """Of ``candidates`` (response lines, in order), the one whose literal holds ``probe``."""
    data = conn.server_bytes()
    target = data.rfind(probe) if last else data.find(probe)
    if target < 0:
        return None
    best, pos = None, 0
    for resp in candidates:
        first_line = resp.line.split(" ... (", 1)[0].encode("utf-8", "replace")
        found = data.find(first_line, pos)
        if found < 0 or found > target:
            break
        best, pos = resp, found + len(first_line)
    return best


def _server_copy(diff: FolderDiff, msg: LocalMessage) -> bytes:
    flat = normalise(msg.data)
    return next((m for m in diff.server if normalise(m) == flat), msg.data)


def _folder_evidence(obs, diff: FolderDiff, run: int, rule: str, parts: tuple[str, ...],
                     expected: str | None = None) -> Evidence:
    observed = [f"{diff.folder}: {len(diff.local)} local file(s)"]
    wire = ""
    if "missing" in parts and diff.missing:
        cut = {id(server) for _, server in diff.truncated}

        def missing(msg: bytes) -> str:
            return describe_message(msg) + (" (only a truncated copy is stored)" if id(msg) in cut else "")

        observed.append(f"missing {len(diff.missing)}: " + _listing(diff.missing, missing))
        wire = _fetch_excerpt(obs, run, len(diff.missing[0]), diff.missing[0])
    if "duplicated" in parts and diff.duplicated:
        observed.append(f"duplicated {len(diff.duplicated)}: " + _listing(diff.duplicated, _name_local))
        copy = _server_copy(diff, diff.duplicated[0])
        wire = wire or _fetch_excerpt(obs, run, len(copy), copy, last=True)
    if "stale" in parts and diff.stale:
        observed.append(f"stale (not on the server) {len(diff.stale)}: " + _listing(diff.stale, _name_local))
        stale = diff.stale[0].data
        wire = wire or _fetch_excerpt(obs, run, len(stale), stale, last=True)
    if "truncated" in parts and diff.truncated:
        observed.append(f"truncated {len(diff.truncated)}: " + _listing(
            diff.truncated, lambda t: f"{_name_local(t[0])} holds {len(t[0].data)} of the server's "
                                      f"{len(t[1])} bytes of {describe_message(t[1])}"))
        local, server = diff.truncated[0]
        wire = wire or _fetch_excerpt(obs, run, len(server), local.data or server)
    default = f"the server's {len(diff.server)} message(s) after run {run}, once each"
    expected = f"{diff.folder}: {expected or default}"
    return Evidence(rule, expected, "; ".join(observed), wire, run)


def _maildir(obs) -> dict[str, list[LocalMessage]]:
    return read_maildir(obs.maildir)


def _summary(diffs: list[FolderDiff]) -> str:
    return ", ".join(f"{d.folder}: {len(d.local)}/{len(d.server)}" for d in diffs) or "no folders"


# -- checks --------------------------------------------------------------------------------------

RULE_MATCH = "the local store equals the server: nothing missing, duplicated, stale or truncated"
STORE_PARAMS = {"folders": list[str], "run": int, "delimiter": str}


@check("store_matches_server", {**STORE_PARAMS, "allow_missing": int, "clean_stop": list[str]},
       minimum={"allow_missing": 0, "run": 1},
       doc="""Per folder (folders, as the server names them; all folders of both sides by default),
       the Maildir holds each server message as many times as the server does, nothing else, and no
       truncated copy; at most allow_missing messages in all may be missing. Compared with the server
       after the last run, or after run; delimiter is the server's hierarchy delimiter. With
       clean_stop (regexes), a client that instead stopped with a non-zero exit and an error matching
       one of them, having lost and duplicated nothing (stale or not-yet-fetched messages only), is
       judged at SHOULD level: stopping with a clear error is better than corrupting the store.""")
def store_matches_server(obs, level, folders=None, allow_missing=0, run=None, delimiter="/", clean_stop=None):
    server, run_no = server_state(obs, run)
    diffs = compare(server, _maildir(obs), folders=folders, delimiter=delimiter)
    missing = sum(len(d.missing) for d in diffs)
    bad = [d for d in diffs if d.duplicated or d.stale or d.truncated or (d.missing and missing > allow_missing)]
    if bad:
        parts = ("missing", "duplicated", "stale", "truncated") if missing > allow_missing else \
            ("duplicated", "stale", "truncated")
        evidence = [_folder_evidence(obs, d, run_no, RULE_MATCH, parts) for d in bad]
        if clean_stop and _stopped_cleanly(obs, diffs, clean_stop):
            evidence.append(Evidence("a client that cannot converge stops with a clear error and loses nothing",
                                     "the store converges", "the client stopped with a matching error; nothing "
                                     "duplicated or truncated", run=run_no))
            return failed("SHOULD" if level == "MUST" else level, evidence)
        return failed(level, evidence)
    note = f" ({missing} missing, {allow_missing} allowed)" if missing else ""
    return passed(level, [Evidence(RULE_MATCH, "local = server", f"local/server per folder: {_summary(diffs)}{note}",
                                   run=run_no)])


def _stopped_cleanly(obs, diffs: list, patterns: list[str]) -> bool:
    import re

    last = obs.outcomes[-1] if obs.outcomes else None
    if last is None or last.killed_at_deadline or not last.exit_status or last.exit_status < 0:
        return False
    said = f"{last.stderr}\n{last.stdout}\n{last.error or ''}"
    if not any(re.search(p, said, re.IGNORECASE) for p in patterns):
        return False
    return not any(d.duplicated or d.truncated for d in diffs)


RULE_DUPLICATES = "no message is stored more often than the server holds it"


@check("no_duplicates", STORE_PARAMS, minimum={"run": 1}, doc="""No folder of the Maildir holds a message
       (by content, line endings normalised) more times than the server does; content the server
       does not hold counts as a duplicate from its second copy.""")
def no_duplicates(obs, level, folders=None, run=None, delimiter="/"):
    return _no_kind(obs, level, "duplicated", RULE_DUPLICATES, "each message at most as often as the server holds it",
                    "no duplicates", folders, run, delimiter)


RULE_TRUNCATED = "no truncated message is ever stored"


@check("no_truncated_messages", STORE_PARAMS, minimum={"run": 1}, doc="""No Maildir file is a strict
       prefix of a server message (line endings normalised): the client never stores a message
       cut short by RFC822.SIZE, a reset or a partial FETCH.""")
def no_truncated_messages(obs, level, folders=None, run=None, delimiter="/"):
    return _no_kind(obs, level, "truncated", RULE_TRUNCATED, "no file that is a strict prefix of a server message",
                    "no truncated file", folders, run, delimiter)


def _no_kind(obs, level, kind: str, rule: str, expected: str, fine: str, folders, run, delimiter):
    """A store check that fails on one kind of difference only (duplicated, truncated)."""
    server, run_no = server_state(obs, run)
    diffs = compare(server, _maildir(obs), folders=folders, delimiter=delimiter)
    bad = [d for d in diffs if getattr(d, kind)]
    if bad:
        return failed(level, [_folder_evidence(obs, d, run_no, rule, (kind,), expected) for d in bad])
    return passed(level, [Evidence(rule, fine, f"local/server: {_summary(diffs)}", run=run_no)])


RULE_EXACT = "every message is stored byte for byte as the server served it"


@check("byte_exact", STORE_PARAMS, minimum={"run": 1}, doc="""Every server message of the folders (all
       server folders by default) has a local copy with identical bytes, without any normalisation:
       line endings, NUL bytes, 8-bit headers and broken MIME kept.""")
def byte_exact(obs, level, folders=None, run=None, delimiter="/"):
    server, run_no = server_state(obs, run)
    local = _maildir(obs)
    known_folders(server, folders)
    names = list(server) if folders is None else folders
    evidence, total = [], 0
    for name in names:
        key = local_key(name, delimiter)
        files = local.get(key, [])
        have: dict[bytes, int] = defaultdict(int)
        for msg in files:
            have[msg.data] += 1
        inexact = []
        for msg in server.get(name, []):
            total += 1
            if have.get(msg, 0) > 0:
                have[msg] -= 1
            else:
                inexact.append(msg)
        if inexact:
            evidence.append(Evidence(
                RULE_EXACT, f"{key}: {len(server.get(name, []))} message(s) byte-identical to the server's",
                f"{key}: {len(inexact)} not stored exactly: " + _listing(inexact, lambda m: _inexact(m, files)),
                _fetch_excerpt(obs, run_no, len(inexact[0]), inexact[0]), run_no))
    if evidence:
        return failed(level, evidence)
    return passed(level, [Evidence(RULE_EXACT, "byte-identical copies", f"{total} message(s) stored exactly",
                                   run=run_no)])


def _inexact(msg: bytes, files: list[LocalMessage]) -> str:
    """Why no local file equals ``msg``: altered line endings, a difference, or no copy at all."""
    named = describe_message(msg)
    flat = normalise(msg)
    for f in files:
        if f.data != msg and normalise(f.data) == flat:
            return f"{named}: line endings changed in {f.path.name} ({len(f.data)} bytes stored)"
    msgid = header(msg, "Message-ID")
    for f in files:
        if f.data != msg and msgid is not None and header(f.data, "Message-ID") == msgid:
            at = first_difference(msg, f.data)
            return f"{named}: {f.path.name} ({len(f.data)} bytes) differs from byte {at}"
    return f"{named}: no local copy"
