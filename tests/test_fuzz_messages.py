"""Fuzzed messages (fake_servers/mailstore/fuzz.py) and the imap.msg.fuzzed scenario.

The corpus must be reproducible (same seed: same bytes in every process, on every machine),
varied (it really contains the stressors the catalog lists), replayable (a failing message is
named in evidence and rebuilt from its X-Fuzz-Seed and X-Fuzz-Index), and served byte-exact by
the fake. Hypothesis drives the generator's own decisions (fuzz.strategy) as well as seeds.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import imapclient
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_servers import FakeProvider
from fake_servers.mailstore import fuzz
from fake_servers.provider_config import ConfigError, from_mapping
from fake_servers.wire import WireLog
from harness import checks
from harness.checks.evidence import describe_message, header
from harness.checks.store import normalise
from harness.observation import Observation
from harness.outcome import Outcome
from harness.scenario import load

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "imap" / "msg" / "fuzzed.toml"
SEED = 4242  # the scenario's seed; INBOX is its first folder, so its corpus seed is the same
COUNT = 200
# SHA-256 of the scenario's 200 messages, concatenated. The corpus must not drift between
# machines or releases: if the generator is changed on purpose, bump fuzz.VERSION and set this
# to the new digest, so that old X-Fuzz-Seed/X-Fuzz-Index pairs are not silently reinterpreted.
CORPUS_SHA256 = "9294bbd1d4da31c10d353299e595dfe5f8e2573b1f37bb27b49df035005e917d"
INDEX_LINE = re.compile(rb"^X-Fuzz-Index: (\d+)\r?$", re.M)
LONE_CR = re.compile(rb"\r(?!\n)")
USER = "alice@example.test"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    return fuzz.messages(SEED, COUNT)


def without_seed_line(raw: bytes) -> bytes:
    return re.sub(rb"^X-Fuzz-Seed: -?\d+\r?\n", b"", raw, count=1, flags=re.M)


def header_block(raw: bytes) -> bytes:
    end = re.search(rb"\r?\n\r?\n", raw)
    return raw[: end.start()] if end else raw


# -- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_whatever_was_generated_before(corpus):
    assert fuzz.messages(SEED, COUNT) == corpus
    assert [fuzz.generate(SEED, i) for i in reversed(range(COUNT))] == corpus[::-1]
    assert fuzz.messages(SEED, 5, start=150) == corpus[150:155]


def test_same_seed_gives_the_same_bytes_in_other_processes(corpus):
    digest = hashlib.sha256(b"".join(corpus)).hexdigest()
    code = ("import hashlib; from fake_servers.mailstore import fuzz; "
            f"print(hashlib.sha256(b''.join(fuzz.messages({SEED}, {COUNT}))).hexdigest())")
    seen = set()
    for hash_seed in ("1", "2"):  # str/bytes hashing differs per process unless pinned: it must not matter
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "LC_ALL": "C", "TZ": "Pacific/Kiritimati"}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60, check=True)
        seen.add(out.stdout.strip())
    assert seen == {digest}


def test_the_scenario_corpus_is_pinned(corpus):
    assert hashlib.sha256(b"".join(corpus)).hexdigest() == CORPUS_SHA256, (
        "the fuzz corpus changed: if on purpose, bump fuzz.VERSION and update CORPUS_SHA256")


def test_different_seeds_give_different_messages():
    for index in range(40):
        assert without_seed_line(fuzz.generate(1, index)) != without_seed_line(fuzz.generate(2, index))
    assert fuzz.generate(1, 0) != fuzz.generate(1, 1)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(-2 ** 70, 2 ** 70), index=st.integers(0, 10 ** 9))
def test_any_seed_and_index_give_a_reproducible_named_message(seed, index):
    raw = fuzz.generate(seed, index)
    assert fuzz.generate(seed, index) == raw
    assert raw.startswith(b"X-Fuzz-Index: %d\r\nX-Fuzz-Seed: %d" % (index, seed)) or \
        raw.startswith(b"X-Fuzz-Index: %d\nX-Fuzz-Seed: %d" % (index, seed))
    assert INDEX_LINE.findall(raw) == [b"%d" % index]
    assert LONE_CR.search(raw) is None
    assert f'"fuzz #{index}' in describe_message(raw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=fuzz.strategy(st.integers(0, 999)))
def test_hypothesis_driven_messages_keep_the_same_invariants(raw):
    (index,) = INDEX_LINE.findall(raw)
    assert LONE_CR.search(raw) is None
    assert f'"fuzz #{int(index)}' in describe_message(raw)
    assert b"X-Fuzz-Seed" not in raw  # no seed: Hypothesis took the decisions


# -- the corpus --------------------------------------------------------------------------------


def test_n_distinct_messages_each_with_its_own_greppable_index(corpus):
    assert len(set(corpus)) == COUNT
    assert len({normalise(m) for m in corpus}) == COUNT  # distinct as the store checks compare them
    for i, raw in enumerate(corpus):
        assert INDEX_LINE.findall(raw) == [b"%d" % i]
        assert INDEX_LINE.match(raw), "X-Fuzz-Index is the first line"
        assert header(raw, "X-Fuzz-Seed") == str(SEED)
        assert header(raw, "Subject").startswith(f"fuzz #{i}")
    everything = b"\n".join(corpus)
    assert len(re.findall(rb"^X-Fuzz-Index: 17\r?$", everything, re.M)) == 1


def test_the_corpus_contains_the_stressors_it_promises(corpus):
    def count(predicate) -> int:
        return sum(1 for m in corpus if predicate(m))

    ids = [header(m, "Message-ID") for m in corpus]
    features = {
        "LF-only": count(lambda m: b"\n" in m and b"\r\n" not in m),
        "bare LF among CRLF": count(lambda m: b"\r\n" in m and re.search(rb"(?<!\r)\n", m)),
        "folded header": count(lambda m: re.search(rb"\n[ \t]+\S", header_block(m))),
        "raw 8-bit header": count(lambda m: re.search(rb"[\x80-\xff]", header_block(m))),
        "encoded word": count(lambda m: re.search(rb"=\?[^?\s]*\?[BbQq]\?", header_block(m))),
        "nested multipart": count(lambda m: len(re.findall(rb"multipart/", m, re.I)) >= 2),
        "boundary with a space": count(lambda m: b'boundary="with space ' in m),
        "base64 part": count(lambda m: re.search(rb"Content-Transfer-Encoding: base64", m, re.I)),
        "line over 998": count(lambda m: any(len(line) > 998 for line in m.split(b"\n"))),
        "NUL": count(lambda m: b"\x00" in m),
        "invalid UTF-8": count(lambda m: _invalid_utf8(m)),
        "no Message-ID": ids.count(None),
        "Message-ID over 500": sum(1 for i in ids if i and len(i) > 500),
        "Message-ID without brackets": sum(1 for i in ids if i and "@" in i and not i.startswith("<")),
        "no line end at the end": count(lambda m: not m.endswith(b"\n")),
        "headers only": count(lambda m: re.search(rb"\r?\n\r?\n", m) is None),
        "message/rfc822": count(lambda m: b"message/rfc822" in m),
    }
    rare = {name: n for name, n in features.items() if n < 2}
    assert rare == {}, features
    shared = [i for i in set(ids) if i and ids.count(i) > 1]
    assert shared, "two different messages share a Message-ID"


def _invalid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_messages_stay_small_enough_for_a_quick_scenario(corpus):
    assert max(len(m) for m in corpus) < 200_000
    assert sum(len(m) for m in corpus) < 4_000_000


# -- provider files --------------------------------------------------------------------------------


def test_fuzz_fills_folders_from_the_provider_seed_and_folder_position():
    spec = from_mapping({"seed": 10, "accounts": [{"username": USER, "password": PASSWORD, "folders": [
        {"name": "INBOX", "fuzz": 3}, {"name": "Archive", "fuzz": 2, "messages": [{"raw": "Subject: x\r\n\r\n"}]}]}]})
    account = spec.build().store.account(USER)
    assert [m.raw for m in account.folder("INBOX").messages] == fuzz.messages(10, 3)
    archive = [m.raw for m in account.folder("Archive").messages]
    assert archive == [b"Subject: x\r\n\r\n"] + fuzz.messages(11, 2)  # listed messages first, then fuzz
    assert [m.size for m in account.folder("INBOX").messages] == [len(m) for m in fuzz.messages(10, 3)]
    assert account.folder("INBOX").messages[2].internal_date == datetime.datetime(
        2024, 1, 1, 0, 2, 30, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(("folder", "says"), [
    ({"name": "INBOX", "fuzz": "200"}, "expected int"),
    ({"name": "INBOX", "fuzz": True}, "expected int"),
    ({"name": "INBOX", "fuzz": -1}, "at least 0"),
    ({"name": "INBOX", "fuz": 3}, "did you mean 'fuzz'"),
])
def test_fuzz_option_is_loaded_strictly(folder, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        from_mapping({"accounts": [{"username": USER, "password": PASSWORD, "folders": [folder]}]})


# -- the fake serves them byte-exact -----------------------------------------------------------------


@pytest.fixture(scope="module")
def fake():
    """A started fake with an empty INBOX, and an imapclient session on it (module-wide:
    Hypothesis runs many examples against one server)."""
    provider = FakeProvider().start()
    provider.call(lambda: provider.store.add_account(USER, PASSWORD))
    client = imapclient.IMAPClient(provider.host, port=provider.imap_port, ssl=False, timeout=10)
    client.starttls(ssl.create_default_context(cafile=str(provider.ca_file)))
    client.login(USER, PASSWORD)
    client.select_folder("INBOX", readonly=True)
    yield provider, client
    try:
        client.logout()
    finally:
        provider.stop()


def _append(provider, raw: bytes) -> int:
    return provider.call(lambda: provider.store.account(USER).folder("INBOX").append(raw).uid)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=fuzz.strategy())
def test_the_fake_serves_every_fuzzed_message_byte_exact(fake, raw):
    provider, client = fake
    uid = _append(provider, raw)
    client.noop()  # the selected session learns of the new message
    data = client.fetch([uid], ["BODY.PEEK[]", "RFC822.SIZE"])[uid]
    assert data[b"BODY[]"] == raw
    assert data[b"RFC822.SIZE"] == len(raw)


def test_the_scenario_provider_serves_its_corpus_byte_exact(corpus):
    provider = load(SCENARIO).provider.build().start()
    try:
        client = imapclient.IMAPClient(provider.host, port=provider.imap_port, ssl=False, timeout=10)
        client.starttls(ssl.create_default_context(cafile=str(provider.ca_file)))
        client.login(USER, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        served = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"])
        client.logout()
    finally:
        provider.stop()
    assert [served[uid][b"BODY[]"] for uid in sorted(served)] == corpus


# -- a failing message is named, and replays ---------------------------------------------------------


def test_store_evidence_names_a_damaged_message_and_it_replays(corpus, tmp_path):
    damaged, lost = 57, 123
    maildir = tmp_path / "Maildir" / "INBOX"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i, raw in enumerate(corpus):
        if i == lost:
            continue
        data = raw.replace(b"\x00", b"") + b"x" if i == damaged else raw  # a client that "cleans" a message
        (maildir / "new" / f"{i}.fuzz").write_bytes(data)
    obs = Observation(scenario=SimpleNamespace(id="imap.msg.fuzzed"), wire=WireLog(),
                      outcomes=[Outcome(1, 0, False, 0.5, "", "")], maildir=tmp_path / "Maildir",
                      outbox=tmp_path / "outbox", username=USER, password=PASSWORD,
                      server_after_run=[{"INBOX": corpus}])
    result = checks.run("store_matches_server", obs, "MUST", {})
    assert result.passed is False, result
    observed = result.evidence[0].observed
    for i in (damaged, lost):
        assert f'"fuzz #{i} ' in observed or f'"fuzz #{i}"' in observed, observed
        assert describe_message(corpus[i]).split(" ")[0] in observed  # its Message-ID (or "(no")
    replay = tmp_path / "replay.eml"
    subprocess.run([sys.executable, "-m", "fake_servers.mailstore.fuzz", "--seed", str(SEED), "--index",
                    str(damaged), "--out", str(replay)], cwd=ROOT, check=True, timeout=60)
    assert replay.read_bytes() == corpus[damaged]


# -- the scenario end to end -------------------------------------------------------------------------


def run_cli(tmp_path, *args: str) -> tuple[int, dict, str]:
    """``mailconform run`` (the reference client unless told otherwise) with reports in tmp_path."""
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--json", str(report),
                           "--html", str(tmp_path / "report.html"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc.returncode, json.loads(report.read_text()) if report.exists() else {}, proc.stderr


def test_reference_client_passes_the_fuzzed_scenario(tmp_path):
    code, report, err = run_cli(tmp_path, "--scenario", "imap.msg.fuzzed")
    assert {r["id"]: r["verdict"] for r in report["results"]} == {"imap.msg.fuzzed": "PASS"}, err
    assert code == 0
    (result,) = report["results"]
    store = next(c for c in result["checks"] if c["check"] == "store_matches_server")
    assert f"INBOX: {COUNT}/{COUNT}" in store["evidence"][0]["observed"]
