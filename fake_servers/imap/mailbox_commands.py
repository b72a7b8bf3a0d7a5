"""Authenticated-state commands (RFC 3501 §6.3; LIST-EXTENDED, SPECIAL-USE, STATUS, IDLE, APPEND)."""

from __future__ import annotations

import re

from ..mailstore import Account, Folder
from . import mutf7
from .config import SELECT_FLAGS
from .encode import astring as encode_astring
from .encode import parse_date_time
from .parser import Command, String
from .responses import continuation, status_untagged, tagged, untagged
from .session import AUTH, BadCommand, ImapSession, Refused, args, astring, atom, command, flags_arg
from .view import SelectedView

# -- mailbox names ----------------------------------------------------------------------------


def mailbox_name(s: ImapSession, value) -> str:
    """The folder name a client means: modified UTF-7, or UTF-8 after ENABLE UTF8=ACCEPT.

    Raw UTF-8 without UTF8=ACCEPT is refused, as Dovecot refuses it: a client that skips the
    modified UTF-7 encoding must not pass here and fail against real servers.
    """
    raw = astring(value, "mailbox name")
    if s.utf8:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("Mailbox name is not valid UTF-8") from None
    else:
        try:
            name = mutf7.decode(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise Refused("Mailbox name is not valid mUTF-7") from None
    return "INBOX" if name.upper() == "INBOX" else name


def encode_name(s: ImapSession, name: str) -> bytes:
    if s.utf8:
        return encode_astring(name.encode("utf-8"), utf8=True)
    return encode_astring(mutf7.encode(name).encode("ascii"))


def _folder_or_no(s: ImapSession, cmd: Command, name: str):
    folder = s.account.folder(name) if s.account else None
    if folder is None:
        return None, [tagged(cmd.tag, "NO", f"[NONEXISTENT] Mailbox doesn't exist: {name}")]
    return folder, None


# -- SELECT / EXAMINE -------------------------------------------------------------------------


def _select(s: ImapSession, cmd: Command, read_only: bool):
    parts = args(cmd, 1, 2)
    name = mailbox_name(s, parts[0])
    condstore = "CONDSTORE" in s.enabled
    if len(parts) == 2:
        params = parts[1] if isinstance(parts[1], list) else [parts[1]]
        for p in params:
            if atom(p, "SELECT parameter").upper() == "CONDSTORE":
                condstore = True
                s.enabled.add("CONDSTORE")
            else:
                raise BadCommand(f"Unknown SELECT parameter {p}")
    s.select(None)
    folder, refusal = _folder_or_no(s, cmd, name)
    if refusal:
        return refusal
    view = SelectedView(folder, read_only=read_only, condstore=condstore)
    s.select(view)
    keywords = sorted({f for m in folder.messages for f in m.flags if not f.startswith("\\")}) if len(folder) < 50000 else []
    view.keywords = set(keywords)
    flags = " ".join((*SELECT_FLAGS, *keywords))
    permanent = "" if read_only else " ".join((*SELECT_FLAGS, *keywords, "\\*"))
    out = [
        untagged(f"FLAGS ({flags})"),
        status_untagged("OK", f"[PERMANENTFLAGS ({permanent})] " + ("Read-only mailbox." if read_only else "Flags permitted.")),
        untagged(f"{len(view)} EXISTS"),
        untagged("0 RECENT"),
    ]
    unseen = folder.first_unseen()
    if unseen is not None:
        out.append(status_untagged("OK", f"[UNSEEN {unseen}] First unseen."))
    out.append(status_untagged("OK", f"[UIDVALIDITY {folder.uidvalidity}] UIDs valid"))
    if s.config.send_uidnext:
        out.append(status_untagged("OK", f"[UIDNEXT {folder.uidnext}] Predicted next UID"))
    if condstore:
        out.append(status_untagged("OK", f"[HIGHESTMODSEQ {folder.highest_modseq}] Highest"))
    mode = "READ-ONLY" if read_only else "READ-WRITE"
    out.append(tagged(cmd.tag, "OK", f"[{mode}] {'Examine' if read_only else 'Select'} completed."))
    return out


@command("SELECT", AUTH)
def select(s: ImapSession, cmd: Command):
    return _select(s, cmd, read_only=False)


@command("EXAMINE", AUTH)
def examine(s: ImapSession, cmd: Command):
    return _select(s, cmd, read_only=True)


# -- CREATE / DELETE / RENAME / SUBSCRIBE -------------------------------------------------------


@command("CREATE", AUTH)
def create(s: ImapSession, cmd: Command):
    parts = args(cmd, 1, 2)
    name = mailbox_name(s, parts[0]).rstrip(s.account.delimiter)
    if not name:
        raise BadCommand("Empty mailbox name.")
    if s.account.folder(name) is not None:
        return [tagged(cmd.tag, "NO", "[ALREADYEXISTS] Mailbox already exists")]
    use = []
    if len(parts) == 2 and isinstance(parts[1], list) and len(parts[1]) == 2 and str(parts[1][0]).upper() == "USE":
        use = [str(a) for a in parts[1][1]] if isinstance(parts[1][1], list) else []
    try:
        s.account.add_folder(name, use, subscribed=False)  # CREATE does not subscribe (RFC 3501 §6.3.3)
    except ValueError as exc:
        return [tagged(cmd.tag, "NO", f"[USEATTR] {exc}")]
    return s._with_updates(cmd, [tagged(cmd.tag, "OK", "Create completed.")])


@command("DELETE", AUTH)
def delete(s: ImapSession, cmd: Command):
    (value,) = args(cmd, 1)
    name = mailbox_name(s, value)
    if name == "INBOX":
        return [tagged(cmd.tag, "NO", "INBOX can't be deleted.")]
    folder, refusal = _folder_or_no(s, cmd, name)
    if refusal:
        return refusal
    if s.view is not None and s.view.folder is folder:
        s.select(None)
    s.account.delete_folder(name)
    return s._with_updates(cmd, [tagged(cmd.tag, "OK", "Delete completed.")])


@command("RENAME", AUTH)
def rename(s: ImapSession, cmd: Command):
    """RFC 3501 §6.3.5: inferior names move along; renaming INBOX moves its messages into a
    new folder and leaves INBOX (and INBOX's inferiors) in place."""
    old, new = args(cmd, 2)
    old_name, new_name = mailbox_name(s, old), mailbox_name(s, new)
    account = s.account
    d = account.delimiter
    if account.folder(old_name) is None and not account.inferiors(old_name):
        return [tagged(cmd.tag, "NO", f"[NONEXISTENT] Mailbox doesn't exist: {old_name}")]
    if account.folder(new_name) is not None or account.inferiors(new_name):
        return [tagged(cmd.tag, "NO", "[ALREADYEXISTS] Target mailbox already exists")]
    if new_name.startswith(old_name + d) and old_name != "INBOX":
        return [tagged(cmd.tag, "NO", "Can't rename mailbox under its own child.")]
    account.rename_folder(old_name, new_name)
    return s._with_updates(cmd, [tagged(cmd.tag, "OK", "Rename completed.")])


def _subscription(s: ImapSession, cmd: Command, subscribed: bool):
    (value,) = args(cmd, 1)
    name = mailbox_name(s, value)
    folder = s.account.folder(name)
    if folder is not None:
        folder.subscribed = subscribed
    elif subscribed:
        return [tagged(cmd.tag, "NO", f"[NONEXISTENT] Mailbox doesn't exist: {name}")]
    return s._with_updates(cmd, [tagged(cmd.tag, "OK", f"{cmd.name.capitalize()} completed.")])


@command("SUBSCRIBE", AUTH)
def subscribe(s: ImapSession, cmd: Command):
    return _subscription(s, cmd, True)


@command("UNSUBSCRIBE", AUTH)
def unsubscribe(s: ImapSession, cmd: Command):
    return _subscription(s, cmd, False)


# -- LIST / LSUB ----------------------------------------------------------------------------------


def _pattern_regex(pattern: str, delimiter: str) -> re.Pattern:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(delimiter)}]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _pattern_text(s: ImapSession, value) -> str:
    raw = astring(value, "pattern")
    try:
        if s.utf8 or not raw.isascii():
            return raw.decode("utf-8")
        return mutf7.decode(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadCommand(f"Invalid mailbox pattern: {exc}") from exc


def _all_names(account: Account) -> dict[str, Folder | None]:
    """Existing folders plus the parents they imply (which are not selectable)."""
    names: dict[str, Folder | None] = dict(account.folders)
    d = account.delimiter
    for name in list(account.folders):
        parts = name.split(d)
        for i in range(1, len(parts)):
            names.setdefault(d.join(parts[:i]), None)
    return names


def _list(s: ImapSession, cmd: Command, lsub: bool):
    items = list(cmd.args)
    selection: set[str] = set()
    if not lsub and items and isinstance(items[0], list):
        selection = {atom(a).upper() for a in items.pop(0)}
    returns: set[str] = set()
    status_items: list[str] = []
    if not lsub and len(items) >= 3 and isinstance(items[-2], str) and str(items[-2]).upper() == "RETURN":
        spec = items.pop()
        items.pop()
        if not isinstance(spec, list):
            raise BadCommand("RETURN options must be a list.")
        i = 0
        while i < len(spec):
            opt = atom(spec[i]).upper()
            if opt == "STATUS":
                i += 1
                if i >= len(spec) or not isinstance(spec[i], list):
                    raise BadCommand("STATUS return option needs a list.")
                status_items = [atom(x).upper() for x in spec[i]]
            else:
                returns.add(opt)
            i += 1
    if len(items) != 2:
        raise BadCommand("Missing arguments." if len(items) < 2 else "Too many arguments.")
    recursive = "RECURSIVEMATCH" in selection
    if recursive and not selection - {"RECURSIVEMATCH"}:  # RFC 5258 §3: never on its own
        raise BadCommand("RECURSIVEMATCH needs another selection option.")
    reference = mailbox_name(s, items[0]) if astring(items[0]) else ""
    patterns = items[1] if isinstance(items[1], list) else [items[1]]
    account = s.account
    d = account.delimiter
    out = []
    if not lsub and len(patterns) == 1 and astring(patterns[0]) == b"":
        out.append(untagged(f'LIST (\\Noselect) "{d}" ""'))
        return s._with_updates(cmd, out + [tagged(cmd.tag, "OK", "List completed.")])
    names = _all_names(account)
    regexes = []
    for p in patterns:
        full = reference + _pattern_text(s, p)
        if full[:5].upper() == "INBOX":
            full = "INBOX" + full[5:]  # INBOX is case-insensitive
        regexes.append(_pattern_regex(full, d))
    subscriptions = [n for n, f in names.items() if f is not None and f.subscribed]
    for name in sorted(names, key=lambda n: (n != "INBOX", n)):
        folder = names[name]
        if not any(r.match(name) for r in regexes):
            continue
        subscribed = folder is not None and folder.subscribed
        stands_in = False
        if lsub and not subscribed:
            # RFC 3501 §6.3.9: with "%", LSUB names the parent of a subscribed folder that the
            # pattern cut off, flagged \Noselect.
            stands_in = any(sub.startswith(name + d) and not any(r.match(sub) for r in regexes)
                            for sub in subscriptions)
            if not stands_in:
                continue
        # RFC 5258 §3.5: a name whose unmatched descendant is subscribed is listed with CHILDINFO.
        childinfo = recursive and "SUBSCRIBED" in selection and any(
            sub.startswith(name + d) and not any(r.match(sub) for r in regexes) for sub in subscriptions)
        if "SUBSCRIBED" in selection and not subscribed and not childinfo:
            continue
        if "SPECIAL-USE" in selection and (folder is None or not folder.special_use):
            continue
        attrs = []
        if folder is None or stands_in:
            attrs.append("\\NonExistent" if "SUBSCRIBED" in selection else "\\Noselect")
        children = any(other.startswith(name + d) for other in names)
        attrs.append("\\HasChildren" if children else "\\HasNoChildren")
        if folder is not None and (not returns or "SPECIAL-USE" in returns or not selection):
            attrs.extend(sorted(folder.special_use))
        if "SUBSCRIBED" in returns or "SUBSCRIBED" in selection:
            if subscribed:
                attrs.append("\\Subscribed")
        line = f"{'LSUB' if lsub else 'LIST'} ({' '.join(attrs)}) \"{d}\" ".encode() + encode_name(s, name)
        if childinfo:
            line += b' (CHILDINFO ("SUBSCRIBED"))'
        out.append(untagged(line))
        if status_items and folder is not None:
            out.append(untagged(_status_line(s, name, folder, status_items)))
    return s._with_updates(cmd, out + [tagged(cmd.tag, "OK", f"{'Lsub' if lsub else 'List'} completed.")])


@command("LIST", AUTH)
def list_(s: ImapSession, cmd: Command):
    return _list(s, cmd, lsub=False)


@command("LSUB", AUTH)
def lsub(s: ImapSession, cmd: Command):
    return _list(s, cmd, lsub=True)


# -- STATUS ------------------------------------------------------------------------------------

STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE")


def _status_line(s: ImapSession, name: str, folder: Folder, items: list[str]) -> bytes:
    values = []
    for item in items:
        if item == "MESSAGES":
            values.append(f"MESSAGES {len(folder)}")
        elif item == "RECENT":
            values.append("RECENT 0")
        elif item == "UIDNEXT":
            values.append(f"UIDNEXT {folder.uidnext}")
        elif item == "UIDVALIDITY":
            values.append(f"UIDVALIDITY {folder.uidvalidity}")
        elif item == "UNSEEN":
            values.append(f"UNSEEN {folder.count(chr(92) + 'Seen', present=False)}")
        elif item == "HIGHESTMODSEQ":
            values.append(f"HIGHESTMODSEQ {folder.highest_modseq}")
        elif item == "SIZE":
            values.append(f"SIZE {sum(m.size for m in folder.messages)}")
        else:
            raise BadCommand(f"Invalid status item {item}")
    return b"STATUS " + encode_name(s, name) + f" ({' '.join(values)})".encode()


@command("STATUS", AUTH)
def status(s: ImapSession, cmd: Command):
    value, items = args(cmd, 2)
    if not isinstance(items, list) or not items:
        raise BadCommand("Status items must be a list.")
    wanted = [atom(i, "status item").upper() for i in items]
    name = mailbox_name(s, value)
    folder, refusal = _folder_or_no(s, cmd, name)
    if refusal:
        return refusal
    enabled = s.enable_condstore() if "HIGHESTMODSEQ" in wanted else []
    line = _status_line(s, name, folder, wanted)
    return s._with_updates(cmd, [*enabled, untagged(line), tagged(cmd.tag, "OK", "Status completed.")])


# -- APPEND --------------------------------------------------------------------------------------


@command("APPEND", AUTH)
def append(s: ImapSession, cmd: Command):
    parts = list(args(cmd, 2, 4))
    message = parts.pop()
    if not isinstance(message, String) or not message.literal:
        raise BadCommand("Message must be a literal.")
    name = mailbox_name(s, parts.pop(0))
    flags: list[str] = []
    date = None
    for extra in parts:
        if isinstance(extra, list):
            flags = flags_arg(extra)
        elif isinstance(extra, String):
            try:
                date = parse_date_time(bytes(extra).decode("ascii"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadCommand("Invalid date-time.") from exc
        else:
            raise BadCommand("Invalid APPEND arguments.")
    folder = s.account.folder(name)
    if folder is None:
        return [tagged(cmd.tag, "NO", f"[TRYCREATE] Mailbox doesn't exist: {name}")]
    if len(message) > s.config.max_append_size:
        return [tagged(cmd.tag, "NO", "[TOOBIG] Message too large.")]
    msg = folder.append(bytes(message), flags=flags, internal_date=date)
    return s._with_updates(cmd, [tagged(cmd.tag, "OK", f"[APPENDUID {folder.uidvalidity} {msg.uid}] Append completed.")])


# -- IDLE ------------------------------------------------------------------------------------------


@command("IDLE", AUTH)
def idle(s: ImapSession, cmd: Command):
    args(cmd, 0)
    out = s._with_updates(cmd, [continuation(b"idling")])
    s.start_idle(cmd.tag)
    return out


def idle_updates(s: ImapSession):
    """Updates pushed while the client idles (the I/O layer calls this on folder changes)."""
    if s.idle_tag is None:
        return []
    return s.pending_updates(allow_expunge=True)

