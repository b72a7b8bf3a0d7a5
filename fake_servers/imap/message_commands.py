"""Selected-state commands (RFC 3501 §6.4; UIDPLUS, MOVE, UNSELECT, CONDSTORE basics)."""

from __future__ import annotations

from .config import SELECT_FLAGS
from .encode import flag_list
from .fetch import FetchItems, FetchSyntaxError, UnknownCTE, parse_fetch_items, render_fetch
from .mailbox_commands import mailbox_name
from .parser import Command
from .responses import Send, Stream, status_untagged, tagged, untagged
from .search import BadCharset, SearchSyntaxError, parse_search
from .sequence import compact, parse_sequence_set
from .session import SELECTED, BadCommand, ImapSession, args, atom, command, flags_arg

SEEN = "\\Seen"
STREAM_ABOVE = 32  # FETCH results larger than this are made lazily, as the socket drains


def targets(s: ImapSession, set_arg, *, uid: bool):
    """(seq, message) pairs a sequence-set argument names, in the client's numbering."""
    view = s.view
    try:
        seqset = parse_sequence_set(atom(set_arg, "sequence set"))
    except ValueError as exc:
        raise BadCommand(f"Invalid messageset: {exc}") from exc
    pairs = []
    if uid:
        for u in seqset.resolve_uids(view.uids):
            msg = view.folder.by_uid(u)
            if msg is not None:
                pairs.append((view.seq_of(u), msg))
        return pairs
    if seqset.exceeds(len(view)):
        raise BadCommand("Invalid messageset")
    for seq in seqset.resolve_seq(len(view)):
        msg = view.message_at(seq)
        if msg is not None:
            pairs.append((seq, msg))
    return pairs


def _modifier(value, name: str) -> int | None:
    """Parse ``(NAME n)`` command modifiers (CHANGEDSINCE, UNCHANGEDSINCE)."""
    if not isinstance(value, list) or len(value) != 2 or atom(value[0]).upper() != name:
        raise BadCommand(f"Expected ({name} <mod-sequence>).")
    number = atom(value[1], name)
    if not number.isdigit():
        raise BadCommand(f"Invalid {name} value.")
    return int(number)


# -- FETCH ------------------------------------------------------------------------------------


@command("FETCH", SELECTED, uid=True)
def fetch(s: ImapSession, cmd: Command):
    parts = args(cmd, 2, 3)
    try:
        items = parse_fetch_items(parts[1])
    except FetchSyntaxError as exc:
        raise BadCommand(str(exc)) from exc
    changedsince = _modifier(parts[2], "CHANGEDSINCE") if len(parts) == 3 else None
    if changedsince is not None:
        items = FetchItems([*items, *parse_fetch_items("MODSEQ")])  # RFC 7162 §3.1.4.1
    out: list = []
    if changedsince is not None or any(item.kind == "MODSEQ" for item in items):
        out += s.enable_condstore()
    view = s.view
    sets_seen = not view.read_only and any(item.sets_seen for item in items)
    shows_flags = any(item.kind == "FLAGS" for item in items)
    shows_modseq = any(item.kind == "MODSEQ" for item in items)
    pairs = targets(s, parts[0], uid=cmd.uid)

    def responses():
        for seq, msg in pairs:
            if changedsince is not None and msg.modseq <= changedsince:
                continue
            # RFC 3501 §6.4.5: the implied \Seen SHOULD be shown as part of the FETCH response.
            seen_now = sets_seen and SEEN not in msg.flags and view.folder.set_flags(msg, msg.flags | {SEEN})
            data = render_fetch(msg, seq, items, uid_command=cmd.uid, add_flags=seen_now)
            yield Send(data, "untagged")
            if (shows_flags or seen_now) and (shows_modseq or not view.condstore):
                view.reported(msg)

    if len(pairs) > STREAM_ABOVE and not any(item.kind.startswith("BINARY") for item in items):
        out.append(Stream(responses()))  # only BINARY can fail midway (UNKNOWN-CTE)
    else:
        try:
            out.extend(responses())
        except UnknownCTE:
            return [*out, tagged(cmd.tag, "NO", "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding.")]
    out.append(tagged(cmd.tag, "OK", "Fetch completed."))
    return s._with_updates(cmd, out, allow_expunge=cmd.uid)


# -- STORE ------------------------------------------------------------------------------------


@command("STORE", SELECTED, uid=True)
def store(s: ImapSession, cmd: Command):
    parts = list(args(cmd, 3, 100))
    set_arg = parts.pop(0)
    unchangedsince = None
    if isinstance(parts[0], list):
        unchangedsince = _modifier(parts.pop(0), "UNCHANGEDSINCE")
    if len(parts) < 2:
        raise BadCommand("Missing arguments.")
    item = atom(parts.pop(0), "store item").upper()
    silent = item.endswith(".SILENT")
    op = item.removesuffix(".SILENT")
    if op not in ("FLAGS", "+FLAGS", "-FLAGS"):
        raise BadCommand(f"Invalid STORE item {item}")
    flags = set(flags_arg(parts[0] if len(parts) == 1 and isinstance(parts[0], list) else parts))
    view = s.view
    pairs = targets(s, set_arg, uid=cmd.uid)
    if view.read_only:
        return [tagged(cmd.tag, "NO", "Mailbox is read-only.")]
    out: list = s.enable_condstore() if unchangedsince is not None else []
    new_keywords = {f for f in flags if not f.startswith("\\")} - view.keywords if op != "-FLAGS" and pairs else set()
    if new_keywords:  # RFC 3501 §7.2.6: FLAGS lists what applies to the mailbox, now one more
        view.keywords |= new_keywords
        keywords = sorted(view.keywords)
        out.append(untagged(f"FLAGS ({' '.join((*SELECT_FLAGS, *keywords))})"))
        out.append(status_untagged("OK", f"[PERMANENTFLAGS ({' '.join((*SELECT_FLAGS, *keywords, chr(92) + '*'))})] "
                                         "Flags permitted."))
    modified = []
    for seq, msg in pairs:
        if unchangedsince is not None and msg.modseq > unchangedsince:
            modified.append(msg.uid if cmd.uid else seq)
            continue
        new = flags if op == "FLAGS" else (msg.flags | flags if op == "+FLAGS" else msg.flags - flags)
        view.folder.set_flags(msg, new)
        view.reported(msg)
        items = [b"UID %d" % msg.uid] if cmd.uid else []
        if not silent:
            items.append(b"FLAGS " + flag_list(msg.flags))
        if view.condstore:
            # RFC 7162 §3.1.3: with CONDSTORE on, even .SILENT stores answer with the MODSEQ.
            items.append(b"MODSEQ (%d)" % msg.modseq)
        if not silent or view.condstore:
            out.append(untagged(b"%d FETCH (" % seq + b" ".join(items) + b")"))
    if modified:
        out.append(tagged(cmd.tag, "OK", f"[MODIFIED {compact(modified)}] Conditional store failed."))
    else:
        out.append(tagged(cmd.tag, "OK", "Store completed."))
    return s._with_updates(cmd, out, allow_expunge=cmd.uid)


# -- SEARCH -----------------------------------------------------------------------------------


@command("SEARCH", SELECTED, uid=True)
def search(s: ImapSession, cmd: Command):
    try:
        query = parse_search(list(cmd.args), utf8_enabled=s.utf8)
    except BadCharset:
        return [tagged(cmd.tag, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset.")]
    except SearchSyntaxError as exc:
        raise BadCommand(str(exc)) from exc
    if query.return_options is not None:  # ESEARCH is not advertised
        raise BadCommand("SEARCH RETURN requires ESEARCH, which this server does not offer.")
    if query.has_not and s.config.search_refuses_not:
        return [tagged(cmd.tag, "BAD", "[CLIENTBUG] SEARCH NOT is not supported.")]
    enabled = s.enable_condstore() if query.uses_modseq else []
    view = s.view
    largest_uid = view.largest_uid()
    found = []
    modseq = 0
    for seq, uid in enumerate(view.uids, start=1):
        msg = view.folder.by_uid(uid)
        if msg is not None and query.matches(msg, seq, largest_seq=len(view), largest_uid=largest_uid):
            found.append(uid if cmd.uid else seq)
            modseq = max(modseq, msg.modseq)
    line = b"SEARCH" + b"".join(b" %d" % n for n in found)
    if query.uses_modseq and found:
        line += b" (MODSEQ %d)" % modseq
    out = [*enabled, untagged(line), tagged(cmd.tag, "OK", "Search completed.")]
    return s._with_updates(cmd, out, allow_expunge=cmd.uid)


# -- COPY / MOVE ------------------------------------------------------------------------------


def _copy(s: ImapSession, cmd: Command, move: bool):
    set_arg, target_arg = args(cmd, 2)
    name = mailbox_name(s, target_arg)
    pairs = targets(s, set_arg, uid=cmd.uid)
    target = s.account.folder(name)
    if target is None:
        return [tagged(cmd.tag, "NO", f"[TRYCREATE] Mailbox doesn't exist: {name}")]
    if move and s.view.read_only:
        return [tagged(cmd.tag, "NO", "Mailbox is read-only.")]
    if not pairs:
        return s._with_updates(cmd, [tagged(cmd.tag, "OK", "No messages found.")], allow_expunge=cmd.uid or move)
    source_uids, new_uids = [], []
    for _, msg in pairs:
        copied = target.append_copy(msg)
        source_uids.append(msg.uid)
        new_uids.append(copied.uid)
    code = f"[COPYUID {target.uidvalidity} {compact(source_uids)} {compact(new_uids)}]"
    if not move:
        return s._with_updates(cmd, [tagged(cmd.tag, "OK", f"{code} Copy completed.")], allow_expunge=cmd.uid)
    s.view.folder.expunge(source_uids)
    return [status_untagged("OK", f"{code} Moved UIDs."), *s.pending_updates(),
            tagged(cmd.tag, "OK", "Move completed.")]


@command("COPY", SELECTED, uid=True)
def copy(s: ImapSession, cmd: Command):
    return _copy(s, cmd, move=False)


@command("MOVE", SELECTED, uid=True)
def move(s: ImapSession, cmd: Command):
    return _copy(s, cmd, move=True)


# -- EXPUNGE / CLOSE / UNSELECT ---------------------------------------------------------------


@command("EXPUNGE", SELECTED, uid=True)
def expunge(s: ImapSession, cmd: Command):
    view = s.view
    if cmd.uid:
        (set_arg,) = args(cmd, 1)
        chosen = [msg.uid for _, msg in targets(s, set_arg, uid=True) if "\\Deleted" in msg.flags]
    else:
        args(cmd, 0)
        chosen = [msg.uid for msg in view.folder.messages if "\\Deleted" in msg.flags]
    if view.read_only:
        return [tagged(cmd.tag, "NO", "Mailbox is read-only.")]
    view.folder.expunge(chosen)
    return [*s.pending_updates(), tagged(cmd.tag, "OK", "Expunge completed.")]


@command("CLOSE", SELECTED)
def close(s: ImapSession, cmd: Command):
    args(cmd, 0)
    view = s.view
    if not view.read_only:
        view.folder.expunge()
    s.select(None)
    return [tagged(cmd.tag, "OK", "Close completed.")]


@command("UNSELECT", SELECTED)
def unselect(s: ImapSession, cmd: Command):
    args(cmd, 0)
    s.select(None)
    return [tagged(cmd.tag, "OK", "Unselect completed.")]
