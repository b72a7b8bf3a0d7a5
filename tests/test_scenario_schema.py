"""The scenario JSON Schema, docs/scenarios.md, and the loader's file:line error messages.

The schema is generated from the loader's tables; these tests keep the committed copy and the
guide current, check that shipped scenarios validate, and that what the loader refuses the
schema refuses too (so an editor flags it before a run does).
"""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from pathlib import Path

import pytest

from fake_servers.provider_config import PERSONA_DIR
from harness import checks as registry
from harness.cli import main
from harness.scenario import SCENARIO_DIR, ScenarioError, _Spots, load
from harness.schema import checks_markdown, scenario_schema, schema_json
from tests.schema_subset import KEYWORDS, errors, keywords

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "docs" / "scenario-schema.json"
GUIDE_PATH = ROOT / "docs" / "scenarios.md"
SCENARIO_FILES = sorted(SCENARIO_DIR.rglob("*.toml"))


def as_json(value):
    """TOML data as an editor hands it to a JSON Schema: date-times become strings."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return value


@pytest.fixture(scope="module")
def schema() -> dict:
    return scenario_schema()


def validate(text: str, schema: dict) -> list[str]:
    return errors(as_json(tomllib.loads(text)), schema, schema)


# -- the schema --------------------------------------------------------------------------------------


def test_committed_schema_is_current():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_json(), \
        "docs/scenario-schema.json is stale: mailconform schema > docs/scenario-schema.json"


def test_cli_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == scenario_schema()


def test_schema_uses_only_keywords_the_validator_checks(schema):
    assert set(keywords(schema)) <= KEYWORDS
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_names_every_registered_check_with_its_parameters(schema):
    entry = schema["$defs"]["check"]
    assert entry["properties"]["check"]["enum"] == list(registry.CHECKS)
    branches = {b["if"]["properties"]["check"]["const"]: b["then"] for b in entry["allOf"]}
    for name, spec in registry.CHECKS.items():
        assert set(branches[name]["properties"]) == {"check", "level", *spec.params}
        assert branches[name]["additionalProperties"] is False
        assert branches[name].get("required", []) == spec.required


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: str(p.relative_to(SCENARIO_DIR)))
def test_shipped_scenario_validates(path, schema):
    assert validate(path.read_text(encoding="utf-8"), schema) == []


@pytest.mark.parametrize("path", sorted(PERSONA_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_persona_validates_as_a_provider(path, schema):
    data = as_json(tomllib.loads(path.read_text(encoding="utf-8")))
    assert errors(data, {"$ref": "#/$defs/provider"}, schema) == []


HEAD = 'id = "x.broken.case"\ntitle = "t"\nlevel = "MUST"\nrequirement = "r"\nsource = "s"\n'
CHECK = '\n[[checks]]\ncheck = "not_killed"\n'


def document(text: str) -> str:
    """A case's scenario: HEAD and the text, unless the text is a whole scenario itself."""
    return text if text.startswith(HEAD.split("\n")[0]) else HEAD + text

# (name, text after HEAD, a fragment of the schema error): each also fails to load.
BROKEN = [
    ("unknown top-level key", 'tagz = ["x"]\n' + CHECK, "$.tagz"),
    ("wrong top-level type", 'runs = "2"\n' + CHECK, "$.runs"),
    ("runs below 1", "runs = 0\n" + CHECK, "$.runs"),
    ("unknown need", 'needs = ["imapp"]\n' + CHECK, "$.needs[0]"),
    ("no checks", "", "$.checks"),
    ("unknown client key", '[client]\nimap_securty = "tls"\n' + CHECK, "$.client.imap_securty"),
    ("client enum", '[client]\nimap_security = "startls"\n' + CHECK, "$.client.imap_security"),
    ("unknown check", '\n[[checks]]\ncheck = "not_kiled"\n', "$.checks[0].check"),
    ("unknown check parameter", '\n[[checks]]\ncheck = "max_login_attempts"\nn = 2\nnn = 3\n', "$.checks[0].nn"),
    ("parameter of another check", '\n[[checks]]\ncheck = "not_killed"\nn = 2\n', "$.checks[0].n"),
    ("wrong parameter type", '\n[[checks]]\ncheck = "max_login_attempts"\nn = "2"\n', "$.checks[0].n"),
    ("parameter choice", '\n[[checks]]\ncheck = "exit_status"\nexpect = "never"\n', "$.checks[0].expect"),
    ("list parameter choice", '\n[[checks]]\ncheck = "used_tls"\nmin_version = "SSLv3"\n',
     "$.checks[0].min_version"),
    ("missing parameter", '\n[[checks]]\ncheck = "max_login_attempts"\n', "$.checks[0].n"),
    ("parameter below minimum", '\n[[checks]]\ncheck = "max_connections"\nn = 0\n', "$.checks[0].n"),
    ("check level", '\n[[checks]]\ncheck = "not_killed"\nlevel = "SHOUD"\n', "$.checks[0].level"),
    ("scenario level", HEAD.replace('"MUST"', '"MUTS"') + CHECK, "$.level"),
    ("unknown provider key", '[provider]\ncerts = "expired"\n' + CHECK, "$.provider.certs"),
    ("certificate kind", '[provider]\ncert = "expird"\n' + CHECK, "$.provider.cert"),
    ("unknown persona", '[provider]\npersona = "gmial"\n' + CHECK, "$.provider.persona"),
    ("unknown imap key", "[provider.imap]\nstarttsl = false\n" + CHECK, "$.provider.imap.starttsl"),
    ("imap type", '[provider.imap]\nstarttls = "no"\n' + CHECK, "$.provider.imap.starttls"),
    ("unknown text", '[provider.imap.texts]\ngreting = "hi"\n' + CHECK, "$.provider.imap.texts.greting"),
    ("account without password", '[[provider.accounts]]\nusername = "a@example.test"\n' + CHECK,
     "$.provider.accounts[0].password"),
    ("uidvalidity policy", '[[provider.accounts]]\nusername = "a"\npassword = "p"\nuidvalidity_policy = "sometimes"\n'
     + CHECK, "$.provider.accounts[0].uidvalidity_policy"),
    ("folder without name", '[[provider.accounts]]\nusername = "a"\npassword = "p"\n[[provider.accounts.folders]]\n'
     "generate = 2\n" + CHECK, "$.provider.accounts[0].folders[0].name"),
    ("message with raw and file", '[[provider.accounts]]\nusername = "a"\npassword = "p"\n'
     '[[provider.accounts.folders]]\nname = "INBOX"\n[[provider.accounts.folders.messages]]\n'
     'raw = "Subject: x\\r\\n\\r\\nx"\nfile = "x.eml"\n' + CHECK, "$.provider.accounts[0].folders[0].messages[0]"),
    ("unknown event", '[[provider.faults]]\non = "conect"\naction = "close"\n' + CHECK, "$.provider.faults[0].on"),
    ("unknown fault action", '[[provider.faults]]\non = "command"\naction = "replay"\nstatus = "NO"\n' + CHECK,
     "$.provider.faults[0].action"),
    ("parameter of another action", '[[provider.faults]]\non = "command"\naction = "close"\nseconds = 2\n'
     + CHECK, "$.provider.faults[0].seconds"),
    ("unknown fault key", '[[provider.faults]]\non = "command"\naction = "close"\ncomand = "LOGIN"\n' + CHECK,
     "$.provider.faults[0].comand"),
    ("matcher the event never carries", '[[provider.faults]]\non = "connect"\ncommand = "LOGIN"\naction = "close"\n'
     + CHECK, "$.provider.faults[0].command"),
    ("action the event cannot do", '[[provider.faults]]\non = "tls"\naction = "reply"\nstatus = "NO"\n' + CHECK,
     "$.provider.faults[0].action"),
    ("fault without action", '[[provider.faults]]\non = "command"\n' + CHECK, "$.provider.faults[0]"),
    ("action list item parameter", '[[provider.faults]]\non = "command"\n'
     'actions = [{action = "bye", txt = "x"}]\n' + CHECK, "$.provider.faults[0].actions[0].txt"),
    ("matcher below minimum", '[[provider.faults]]\non = "command"\nnth = 0\naction = "close"\n' + CHECK,
     "$.provider.faults[0].nth"),
    ("uidvalidity mode", 'runs = 2\n[[between_runs]]\nactions = [{action = "uidvalidity", mode = "reshuffle"}]\n'
     + CHECK, "$.between_runs[0].actions[0].mode"),
    ("between-runs action that is no state action", 'runs = 2\n[[between_runs]]\nactions = [{action = "reset"}]\n'
     + CHECK, "$.between_runs[0].actions[0].action"),
    ("between-runs action parameter", 'runs = 2\n[[between_runs]]\nactions = [{action = "expunge", cont = 1}]\n'
     + CHECK, "$.between_runs[0].actions[0].cont"),
    ("unknown between-runs key", 'runs = 2\n[[between_runs]]\nafter = 1\nbefore = 2\n' + CHECK,
     "$.between_runs[0].before"),
    ("unknown outbox key", "[[outbox]]\ngenerate = 1\nrecipient = 3\n" + CHECK, "$.outbox[0].recipient"),
    ("outbox raw and generate", '[[outbox]]\ngenerate = 1\nraw = "To: a@b\\r\\nMessage-ID: <x@y>\\r\\n\\r\\nx"\n'
     + CHECK, "$.outbox[0]"),
    ("outbox with no message", "[[outbox]]\nrun = 1\n" + CHECK, "$.outbox[0]"),
    ("generated-only key on a given message", '[[outbox]]\nraw = "To: a@b\\r\\nMessage-ID: <x@y>\\r\\n\\r\\nx"\n'
     "size = 10\n" + CHECK, "$.outbox[0].size"),
    ("outbox run below 1", "[[outbox]]\ngenerate = 1\nrun = 0\n" + CHECK, "$.outbox[0].run"),
    ("client smtp endpoint", '[client]\nsmtp_endpoint = "implict"\n' + CHECK, "$.client.smtp_endpoint"),
    ("unknown smtp key", "[provider.smtp]\nstarttsl = false\n" + CHECK, "$.provider.smtp.starttsl"),
    ("smtp type", '[provider.smtp]\nsize_limit = "20MB"\n' + CHECK, "$.provider.smtp.size_limit"),
    ("smtp mechanism", '[provider.smtp]\nauth_mechanisms = ["CRAM-MD5"]\n' + CHECK, "$.provider.smtp.auth_mechanisms[0]"),
    ("smtp text without a code", '[provider.smtp.texts]\ngreylisted = "try later"\n' + CHECK,
     "$.provider.smtp.texts.greylisted"),
    ("client discover type", '[client]\ndiscover = "yes"\n' + CHECK, "$.client.discover"),
    ("unknown discovery key", '[provider.discovery]\ndomian = "example.test"\n' + CHECK, "$.provider.discovery.domian"),
    ("autodiscover answer", '[provider.discovery.autodiscover]\nroot = "sucess"\n' + CHECK,
     "$.provider.discovery.autodiscover.root"),
    ("autodiscover answer key it ignores", '[provider.discovery.autodiscover]\n'
     'root = { answer = "not_found", url = "https://x.example.test/" }\n' + CHECK,
     "$.provider.discovery.autodiscover.root"),
    ("srv without target", '[[provider.discovery.srv]]\nservice = "_imaps._tcp"\nport = 993\n' + CHECK,
     "$.provider.discovery.srv[0].target"),
    ("autoconfig socket", '[[provider.discovery.autoconfig.incoming]]\nhostname = "imap.example.test"\nport = 993\n'
     'socket = "TLS"\n' + CHECK, "$.provider.discovery.autoconfig.incoming[0].socket"),
    ("oauth signing", '[provider.discovery.oauth]\nsigning = "RS256"\n' + CHECK, "$.provider.discovery.oauth.signing"),
]


@pytest.mark.parametrize("text, fragment", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_scenario_fails_schema_and_loader(text, fragment, schema, tmp_path):
    found = validate(document(text), schema)
    assert any(e.startswith(fragment) for e in found), found
    path = tmp_path / "broken.toml"
    path.write_text(document(text), encoding="utf-8")
    with pytest.raises(ScenarioError):
        load(path)


def test_missing_id_fails_schema_and_loader(schema, tmp_path):
    text = HEAD.replace('id = "x.broken.case"\n', "") + CHECK
    assert "$.id: missing" in validate(text, schema)
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match="missing 'id'"):
        load(path)


# -- docs/scenarios.md -----------------------------------------------------------------------------------


def test_guide_has_the_check_table_of_the_registry():
    assert checks_markdown() in GUIDE_PATH.read_text(encoding="utf-8"), \
        "docs/scenarios.md: replace the check table with the output of python -m harness.schema checks"


def test_guide_documents_every_registered_check():
    guide = GUIDE_PATH.read_text(encoding="utf-8")
    assert [name for name in registry.CHECKS if f"| `{name}` |" not in guide] == []


def test_guide_example_loads_and_validates(schema, tmp_path):
    guide = GUIDE_PATH.read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", guide, re.S).group(1)
    assert validate(example, schema) == []
    path = tmp_path / "example.toml"
    path.write_text(example, encoding="utf-8")
    assert load(path).checks


# -- the loader's errors: file, line, closest valid word ----------------------------------------------------

# Each text marks the line the error must name with "# <-".
ERRORS = [
    ("unknown top-level key", 'tagz = ["x"]  # <-\n' + CHECK, "did you mean 'tags'"),
    ("unknown check", '\n[[checks]]\ncheck = "not_kiled"  # <-\n', "did you mean 'not_killed'"),
    ("unknown check parameter", '\n[[checks]]\ncheck = "error_mentions"\npaterns = ["tls"]  # <-\n',
     "did you mean 'patterns'"),
    ("wrong check level", '\n[[checks]]\ncheck = "not_killed"\nlevel = "SHOUD"  # <-\n', "did you mean 'SHOULD'"),
    ("wrong scenario level", HEAD.replace('"MUST"', '"MUTS"  # <-') + CHECK, "did you mean 'MUST'"),
    ("unknown fault action", '[[provider.faults]]\non = "command"\ncommand = "LOGIN"\naction = "replay"  # <-\n'
     'status = "NO"\n' + CHECK, "did you mean 'reply'"),
    # a key that recurs: the line of the entry at fault, not the first with that name
    ("repeated parameter name", '\n[[checks]]\ncheck = "max_login_attempts"\nn = 2\n\n[[checks]]\n'
     'check = "max_connections"\nn = "3"  # <-\n', "'n' must be an integer"),
    ("fault parameter", '[[provider.faults]]\non = "command"\naction = "reply"\nstatus = "NO"\nstaus = "BAD"  # <-\n'
     + CHECK, "did you mean 'status'"),
    ("parameter inside an actions list", '[[provider.faults]]\non = "command"\naction = "close"\n\n'
     '[[provider.faults]]\non = "command"\nactions = [\n  {action = "reply", status = "NO"},\n'
     '  {action = "bye", txt = "x"},  # <-\n]\n' + CHECK, "did you mean 'text'"),
    ("between-runs parameter", 'runs = 2\n\n[[between_runs]]\nactions = [\n  {action = "expunge", count = 1},\n'
     '  {action = "new_mail", cont = 1},  # <-\n]\n' + CHECK, "did you mean 'count'"),
    ("imap key", "[provider.imap]\nstarttls = true\nstarttsl = false  # <-\n" + CHECK, "did you mean 'starttls'"),
    ("persona", '[provider]\npersona = "gmial"  # <-\n' + CHECK, "did you mean 'gmail'"),
    ("client choice", '[client]\nimap_security = "startls"  # <-\n' + CHECK, "did you mean 'starttls'"),
    ("TOML syntax", "runs = = 2  # <-\n" + CHECK, "Invalid value"),
    ("outbox key", "[[outbox]]\ngenerate = 1\n\n[[outbox]]\ngenerate = 2\nrecipent = 3  # <-\n" + CHECK,
     "did you mean 'recipients'"),
    ("outbox message without Message-ID", '[[outbox]]\ngenerate = 1\n\n[[outbox]]\n'
     'raw = "To: bob@example.test\\r\\n\\r\\nHi.\\r\\n"  # <-\n' + CHECK, "no Message-ID"),
    ("outbox size on a given message", '[[outbox]]\nraw = "To: a@example.test\\r\\nMessage-ID: <a@b>\\r\\n\\r\\nx"\n'
     "size = 5  # <-\n" + CHECK, "only applies to generated messages"),
    ("outbox run past the last", "runs = 2\n[[outbox]]\ngenerate = 1\nrun = 3  # <-\n" + CHECK, "must name a run"),
    ("outbox message twice", '[[outbox]]\nraw = "To: a@example.test\\r\\nMessage-ID: <a@b>\\r\\n\\r\\nx"\n\n'
     '[[outbox]]  # <-\nraw = "To: c@example.test\\r\\nMessage-ID: <a@b>\\r\\n\\r\\ny"\n' + CHECK, "its own"),
    ("smtp endpoint", '[client]\nsmtp_endpoint = "implict"  # <-\n' + CHECK, "did you mean 'implicit'"),
    ("smtp key", "[provider.smtp]\nstarttls = true\ngreylst = true  # <-\n" + CHECK, "did you mean 'greylist'"),
    ("discovery key inline", '[provider.discovery.autodiscover]\nroot = "not_found"\n'
     'autodiscover = { answer = "redirect_url", ulr = "https://x.example.test/" }  # <-\n' + CHECK,
     "did you mean 'url'"),
    ("srv record key", '[[provider.discovery.srv]]\nservice = "_imaps._tcp"\ntarget = "imap.example.test"\n'
     'port = "imaps"\n\n[[provider.discovery.srv]]\nservice = "_imap._tcp"\ntarget = "."\nprot = 143  # <-\n'
     + CHECK, "did you mean 'port'"),
    ("discover without discovery", '[client]\ndiscover = true  # <-\n' + CHECK, "needs a [provider.discovery]"),
]


def _paths(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + (key,)
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield path + (n,)
            yield from _paths(item, path + (n,))


@pytest.mark.parametrize("path", SCENARIO_FILES + sorted(PERSONA_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_key_of_a_shipped_file_has_a_line(path):
    text = path.read_text(encoding="utf-8")
    spots = _Spots(text)
    assert [p for p in _paths(tomllib.loads(text)) if p not in spots.lines] == []


@pytest.mark.parametrize("text, words", [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_loader_error_names_file_line_and_closest_word(text, words, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(document(text), encoding="utf-8")
    line = next(n for n, t in enumerate(document(text).splitlines(), start=1) if t.endswith("# <-"))
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_fault_error_line_counts_past_a_personas_own_rules(tmp_path, monkeypatch):
    # merged, the persona's two rules come first: the loader's faults[3] is the file's second rule
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "flaky.toml").write_text('[[faults]]\non = "connect"\naction = "close"\n' * 2, encoding="utf-8")
    monkeypatch.setattr("fake_servers.provider_config.PERSONA_DIR", personas)
    rule = '\n[[provider.faults]]\non = "command"\naction = "reply"\nstatus = "NO"\n'
    text = '[provider]\npersona = "flaky"\n' + rule + 'text = "fine"\n' + rule + "text = 5  # <-\n" + CHECK
    path = tmp_path / "broken.toml"
    path.write_text(document(text), encoding="utf-8")
    line = next(n for n, t in enumerate(document(text).splitlines(), start=1) if t.endswith("# <-"))
    with pytest.raises(ScenarioError, match=r"faults\[3\].*'text' must be str") as info:
        load(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
