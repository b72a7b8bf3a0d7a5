"""`mailconform serve`: a person starts a fake provider, points a client at it, stops it with Ctrl-C."""

from __future__ import annotations

import queue
import re
import signal
import ssl
import subprocess
import sys
import threading

import imapclient
import pytest


class Served:
    """A `mailconform serve` process whose output lines arrive on a queue."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 15) -> re.Match:
        regex = re.compile(pattern)
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"serve exited before {pattern!r}; output: {self.seen}; "
                                     f"stderr: {self.proc.stderr.read()}")
            self.seen.append(line)
            found = regex.search(line)
            if found:
                return found

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def served():
    started: list[Served] = []

    def start(*args: str) -> Served:
        s = Served(*args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def test_serve_persona_prints_where_to_connect_and_logs_sessions_live(served):
    s = served("--persona", "generic-dovecot")
    port = int(s.wait_for(r"IMAP\s+127\.0\.0\.1:(\d+)").group(1))
    ca = s.wait_for(r"CA file\s+(\S+)").group(1)
    user, password = s.wait_for(r"account\s+(\S+) / (\S+)").groups()
    s.wait_for("Ctrl-C stops")

    client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10)
    client.starttls(ssl.create_default_context(cafile=ca))
    client.login(user, password)
    assert client.select_folder("INBOX")[b"EXISTS"] == 20
    client.logout()

    s.wait_for(r"\[imap#1\] C: \S+ LOGIN \S+ \*\*\*")  # live, with the password redacted
    s.wait_for(r"\[imap#1\] S: \* BYE")
    assert s.stop() == 0
    assert password not in "\n".join(line for line in s.seen if " C: " in line)
    assert s.wait_for("stopped")


def test_serve_provider_file(served, tmp_path):
    path = tmp_path / "provider.toml"
    path.write_text(
        '[imap]\nstarttls = false\nlogin_disabled = false\n'
        '[[accounts]]\nusername = "bob@example.test"\npassword = "hunter2"\n'
        '[[accounts.folders]]\nname = "INBOX"\ngenerate = 3\n',
        encoding="utf-8",
    )
    s = served(str(path))
    port = int(s.wait_for(r"IMAP\s+127\.0\.0\.1:(\d+)\s+\(plaintext, STARTTLS not offered\)").group(1))
    s.wait_for(r"account\s+bob@example\.test / hunter2")
    client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10)
    assert b"STARTTLS" not in client.capabilities()
    client.login("bob@example.test", "hunter2")
    assert client.select_folder("INBOX")[b"EXISTS"] == 3
    client.logout()
    assert s.stop() == 0


def test_serve_provider_file_with_discovery(served, tmp_path):
    """A person tries a client's account setup by hand: curl with the printed --connect-to entry."""
    path = tmp_path / "provider.toml"
    path.write_text('[discovery]\ndomain = "example.test"\n[discovery.autoconfig]\n', encoding="utf-8")
    s = served(str(path))
    s.wait_for(r"DNS\s+127\.0\.0\.1:\d+")
    entry = s.wait_for(r"connect-to (autoconfig\.example\.test:443:127\.0\.0\.1:\d+)").group(1)
    ca = s.wait_for(r"CA file\s+(\S+)").group(1)
    s.wait_for("Ctrl-C stops")
    got = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", ca, "--connect-to", entry,
                          "https://autoconfig.example.test/mail/config-v1.1.xml"],
                         capture_output=True, text=True, timeout=10)
    assert "<incomingServer" in got.stdout, got.stderr
    s.wait_for(r"\[https#1\] C: GET /mail/config-v1.1.xml HTTP/1.1")
    assert s.stop() == 0


def test_serve_bad_file_names_the_key_and_exits_2(tmp_path):
    path = tmp_path / "provider.toml"
    path.write_text('[imap]\nstarttsl = false\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "serve", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "starttsl" in proc.stderr and "did you mean 'starttls'" in proc.stderr


def test_serve_unknown_persona_suggests_one():
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "serve", "--persona", "gmial"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "did you mean 'gmail'" in proc.stderr
