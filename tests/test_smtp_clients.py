"""Real third-party SMTP clients (msmtp, swaks) through their command adapters.

First each adapter is run by hand against the SMTP fake, as the harness would start it, to
check what it submits and what it leaves behind; then a few ``smtp.*`` scenarios run through
``mailconform run`` and each client must earn the verdicts its documented behaviour deserves
(docs/clients.md says why for each).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from fake_servers.smtp.config import SmtpConfig as FakeSmtp

from .conftest import PASSWORD, USER
from .test_catalog_clients import run, verdicts

ROOT = Path(__file__).resolve().parent.parent

needs_msmtp = pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp not installed (Debian: msmtp)")
needs_swaks = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed (Debian: swaks)")


def outgoing(n: int, bcc: str = "") -> bytes:
    return (f"From: Alice <{USER}>\r\nTo: Bob <bob@example.test>\r\nCc: carol@example.test\r\n{bcc}"
            f"Subject: Outgoing {n}\r\nMessage-ID: <out-{n}@example.test>\r\n\r\nMessage {n}.\r\n").encode()


def run_adapter(script: str, provider, tmp_path: Path, *, security: str = "starttls",
                password: str = PASSWORD) -> subprocess.CompletedProcess:
    port = provider.smtps_port if security == "tls" else provider.smtp_port
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCONFORM_", "SWAKS_OPT_"))}
    env.update({"MAILCONFORM_SMTP_HOST": provider.host, "MAILCONFORM_SMTP_PORT": str(port),
                "MAILCONFORM_SMTP_SECURITY": security, "MAILCONFORM_USERNAME": USER,
                "MAILCONFORM_PASSWORD": password, "MAILCONFORM_CA_FILE": str(provider.ca_file),
                "MAILCONFORM_OUTBOX": str(tmp_path / "outbox"), "MAILCONFORM_STATE_DIR": str(tmp_path / "state"),
                "HOME": str(tmp_path)})
    return subprocess.run(["sh", str(ROOT / "clients" / script)], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def outbox(tmp_path) -> Path:
    (tmp_path / "state").mkdir()
    box = tmp_path / "outbox"
    box.mkdir()
    box.joinpath("001-a.eml").write_bytes(outgoing(1, bcc="Bcc: dave@example.test\r\n"))
    box.joinpath("002-b.eml").write_bytes(outgoing(2))
    return box


@pytest.mark.parametrize("script", [
    pytest.param("msmtp-send.sh", marks=needs_msmtp),
    pytest.param("swaks-send.sh", marks=needs_swaks),
])
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_adapter_submits_the_outbox_with_the_envelope_from_the_header(script, security, make_provider, outbox,
                                                                     tmp_path):
    provider = make_provider(smtp=FakeSmtp())
    result = run_adapter(script, provider, tmp_path, security=security)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(outbox.iterdir()) == []
    subs = provider.submissions()
    assert [s.accepted for s in subs] == [True, True] and {s.user for s in subs} == {USER}
    assert subs[0].mail_from == USER
    assert subs[0].rcpt_tos == ("bob@example.test", "carol@example.test", "dave@example.test")
    assert b"dave@" not in subs[0].data  # Bcc removed from what is sent
    assert outgoing(2) in subs[1].data  # as it was (msmtp adds a Date: field in front when there is none)
    assert provider.wire.credentials_before_tls((PASSWORD.encode(),)) == []
    assert PASSWORD not in result.stdout + result.stderr
    for file in (tmp_path / "state").rglob("*"):  # no password on disk; config files private
        if file.is_file():
            assert PASSWORD.encode() not in file.read_bytes()
            assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("script", [
    pytest.param("msmtp-send.sh", marks=needs_msmtp),
    pytest.param("swaks-send.sh", marks=needs_swaks),
])
def test_adapter_keeps_what_was_not_accepted(script, make_provider, outbox, tmp_path):
    provider = make_provider(smtp=FakeSmtp())
    result = run_adapter(script, provider, tmp_path, password="wrong")
    assert result.returncode != 0
    assert sorted(p.name for p in outbox.iterdir()) == ["001-a.eml", "002-b.eml"]
    assert provider.submissions() == []
    assert "not sent" in result.stderr


MSMTP_EXPECTED = {
    "smtp.submit.basic": "PASS",
    "smtp.tls.no-starttls": "PASS",                # tls_starttls on: no STARTTLS, no session
    "smtp.tls.cert-wrong-host": "PASS",            # GnuTLS checks the name against the CA-signed certificate
    "smtp.auth.invalid": "PASS",                   # one AUTH, the 535 is shown, the message kept
    "smtp.tls.response-injection": "PASS",         # aborts at STARTTLS or in the handshake: nothing sent
    "smtp.tls.legacy-only": "FAIL",                # GnuTLS's default priorities still accept TLS 1.1
    "smtp.limit.message-too-large": "FAIL",        # SIZE is not compared before DATA: 21 MB sent
    "smtp.ext.no-8bitmime": "FAIL",                # 8-bit body sent as it is without 8BITMIME
    "smtp.ext.no-smtputf8": "FAIL",                # a UTF-8 RCPT TO without SMTPUTF8
}


@needs_msmtp
def test_msmtp_gets_the_verdicts_its_behaviour_deserves(tmp_path):
    args = ["--client", "sh clients/msmtp-send.sh", "--features", "smtp", "-j", "2"]
    for scenario in MSMTP_EXPECTED:
        args += ["--scenario", scenario]
    code, report, err = run(tmp_path, *args)
    assert verdicts(report) == MSMTP_EXPECTED, err
    assert code == 1


SWAKS_EXPECTED = {
    "smtp.submit.basic": "PASS",                   # --tls: STARTTLS required, then AUTH and the message
    "smtp.tls.no-starttls": "PASS",                # "Host did not advertise STARTTLS": nothing sent
    "smtp.tls.cert-untrusted": "PASS",             # --tls-verify checks the chain against --tls-ca-path
    "smtp.tls.legacy-only": "PASS",                # OpenSSL 3 refuses TLS 1.1
    "smtp.tls.cert-wrong-host": "FAIL",            # ... but not the host name: AUTH to the wrong host
    "smtp.limit.recipients-per-message": "FAIL",   # DATA to the 500 accepted, exit 0: 100 recipients lost
    "smtp.ext.no-8bitmime": "FAIL",                # 8-bit body sent as it is without 8BITMIME
}


@needs_swaks
def test_swaks_gets_the_verdicts_its_behaviour_deserves(tmp_path):
    args = ["--client", "sh clients/swaks-send.sh", "--features", "smtp", "-j", "2"]
    for scenario in SWAKS_EXPECTED:
        args += ["--scenario", scenario]
    code, report, err = run(tmp_path, *args)
    assert verdicts(report) == SWAKS_EXPECTED, err
    assert code == 1
