"""A private, throwaway Dovecot 2.3 instance: the reference IMAP server for differential tests.

Layout of one instance:

* ``directory`` (the caller's, e.g. pytest's ``tmp_path``) keeps ``dovecot.conf`` and
  ``dovecot.log`` so both survive the run for post-mortems.
* A runtime directory made with ``mkdtemp`` holds the sockets (``base_dir``), ``state_dir``,
  the passwd-file and the users' homes, and is removed on stop. It lives apart because
  Dovecot's unprivileged processes (``dovenull``, ``dovecot``, the ``mail`` user) must
  traverse to it, which pytest's 0700 temporary directories forbid, and because UNIX socket
  paths are limited to 108 bytes. It goes on tmpfs (``/dev/shm``) when that has room, since
  creating files on a disk-backed ``/tmp`` can be 30 times slower; ``$MAILCONFORM_DOVECOT_TMP``
  or the ``runtime_parent`` argument override the choice.

Mail is served with the ``mail`` system user's uid/gid from ``~/Maildir`` (``LAYOUT=fs`` by
default, so folders are plain nested directories), mailbox names are stored on disk in UTF-8
(the ``UTF-8`` option of ``mail_location``) rather than modified UTF-7, and the hierarchy
delimiter clients see is ``/``.

Deviations from a stock Dovecot, all for test speed and none visible in protocol bytes:
failed logins answer within 0.5 s (``auth_failure_delay = 0``) and add no per-IP penalty,
and ``mail_fsync = never``.
"""

from __future__ import annotations

import collections
import grp
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from datetime import datetime
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# After SIGTERM the master polls in 100 ms steps until its bookkeeping says every child is
# gone, which occasionally takes seconds after the children have in fact exited.
MASTER_GRACE = 0.5

SPECIAL_USE = {"Sent": r"\Sent", "Drafts": r"\Drafts", "Trash": r"\Trash",
               "Junk": r"\Junk", "Archive": r"\Archive"}

# Maildir info letters for the IMAP system flags (\Recent is session state, not storable).
FLAG_LETTERS = {r"\draft": "D", r"\flagged": "F", r"\answered": "R", r"\seen": "S",
                r"\deleted": "T"}

LAYOUTS = ("fs", "maildir++")


class DovecotError(RuntimeError):
    """Dovecot did not start, stop or answer as expected; the message carries the log tail."""


def unavailable_reason() -> str:
    """Why a private Dovecot cannot be started here ('' when it can)."""
    if not os.path.exists(DOVECOT):
        return f"dovecot not installed ({DOVECOT} missing; apt-get install dovecot-imapd)"
    if not os.path.exists(DOVEADM):
        return f"doveadm not installed ({DOVEADM} missing; apt-get install dovecot-core)"
    if os.geteuid() != 0:
        return "starting Dovecot needs root (it switches to dovenull/dovecot/mail users)"
    for user in ("mail", "dovenull", "dovecot"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"system user {user!r} missing (created by the dovecot-core package)"
    return ""


def available() -> bool:
    """True when a private Dovecot can be started (binary present, running as root)."""
    return not unavailable_reason()


def default_runtime_parent() -> str:
    """Where runtime directories go: the env override, else tmpfs with 1 GiB free, else /tmp."""
    chosen = os.environ.get("MAILCONFORM_DOVECOT_TMP")
    if chosen:
        return chosen
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= 1 << 30 and os.access("/dev/shm", os.W_OK):
            return "/dev/shm"
    except OSError:
        pass
    return "/tmp"


def free_port() -> int:
    """A loopback port that was free a moment ago (a clash is retried by ``start``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fold_user(user: str) -> str:
    """The name Dovecot uses after ``auth_username_format = %Lu`` (ASCII-only lower-casing)."""
    return "".join(c.lower() if c.isascii() else c for c in user)


class Dovecot:
    """A private Dovecot for one test or benchmark; use as a context manager.

    ``users`` maps login names (UTF-8 allowed) to passwords. ``tls`` is ``None`` or a
    ``(cert_pem, key_pem)`` pair, which enables STARTTLS on ``port`` and implicit TLS on
    ``tls_port``. ``plaintext_auth=False`` sets ``disable_plaintext_auth = yes``; note that
    Dovecot treats a connection whose remote and local address are equal (127.0.0.1 to
    127.0.0.1) as secured, so clients must connect from e.g. 127.0.0.2 to see LOGINDISABLED.
    ``extra_config`` is appended verbatim, so it can override anything above it.
    ``layout`` is ``"fs"`` (folders as nested directories) or ``"maildir++"`` (``.a.b``).
    """

    host = "127.0.0.1"

    def __init__(self, directory: str | os.PathLike, users: dict[str, str] | None = None, *,
                 tls: tuple[str | os.PathLike, str | os.PathLike] | None = None,
                 plaintext_auth: bool = True, layout: str = "fs", extra_config: str = "",
                 runtime_parent: str | None = None):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        self.directory = Path(directory)
        self.users = dict(users or {})
        for user, password in self.users.items():
            _check_credentials(user, password)
        self._folded = {fold_user(u) for u in self.users}
        if len(self._folded) != len(self.users):
            raise ValueError("user names must differ in more than ASCII case")
        self.tls = tls
        self.plaintext_auth = plaintext_auth
        self.layout = layout
        self.extra_config = extra_config
        self.conf = self.directory / "dovecot.conf"
        self.log = self.directory / "dovecot.log"
        self.port: int | None = None
        self.tls_port: int | None = None
        self.greeting = b""
        self.process: subprocess.Popen | None = None
        mail = pwd.getpwnam("mail")
        self.uid, self.gid = mail.pw_uid, mail.pw_gid
        self._tail: collections.deque[bytes] = collections.deque(maxlen=60)
        self._log_changed = threading.Condition()
        self._lines = 0
        self._up = self._eof = False
        self._kill_at_exit = None
        self._reader: threading.Thread | None = None
        self._seq = 0
        self._folder_dirs: dict[tuple[str, str], str] = {}
        self.runtime = Path(tempfile.mkdtemp(
            prefix="dovecot-", dir=runtime_parent or default_runtime_parent()))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.runtime, True)
        self._prepare()

    # -- set-up ------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the runtime tree, passwd-file and homes (all before Dovecot sees them)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.runtime, 0o755)  # unprivileged Dovecot processes must traverse it
        (self.runtime / "home").mkdir(mode=0o755)
        (self.runtime / "state").mkdir(mode=0o750)
        passwd = self.runtime / "passwd"
        passwd.write_bytes(b"".join(
            f"{fold_user(u)}:{{PLAIN}}{p}::::::\n".encode() for u, p in self.users.items()))
        os.chown(passwd, 0, grp.getgrnam("dovecot").gr_gid)  # read by the auth process
        os.chmod(passwd, 0o640)
        if self.tls:
            for name, src in zip(("cert.pem", "key.pem"), self.tls):
                shutil.copyfile(src, self.runtime / name)  # fixed, quoting-free paths
            os.chmod(self.runtime / "key.pem", 0o600)
        for user in self.users:
            self._mkdirs(self.maildir(user), self.home(user))
            for sub in ("cur", "new", "tmp"):
                self._mkdirs(self.maildir(user) / sub, self.home(user))

    def _config(self) -> str:
        rt = self.runtime
        ssl = "ssl = no"
        if self.tls:
            ssl = f"ssl = yes\nssl_cert = <{rt}/cert.pem\nssl_key = <{rt}/key.pem"
        location = "maildir:~/Maildir:UTF-8" + (":LAYOUT=fs" if self.layout == "fs" else "")
        mailboxes = "".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n"
            for name, flag in SPECIAL_USE.items())
        return f"""\
# Written by tests/oracles/dovecot.py for one private, throwaway instance.
base_dir = {rt}/run
state_dir = {rt}/state
log_path = /dev/stderr
protocols = imap
listen = 127.0.0.1
default_login_user = dovenull
default_internal_user = dovecot
login_greeting = Dovecot ready.
{ssl}
disable_plaintext_auth = {"no" if self.plaintext_auth else "yes"}
auth_mechanisms = plain login
auth_verbose = yes
# Failed logins answer within 0.5 s instead of 2 s (the rest is a fixed flush timer).
auth_failure_delay = 0
# Empty means any character, so UTF-8 login names pass.
auth_username_chars =
auth_username_format = %Lu
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_location = {location}
mail_max_userip_connections = 100
# Throwaway data: skip fsync so large mailboxes and benchmarks are not disk-bound.
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {rt}/passwd
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={rt}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port or 0}
  }}
}}
service anvil {{
  chroot =
  # Unreachable, so auth runs without per-IP penalties (a login after a failed one would
  # otherwise wait 4-15 s; "no-penalty" for trusted networks is gone in 2.3).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{self.extra_config}
"""

    # -- start / stop --------------------------------------------------------------------

    def __enter__(self) -> "Dovecot":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Start ``dovecot -F`` and return once it has sent a real greeting.

        Waits on events only: the master's "starting up" log line, then the ``* OK``
        greeting on a fresh connection. A port taken between choosing and binding it is
        retried with new ports.
        """
        if self.process:
            raise DovecotError("already started")
        for attempt in range(3):
            self.port = free_port()
            self.tls_port = free_port() if self.tls else None
            self.conf.write_text(self._config())
            try:
                self._launch()
                return
            except DovecotError:
                self._terminate()
                if attempt == 2 or not any(b"Address already in use" in l for l in self._tail):
                    self._cleanup()
                    raise

    def _launch(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        self._tail.clear()
        self._up = self._eof = False
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)  # own process group: stop() signals all of it
        self._kill_at_exit = weakref.finalize(self, _signal_group, self.process.pid,
                                              signal.SIGKILL)
        self._reader = threading.Thread(target=self._read_log, args=(self.process.stdout,),
                                        name="dovecot-log", daemon=True)
        self._reader.start()
        with self._log_changed:
            self._log_changed.wait_for(lambda: self._up or self._eof,
                                       deadline - time.monotonic())
        if not self._up:
            raise self._error("the master did not log 'starting up'")
        self.greeting = self._await_greeting(deadline)

    def _read_log(self, pipe) -> None:
        """Tee Dovecot's log to ``dovecot.log`` and announce every line to waiters."""
        with pipe, open(self.log, "ab") as out:
            for line in pipe:
                out.write(line)
                out.flush()
                with self._log_changed:
                    self._tail.append(line)
                    self._lines += 1
                    if b"master: Info: Dovecot" in line and b"starting up" in line:
                        self._up = True
                    self._log_changed.notify_all()
        with self._log_changed:
            self._eof = True  # the master and all its children are gone
            self._log_changed.notify_all()

    def _await_greeting(self, deadline: float) -> bytes:
        """Connect and read up to the real ``* OK`` greeting.

        When a login process starts before the auth service is ready, Dovecot first sends
        ``* OK Waiting for authentication process to respond..``; that is not the greeting.
        The listener is bound before the master logs "starting up", so the first connect
        normally succeeds; a failed one is retried after the next log line, within the
        same deadline.
        """
        while True:
            seen = self._lines
            try:
                remaining = max(deadline - time.monotonic(), 0.001)
                with socket.create_connection((self.host, self.port), timeout=remaining) as s:
                    lines = s.makefile("rb")
                    while True:
                        line = lines.readline()
                        if not line:
                            raise ConnectionError("closed before the greeting")
                        if line.startswith(b"* OK") and b"Waiting for auth" not in line:
                            return line
            except OSError as exc:
                with self._log_changed:
                    news = self._log_changed.wait_for(
                        lambda: self._lines != seen or self._eof, deadline - time.monotonic())
                if not news or self._eof:
                    raise self._error(f"no IMAP greeting on port {self.port}: {exc!r}") from exc

    def _error(self, what: str) -> DovecotError:
        tail = b"".join(self._tail).decode("utf-8", "replace")
        return DovecotError(f"Dovecot ({self.conf}): {what}\n--- log tail ---\n{tail}")

    def stop(self) -> None:
        """SIGTERM the whole process group, wait for every member, SIGKILL stragglers.

        Signalling the group rather than only the master lets imap processes with open
        client connections exit at once (the master alone takes ~1 s and leaves them). A
        master still polling after ``MASTER_GRACE`` is killed: the data is throwaway.
        """
        try:
            self._terminate()
        finally:
            self._cleanup()

    def _terminate(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        self._kill_at_exit.detach()
        deadline = time.monotonic() + STOP_TIMEOUT
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(MASTER_GRACE)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        if not _wait_session_empty(proc.pid, deadline):
            _signal_group(proc.pid, signal.SIGKILL)
            _wait_session_empty(proc.pid, time.monotonic() + STOP_TIMEOUT)
        if self._reader:
            self._reader.join(STOP_TIMEOUT)

    @property
    def pid(self) -> int | None:
        """The master's pid, which is also the session and process-group id of all of it."""
        return self.process.pid if self.process else None

    # -- mail --------------------------------------------------------------------------

    def home(self, user: str) -> Path:
        """The user's home; unknown users raise KeyError, as mail for them could never be read."""
        if fold_user(user) not in self._folded:
            raise KeyError(f"no such user {user!r}; users are {sorted(self.users)}")
        return self.runtime / "home" / fold_user(user)

    def maildir(self, user: str) -> Path:
        """The user's Maildir root, which is also INBOX."""
        return self.home(user) / "Maildir"

    def folder_path(self, user: str, folder: str) -> Path:
        """Where ``folder`` (a Unicode name, not modified UTF-7) lives on disk for the layout."""
        root = self.maildir(user)
        parts = folder.split("/")
        if parts[0].upper() == "INBOX":
            if len(parts) == 1:
                return root
            parts[0] = "INBOX"  # INBOX is case-insensitive, its children live under "INBOX"
        if any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise ValueError(f"bad folder name {folder!r}")
        if self.layout == "fs":
            if parts[0] in ("cur", "new", "tmp"):
                raise ValueError(f"{folder!r} collides with INBOX's Maildir directories")
            return root.joinpath(*parts)
        if any("." in p for p in parts):
            raise ValueError(f"Maildir++ uses '.' on disk; not allowed in {folder!r}")
        return root / ("." + ".".join(parts))

    def create_folder(self, user: str, folder: str) -> Path:
        """Create a folder directly on disk (works before or after start; not subscribed).

        To subscribe, use IMAP or, once started, ``doveadm("mailbox", "subscribe", ...)``.
        """
        path = self.folder_path(user, folder)
        for sub in ("cur", "new", "tmp"):
            self._mkdirs(path / sub, self.home(user))
        if self.layout == "maildir++" and path != self.maildir(user):
            marker = path / "maildirfolder"
            marker.touch()
            os.chown(marker, self.uid, self.gid)
        return path

    def add_message(self, user: str, folder: str, raw: bytes, flags=(),
                    internal_date: datetime | float | None = None) -> Path:
        """Deliver ``raw`` straight into ``folder``'s ``cur/`` and return the file's path.

        ``flags`` are IMAP flags (``\\Seen`` ...) or keywords; ``internal_date`` (aware
        datetime or epoch seconds) becomes the file's mtime, which Dovecot reports as
        INTERNALDATE. Give CRLF line ends for byte-exact ``BODY[]`` (Dovecot sends bare LF
        as CRLF). Adding after start is fine for Maildir: Dovecot rescans on the next
        command that syncs the mailbox. UIDs are not chosen here: Dovecot assigns them when
        it first sees the file, in file-name order, which is the order of these calls.
        """
        folder_dir = self._folder_dirs.get((user, folder))
        if folder_dir is None:
            folder_dir = self._folder_dirs[user, folder] = str(self.folder_path(user, folder))
        self._seq += 1
        # Time, then a zero-padded counter: name order is call order within this instance.
        base = f"{int(time.time())}.M{self._seq:09d}P{os.getpid()}.mailconform"
        vsize = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")  # size with CRLF line ends
        name = f"{base},S={len(raw)},W={vsize}:2,{self._flag_letters(folder_dir, flags)}"
        tmp = f"{folder_dir}/tmp/{base}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            self.create_folder(user, folder)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, self.uid, self.gid)
            if internal_date is not None:
                when = (internal_date.timestamp() if isinstance(internal_date, datetime)
                        else float(internal_date))
                os.utime(fd, (when, when))
        finally:
            os.close(fd)
        final = f"{folder_dir}/cur/{name}"
        os.rename(tmp, final)  # atomic: a running Dovecot never sees a partial file
        return Path(final)

    def _flag_letters(self, folder_dir: str, flags) -> str:
        letters, keywords = set(), []
        for flag in flags:
            if flag.startswith("\\"):
                try:
                    letters.add(FLAG_LETTERS[flag.lower()])
                except KeyError:
                    raise ValueError(f"flag {flag!r} cannot be stored") from None
            else:
                keywords.append(flag)
        if keywords:
            letters.update(self._keyword_letters(Path(folder_dir), keywords))
        return "".join(sorted(letters))

    def _keyword_letters(self, path: Path, keywords: list[str]) -> list[str]:
        """Map keywords to Maildir letters a-z through the folder's ``dovecot-keywords``.

        The file is re-read each time because a running Dovecot may have added keywords.
        """
        file = path / "dovecot-keywords"
        index: dict[str, int] = {}
        if file.exists():
            for line in file.read_text("utf-8").splitlines():
                num, _, word = line.partition(" ")
                if num.isdigit() and word:
                    index[word] = int(num)
        missing = [k for k in dict.fromkeys(keywords) if k not in index]
        if missing:
            for word in missing:
                if any(c in word for c in " ()]{%*\"\\") or not word.isprintable():
                    raise ValueError(f"bad keyword {word!r}")
                free = next((i for i in range(26) if i not in index.values()), None)
                if free is None:
                    raise ValueError("a Maildir folder holds at most 26 keywords")
                index[word] = free
            tmp = path / "tmp" / "dovecot-keywords.new"
            tmp.write_text("".join(f"{n} {w}\n" for w, n in sorted(index.items(),
                                                                    key=lambda i: i[1])))
            os.chown(tmp, self.uid, self.gid)
            os.rename(tmp, file)
        return [chr(ord("a") + index[k]) for k in keywords]

    def _mkdirs(self, path: Path, top: Path) -> None:
        """``mkdir -p`` up to ``top`` (a home), every directory it creates owned by mail."""
        missing = []
        while not path.exists():
            missing.append(path)
            if path == top:
                break
            path = path.parent
        for p in reversed(missing):
            p.mkdir(mode=0o700)
            os.chown(p, self.uid, self.gid)

    # -- admin -----------------------------------------------------------------------

    def doveadm(self, *args: str, check: bool = True) -> str:
        """Run ``doveadm -c <conf> ARGS`` and return stdout, e.g.
        ``doveadm("mailbox", "status", "-u", user, "uidvalidity uidnext", "INBOX")``.

        Mail commands need the instance running (they ask its auth service for the user).
        """
        done = subprocess.run([DOVEADM, "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=60)
        if check and done.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.strip()}")
        return done.stdout


def _check_credentials(user: str, password: str) -> None:
    """Reject what would corrupt the passwd-file or the home path."""
    for what, value in (("user", user), ("password", password)):
        if not value or ":" in value or not value.isprintable():
            raise ValueError(f"{what} {value!r} must be non-empty, printable, without ':'")
    if "/" in user or user in (".", ".."):
        raise ValueError(f"user {user!r} must not contain '/'")


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``sid``, read from /proc."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != b"Z":
            pids.append(int(entry.name))
    return pids


def _wait_session_empty(sid: int, deadline: float) -> bool:
    """Block on pidfds until every process of the session has exited (or the deadline)."""
    fds = []
    try:
        for pid in _session_members(sid):
            try:
                fds.append(os.pidfd_open(pid))
            except ProcessLookupError:
                pass
        while fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select(fds, [], [], remaining)
            for fd in ready:
                fds.remove(fd)
                os.close(fd)
        return True
    finally:
        for fd in fds:
            os.close(fd)
