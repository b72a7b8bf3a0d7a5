"""The client adapters against real processes: environment, templates, deadlines that kill the
whole session, bounded output, python callables, daemons.

Times are asserted as lower bounds only: the harness must wait at least the deadline, and a
loaded machine may always be slower.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import stat
import sys
import threading
from pathlib import Path

import pytest

from harness.adapters import (
    DEFAULT_FEATURES, OUTPUT_LIMIT, Adapter, AdapterError, ClientContext, CommandAdapter,
    DaemonAdapter, PythonAdapter, TemplateError, parse_features)
from harness.adapters.process import Capture
from harness.outcome import Outcome

CLIENTS = Path(__file__).parent / "clients"
PASSWORD = "p@ss w0rd 'q' \"dq\" $(touch /tmp/pwned) ; * {not} \\ ü"


def py(script: str, *args: str) -> str:
    """A command template running one of the test clients with this Python."""
    words = [sys.executable, str(CLIENTS / script), *args]
    return " ".join(shlex.quote(w).replace("{", "{{").replace("}", "}}") for w in words)


@pytest.fixture
def ctx(tmp_path) -> ClientContext:
    for name in ("maildir", "state", "outbox"):
        (tmp_path / name).mkdir()
    return ClientContext(
        scenario="auth/starttls-required", run=1,
        imap_host="127.0.0.1", imap_port=10143, imap_security="starttls",
        smtp_host="127.0.0.2", smtp_port=10587, smtp_security="tls",
        username="alice@example.test", password=PASSWORD, email="alice@example.test",
        ca_file=tmp_path / "ca.pem", maildir=tmp_path / "maildir", state_dir=tmp_path / "state",
        outbox=tmp_path / "outbox", autodiscover_email="bob@example.test",
        dns="127.0.0.1:10053", oauth_token_url="http://127.0.0.1:10080/token",
        connect_to="autodiscover.example.test:443:127.0.0.1:10443,imap.example.test:993:127.0.0.1:10993")


def gone(pid: int) -> bool:
    """No such process, or a zombie: dead, waiting for an init that may not reap (containers)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def grandchild_of(outcome: Outcome) -> int:
    line = next(l for l in outcome.stdout.splitlines() if l.startswith("grandchild "))
    return int(line.split()[1])


# -- the context -------------------------------------------------------------------------

def test_environment_reaches_the_client_with_exact_names_and_values(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("MAILCONFORM_STALE", "from the shell that started the harness")
    monkeypatch.setenv("HARNESS_SIDE_VARIABLE", "kept")
    outcome = CommandAdapter(py("env_dump.py")).run(ctx, deadline=10)
    assert outcome.exit_status == 0, outcome.stderr
    seen = json.loads(outcome.stdout)
    mine = {k: v for k, v in seen["env"].items() if k.startswith("MAILCONFORM_")}
    assert mine == {
        "MAILCONFORM_SCENARIO": "auth/starttls-required",
        "MAILCONFORM_RUN": "1",
        "MAILCONFORM_IMAP_HOST": "127.0.0.1",
        "MAILCONFORM_IMAP_PORT": "10143",
        "MAILCONFORM_IMAP_SECURITY": "starttls",
        "MAILCONFORM_SMTP_HOST": "127.0.0.2",
        "MAILCONFORM_SMTP_PORT": "10587",
        "MAILCONFORM_SMTP_SECURITY": "tls",
        "MAILCONFORM_USERNAME": "alice@example.test",
        "MAILCONFORM_PASSWORD": PASSWORD,
        "MAILCONFORM_EMAIL": "alice@example.test",
        "MAILCONFORM_CA_FILE": str(tmp_path / "ca.pem"),
        "MAILCONFORM_MAILDIR": str(tmp_path / "maildir"),
        "MAILCONFORM_STATE_DIR": str(tmp_path / "state"),
        "MAILCONFORM_OUTBOX": str(tmp_path / "outbox"),
        "MAILCONFORM_AUTODISCOVER_EMAIL": "bob@example.test",
        "MAILCONFORM_DNS": "127.0.0.1:10053",
        "MAILCONFORM_OAUTH_TOKEN_URL": "http://127.0.0.1:10080/token",
        "MAILCONFORM_CONNECT_TO": "autodiscover.example.test:443:127.0.0.1:10443,imap.example.test:993:127.0.0.1:10993",
    }
    assert seen["env"]["HARNESS_SIDE_VARIABLE"] == "kept"
    assert seen["stdin"] == ""  # stdin is /dev/null: a client waiting for input gets EOF
    assert seen["sid"] == seen["pid"] != os.getsid(0)  # a session of its own


def test_unset_values_are_left_out_of_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILCONFORM_DNS", "stale:53")
    ctx = ClientContext(scenario="s", run=2, maildir=tmp_path)
    assert ctx.environ() == {"MAILCONFORM_SCENARIO": "s", "MAILCONFORM_RUN": "2",
                             "MAILCONFORM_MAILDIR": str(tmp_path)}
    seen = json.loads(CommandAdapter(py("env_dump.py")).run(ctx, 10).stdout)
    assert "MAILCONFORM_DNS" not in seen["env"]


def test_placeholders_name_every_attribute_and_config_only_when_rendered(ctx):
    names = set(ctx.placeholders())
    assert names == {"scenario", "run", "imap_host", "imap_port", "imap_security",
                     "smtp_host", "smtp_port", "smtp_security", "username", "password",
                     "email", "ca_file", "maildir", "state_dir", "outbox",
                     "autodiscover_email", "dns", "oauth_token_url", "connect_to"}
    assert ClientContext(scenario="s", run=1).placeholders()["imap_host"] == ""
    assert ctx.with_config(Path("/x/rc")).placeholders()["config"] == "/x/rc"


@pytest.mark.parametrize("change", [dict(run=0), dict(run=True), dict(scenario=""),
                                    dict(imap_security="ssl"), dict(smtp_security="TLS")])
def test_context_rejects_values_outside_the_contract(change):
    with pytest.raises(ValueError):
        ClientContext(**{"scenario": "s", "run": 1, **change})


# -- command templates -------------------------------------------------------------------

def test_values_arrive_as_whole_arguments_without_quoting(ctx):
    adapter = CommandAdapter(py("env_dump.py") + " --user={username} {password} "
                             "'{imap_host}:{imap_port}' {dns} {{literal}}")
    seen = json.loads(adapter.run(ctx, 10).stdout)
    assert seen["argv"] == ["--user=alice@example.test", PASSWORD, "127.0.0.1:10143",
                            "127.0.0.1:10053", "{literal}"]
    assert not Path("/tmp/pwned").exists()


def test_shell_mode_quotes_every_value(ctx):
    adapter = CommandAdapter(py("env_dump.py") + " {password} {outbox} | cat", shell=True)
    assert adapter.describe().startswith("command (shell): ")
    seen = json.loads(adapter.run(ctx, 10).stdout)
    assert seen["argv"] == [PASSWORD, str(ctx.outbox)]


def test_config_template_is_rendered_into_the_state_dir(ctx, tmp_path):
    template = tmp_path / "mbsyncrc.tmpl"
    template.write_text(
        "IMAPAccount test\nHost {imap_host}\nPort {imap_port}\nPass \"{password}\"\n"
        'Json {"tls": {"ca": "{ca_file}"}}\nShell ${HOME} {{maildir}}\nSelf {config}\n')
    adapter = CommandAdapter(py("env_dump.py") + " -c {config}", config_template=template)
    outcome = adapter.run(ctx, 10)
    rendered = ctx.state_dir / "mbsyncrc"
    seen = json.loads(outcome.stdout)
    assert seen["argv"] == ["-c", str(rendered)]
    assert seen["env"]["MAILCONFORM_CONFIG"] == str(rendered)
    assert rendered.read_text() == (
        f"IMAPAccount test\nHost 127.0.0.1\nPort 10143\nPass \"{PASSWORD}\"\n"
        f'Json {{"tls": {{"ca": "{ctx.ca_file}"}}}}\nShell ${{HOME}} {{maildir}}\nSelf {rendered}\n')
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600  # it holds the password
    assert adapter.describe() == f"command: {adapter.template} [config: {template}]"


def test_config_template_path_may_be_a_string_and_text_may_be_inline(ctx, tmp_path):
    (tmp_path / "fetchmailrc").write_text("poll {imap_host} port {imap_port}\n")
    CommandAdapter(py("env_dump.py") + " {config}", str(tmp_path / "fetchmailrc")).run(ctx, 10)
    assert (ctx.state_dir / "fetchmailrc").read_text() == "poll 127.0.0.1 port 10143\n"
    adapter = CommandAdapter(py("env_dump.py") + " {config}", config_text="user={username}\n")
    adapter.run(ctx, 10)
    assert (ctx.state_dir / "client.conf").read_text() == "user=alice@example.test\n"
    with pytest.raises(AdapterError, match="not both"):
        CommandAdapter("true", str(tmp_path / "fetchmailrc"), config_text="x")


def test_unknown_placeholder_names_it_the_closest_and_the_valid_ones():
    with pytest.raises(TemplateError) as err:
        CommandAdapter("true --host {imap_hots}")
    message = str(err.value)
    assert "{imap_hots}" in message and "did you mean 'imap_host'" in message
    assert "{imap_port}" in message and "{oauth_token_url}" in message
    assert "{config}" not in message  # not valid without a config template


def test_unknown_placeholder_in_config_names_file_and_line(tmp_path):
    template = tmp_path / "offlineimaprc"
    template.write_text("[Repository remote]\nremotehost = {imap_host}\nremoteuser = {usrname}\n")
    with pytest.raises(TemplateError, match=r"offlineimaprc, line 3: unknown placeholder "
                                            r"\{usrname\} \(did you mean 'username'\?\)"):
        CommandAdapter("true -c {config}", config_template=template)


def test_config_placeholder_needs_a_config_template():
    with pytest.raises(TemplateError, match=r"\{config\} needs a config template"):
        CommandAdapter("true -c {config}")


@pytest.mark.parametrize("template, message", [
    ("true {}", "need a name"),
    ("true {0}", "need a name"),
    ("true {imap_host.upper}", "is not a placeholder"),
    ("true {imap_host!r}", "no conversion or format spec"),
    ("true {imap_port:>8}", "no conversion or format spec"),
    ("true {imap_host", "literal braces"),
    ("true 'unclosed", "No closing quotation"),
    ("   ", "empty command"),
])
def test_template_syntax_errors_are_reported(template, message):
    with pytest.raises(TemplateError, match=message):
        CommandAdapter(template)


def test_a_program_that_does_not_exist_is_reported_before_any_run(tmp_path):
    with pytest.raises(AdapterError, match="'mailconform-no-such-client' not found on PATH"):
        CommandAdapter("mailconform-no-such-client --sync")
    with pytest.raises(AdapterError, match="cannot read the config template"):
        CommandAdapter("true", config_template=tmp_path / "missing.tmpl")


# -- running one-shot commands -----------------------------------------------------------

def test_exit_status_and_output_are_captured(ctx):
    outcome = CommandAdapter(py("exit_with.py", "3")).run(ctx, 10)
    assert (outcome.exit_status, outcome.killed_at_deadline) == (3, False)
    assert outcome.stdout == "to stdout\n" and outcome.stderr == "to stderr\n"
    assert outcome.run == 1 and outcome.duration > 0 and outcome.error is None


def test_death_by_signal_is_a_negative_status(ctx):
    outcome = CommandAdapter(py("exit_with.py", f"-{int(signal.SIGABRT)}")).run(ctx, 10)
    assert outcome.exit_status == -signal.SIGABRT and not outcome.killed_at_deadline
    assert outcome.stdout == "to stdout\n"


def test_hanging_client_is_killed_at_the_deadline(ctx):
    outcome = CommandAdapter(py("sleeper.py"), grace=5).run(ctx, deadline=0.5)
    assert (outcome.exit_status, outcome.killed_at_deadline) == (None, True)
    assert outcome.duration >= 0.5
    assert outcome.stdout == "sleeping\n"  # output before the kill is kept
    assert "killed at the deadline (0.5 s)" in outcome.stderr and "all ended on SIGTERM" in outcome.stderr


def test_deadline_kills_the_whole_group_even_a_grandchild_ignoring_sigterm(ctx):
    outcome = CommandAdapter(py("spawner.py"), grace=0.3).run(ctx, deadline=1.0)
    assert (outcome.exit_status, outcome.killed_at_deadline) == (None, True)
    assert outcome.duration >= 1.0 + 0.3  # the grandchild got its grace before SIGKILL
    assert gone(grandchild_of(outcome))
    assert "SIGTERM to 2 process(es)" in outcome.stderr
    assert "SIGKILL after 0.3 s for 1 of them" in outcome.stderr


def test_processes_left_behind_by_an_exited_client_are_ended(ctx):
    outcome = CommandAdapter(py("spawner.py", "--exit"), grace=0.2).run(ctx, deadline=10)
    assert (outcome.exit_status, outcome.killed_at_deadline) == (0, False)
    assert gone(grandchild_of(outcome))
    assert "leaving 1 process(es) in its session; they got SIGTERM, 1 needed SIGKILL" \
        in outcome.stderr


def test_output_is_bounded_keeping_its_beginning_and_end(ctx):
    size = 3 * OUTPUT_LIMIT
    outcome = CommandAdapter(py("flood.py", str(size))).run(ctx, 10)
    assert outcome.exit_status == 0
    for text in (outcome.stdout, outcome.stderr):
        assert text.startswith("BEGIN") and text.endswith("END")
        assert len(text) < OUTPUT_LIMIT + 200
        assert f"output cut: {size:,} bytes written, the middle {size - OUTPUT_LIMIT:,} left out" \
            in text


def test_capture_cuts_only_past_its_limit():
    capture = Capture(limit=10)
    capture.write(b"0123456789")
    assert capture.text() == "0123456789" and capture.cut == 0
    capture.write(b"ab")
    assert capture.cut == 2
    head, note, tail = capture.text().split("\n", 2)
    assert (head, tail) == ("01234", "789ab")
    assert "12 bytes written, the middle 2 left out" in note


# -- python callables --------------------------------------------------------------------

def test_python_client_is_called_with_the_context(ctx):
    adapter = PythonAdapter("tests.clients.pyclient:ok", features=["imap", "smtp"])
    outcome = adapter.run(ctx, deadline=10)
    assert (outcome.exit_status, outcome.killed_at_deadline, outcome.error) == (0, False, None)
    # The process environment is shared by parallel scenarios: it is left alone.
    assert (ctx.maildir / "ran").read_text() == "auth/starttls-required 1 10143 <unset>"
    assert adapter.describe() == "python: tests.clients.pyclient:ok"


def test_connect_to_map_reads_the_curl_entries(ctx):
    assert ctx.connect_to_map() == {("autodiscover.example.test", 443): ("127.0.0.1", 10443),
                                    ("imap.example.test", 993): ("127.0.0.1", 10993)}
    six = ClientContext(scenario="s", run=1, connect_to="a.example.test:80:[::1]:8080, ")
    assert six.connect_to_map() == {("a.example.test", 80): ("::1", 8080)}
    assert ClientContext(scenario="s", run=1).connect_to_map() == {}
    with pytest.raises(ValueError, match="not name:port:host:port"):
        ClientContext(scenario="s", run=1, connect_to="a.example.test:443").connect_to_map()


def test_python_client_resolves_the_scenarios_names_only_while_it_runs(ctx):
    import socket

    before = socket.getaddrinfo
    outcome = PythonAdapter("tests.clients.pyclient:resolves").run(ctx, 10)
    assert outcome.exit_status == 0, outcome.error
    assert (ctx.maildir / "ran").read_text() == "127.0.0.1:10993 example.com refused"
    assert outcome.lookups == [("imap.example.test", 993), ("example.com", 443)]
    assert socket.getaddrinfo is before  # nothing global is left behind
    without = PythonAdapter("tests.clients.pyclient:ok").run(dataclasses.replace(ctx, connect_to=None), 10)
    assert without.exit_status == 0 and without.lookups == []


def test_python_client_may_be_a_dotted_attribute(ctx):
    assert PythonAdapter("tests.clients.pyclient:Client.sync").run(ctx, 10).exit_status == 0
    assert (ctx.maildir / "ran").read_text() == "Client.sync"


def test_python_client_exception_is_exit_1_with_the_traceback(ctx):
    outcome = PythonAdapter("tests.clients.pyclient:boom").run(ctx, 10)
    assert (outcome.exit_status, outcome.killed_at_deadline) == (1, False)
    assert "Traceback" in outcome.error and "in boom" in outcome.error
    assert outcome.error.endswith("RuntimeError: cannot sync 127.0.0.1")
    assert outcome.summary().endswith("RuntimeError: cannot sync 127.0.0.1 after "
                                      f"{outcome.duration:.2f} s")


def test_python_client_sys_exit_sets_the_status(ctx):
    outcome = PythonAdapter("tests.clients.pyclient:exits").run(ctx, 10)
    assert (outcome.exit_status, outcome.error) == (4, None)


def test_python_client_that_hangs_is_reported_killed_and_abandoned(ctx):
    from tests.clients import pyclient

    outcome = PythonAdapter("tests.clients.pyclient:hang").run(ctx, deadline=0.5)
    try:
        assert (outcome.exit_status, outcome.killed_at_deadline) == (None, True)
        assert outcome.duration >= 0.5
        assert "did not return within 0.5 s" in outcome.error and "abandoned" in outcome.error
        worker = next(t for t in threading.enumerate()
                      if t.name == "client-auth/starttls-required-run1")
        assert worker.daemon  # it cannot keep the harness from exiting
    finally:
        pyclient.RELEASE.set()
    worker.join(10)
    assert not worker.is_alive()


@pytest.mark.parametrize("spec, message", [
    ("tests.clients.pyclient", r"expected 'package\.module:callable'"),
    (":ok", r"expected 'package\.module:callable'"),
    ("tests.clients.pyclient:", r"expected 'package\.module:callable'"),
    ("tests.clients.no_such_client:sync", r"no module named 'tests\.clients\.no_such_client'"),
    ("mailconform_nowhere.client:sync", r"no module named 'mailconform_nowhere'"),
    ("tests.clients.pyclient:okk", r"has no attribute 'okk' \(did you mean 'ok'\?\)"),
    ("tests.clients.pyclient:Client.snyc", r"'tests\.clients\.pyclient:Client' has no "
                                            r"attribute 'snyc' \(did you mean 'sync'\?\)"),
    ("tests.clients.pyclient:NOT_CALLABLE", r"'NOT_CALLABLE' is a int, not callable"),
    ("tests.clients.broken_import:sync", r"(?s)importing 'tests\.clients\.broken_import' "
                                         r"failed:.*RuntimeError: broken at import time"),
    ("tests.clients.missing_dependency:sync", r"(?s)importing 'tests\.clients\.missing_depend"
                                              r"ency' failed:.*mailconform_no_such_dependency"),
])
def test_bad_python_specs_are_explained(spec, message):
    with pytest.raises(AdapterError, match=message):
        PythonAdapter(spec)


# -- daemons -----------------------------------------------------------------------------

def test_daemon_works_run_by_run_and_stops_on_sigterm(ctx):
    daemon = DaemonAdapter(py("daemon_client.py"), features="imap,idle", grace=5)
    daemon.start(ctx)
    try:
        (ctx.state_dir / "trigger-1").touch()
        first = daemon.run(ctx, deadline=10, until=lambda: (ctx.maildir / "synced-1").exists())
        assert (first.run, first.exit_status, first.killed_at_deadline, first.error) == \
            (1, None, False, None)
        assert "synced 1" in first.stdout and daemon.running
        (ctx.state_dir / "trigger-2").touch()
        second = daemon.run(dataclasses.replace(ctx, run=2), deadline=10,
                            until=lambda: (ctx.maildir / "synced-2").exists())
        assert second.run == 2 and second.error is None
        assert second.stdout == "synced 2\n"  # this run's output only
    finally:
        final = daemon.stop()
    assert (final.run, final.exit_status, final.killed_at_deadline) == (0, 0, False)
    assert final.stdout.splitlines() == ["started for run 1", "synced 1", "synced 2", "bye"]
    assert "SIGTERM to 1 process(es); all ended on SIGTERM" in final.stderr
    assert daemon.stop() is final and not daemon.running


def test_daemon_ignoring_sigterm_is_killed_after_the_grace(ctx):
    daemon = DaemonAdapter(py("daemon_client.py", "--ignore-term"), grace=0.3)
    daemon.start(ctx)
    try:
        assert daemon.wait_until(lambda: (ctx.state_dir / "ready").exists(), 10)
    finally:
        final = daemon.stop()
    assert (final.exit_status, final.killed_at_deadline) == (None, True)
    assert final.duration >= 0.3
    assert "1 needed SIGKILL after 0.3 s" in final.stderr


def test_daemon_run_without_condition_lasts_the_deadline(ctx):
    daemon = DaemonAdapter(py("daemon_client.py"))
    daemon.start(ctx)
    try:
        outcome = daemon.run(ctx, deadline=0.3)
        assert outcome.duration >= 0.3
        assert (outcome.exit_status, outcome.killed_at_deadline, outcome.error) == (None, False, None)
        already = threading.Event()
        already.set()
        assert daemon.run(ctx, deadline=30, until=already).error is None
        unmet = daemon.run(ctx, deadline=0.2, until=threading.Event())
        assert unmet.duration >= 0.2
        assert unmet.error == "the run's condition did not hold within 0.2 s"
    finally:
        daemon.stop()


def test_daemon_that_exits_ends_the_run_early(ctx):
    daemon = DaemonAdapter(py("daemon_client.py", "--exit-after-sync"))
    daemon.start(ctx)
    (ctx.state_dir / "trigger-1").touch()
    outcome = daemon.run(ctx, deadline=30, until=threading.Event())  # never set
    assert outcome.exit_status == 3
    assert outcome.error == "the daemon is not running: it exited with status 3"
    assert "giving up" in outcome.stderr
    final = daemon.stop()
    assert (final.exit_status, final.killed_at_deadline) == (3, False)
    assert "had exited by itself (status 3)" in final.stderr


def test_daemon_lifecycle_misuse_is_reported(ctx):
    daemon = DaemonAdapter(py("daemon_client.py"), grace=0.5)
    with pytest.raises(AdapterError, match="start"):
        daemon.run(ctx, 1)
    with pytest.raises(AdapterError, match="was not started"):
        daemon.stop()
    daemon.start(ctx)
    twin = daemon.fresh()
    try:
        with pytest.raises(AdapterError, match="already running"):
            daemon.start(ctx)
        with pytest.raises(AdapterError, match="started for scenario"):
            daemon.run(ClientContext(scenario="other", run=1), 1)
        assert not twin.running and twin.describe() == daemon.describe()
    finally:
        daemon.stop()
    assert daemon.describe() == f"daemon: {daemon.template}"


# -- features ----------------------------------------------------------------------------

def test_features_are_declared_checked_and_compared():
    adapter = CommandAdapter("true", features="imap, IDLE,twoway")
    assert adapter.features == frozenset({"imap", "idle", "twoway"})
    assert adapter.supports({"imap", "idle"}) == set()
    assert adapter.supports(["imap", "smtp", "oauth2"]) == {"smtp", "oauth2"}
    assert CommandAdapter("true").features == DEFAULT_FEATURES == frozenset({"imap"})
    assert parse_features([]) == frozenset()


def test_unknown_feature_names_the_closest_valid_one():
    with pytest.raises(ValueError, match=r"unknown feature 'smpt' \(did you mean 'smtp'\?\)"):
        PythonAdapter("tests.clients.pyclient:ok", features=["imap", "smpt"])
    with pytest.raises(ValueError, match=r"unknown feature 'ouath2' \(did you mean 'oauth2'\?\)"):
        CommandAdapter("true").supports({"ouath2"})


def test_every_adapter_kind_is_an_adapter():
    for adapter in (CommandAdapter("true"), PythonAdapter("tests.clients.pyclient:ok"),
                    DaemonAdapter("true")):
        assert isinstance(adapter, Adapter) and adapter.kind in adapter.describe()
    assert CommandAdapter("true").name == "true"
    assert CommandAdapter("true", name="mbsync 1.4").name == "mbsync 1.4"
