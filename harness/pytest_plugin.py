"""pytest plugin: fixtures for your own tests, and the scenario catalog as test items.

Fixtures::

    def test_my_client_survives_throttling(mailconform_provider):
        provider = mailconform_provider(faults=[{"on": "command", "command": "UID FETCH", "nth": 1,
                                                 "action": "bye", "text": "throttled"}])
        my_client.sync(provider.host, provider.imap_port, ca_file=provider.ca_file, ...)
        assert provider.wire.peak_concurrency() <= 2

    def test_my_client_refuses_plaintext(mailconform_run):
        result = mailconform_run("imap.tls.no-starttls", client="my-sync --once")
        assert result.verdict == "PASS", result.reason

Catalog mode (one test item per scenario, selectable with ``-k`` and ``-m``)::

    pytest --mailconform-client 'python -m my_client' [--mailconform-features imap,idle] \
           [--mailconform-scenario 'imap.tls.*'] -n auto

The client may also come from the ini option ``mailconform_client`` (the command line wins).
Without paths on the command line the catalog directory (``--mailconform-scenarios-dir``,
default: the bundled catalog) is collected instead of the test paths; scenario files are
``.toml`` files under that directory, or ``.toml`` files named on the command line.

Verdicts map to outcomes: PASS, NON-STRICT and INFO pass (the verdict and its evidence are
attached as the report section ``mailconform``), UNSUPPORTED and SKIPPED skip, XFAIL xfails,
FAIL, ERROR and XPASS fail with the evidence, the wire excerpts and a replay command. Each
item records ``("verdict", ...)`` in ``user_properties`` (JUnit XML ``<properties>``).

Nothing of the engine is imported unless catalog mode is asked for or a fixture is used.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from .verdicts import ScenarioResult, Verdict

_SPEC = pytest.StashKey[object]()  # the AdapterSpec of catalog mode, or None
_SEEN_IDS = pytest.StashKey[dict]()  # scenario id -> file, to refuse duplicates
_MARKERS = pytest.StashKey[set]()  # markers registered so far
_EXPLICIT = pytest.StashKey[set]()  # TOML files named on the command line

WIRE_LINES = 80  # lines of a whole transcript shown when no failing check quoted the wire
OUTPUT_LINES = 40


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailconform", "email client conformance")
    group.addoption("--mailconform-client", default=None, metavar="TEMPLATE",
                    help="run the scenario catalog against this client command template")
    group.addoption("--mailconform-client-python", default=None, metavar="MODULE:CALLABLE",
                    help="run the scenario catalog against an in-process client")
    group.addoption("--mailconform-client-config", default=None, metavar="FILE",
                    help="config-file template for the client ({config})")
    group.addoption("--mailconform-features", default=None, help="the client's features, e.g. imap,idle")
    group.addoption("--mailconform-scenario", action="append", default=None, metavar="GLOB",
                    help="scenario ids or globs (repeatable)")
    group.addoption("--mailconform-scenarios-dir", default=None, help="directory of scenario files")
    group.addoption("--mailconform-seed", type=int, default=0, help="seed for every random choice")
    parser.addini("mailconform_client", "client command template for catalog mode", default="")


def _adapter_spec(config: pytest.Config):
    python = config.getoption("--mailconform-client-python")
    cli_command = config.getoption("--mailconform-client")
    command = cli_command or config.getini("mailconform_client")
    if not (python or command):
        return None  # an ordinary pytest run: the plugin only offers fixtures
    if python and cli_command:
        raise pytest.UsageError("--mailconform-client and --mailconform-client-python exclude each other")
    from .adapters.base import AdapterError
    from .run_command import AdapterSpec

    features = config.getoption("--mailconform-features")
    if python:
        spec = AdapterSpec("python", python, None, features)
    else:
        spec = AdapterSpec("command", command, config.getoption("--mailconform-client-config"), features)
    try:
        spec()  # a bad client, template or feature list is bad usage, reported once, before any item
    except AdapterError as exc:
        raise pytest.UsageError(f"mailconform: {exc}") from None
    return spec


def _marker(prefix: str, value: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9]+", "_", value).strip("_").lower()


def _register_marker(config: pytest.Config, name: str, description: str) -> None:
    registered = config.stash.setdefault(_MARKERS, set())
    if name not in registered:
        registered.add(name)
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_configure(config: pytest.Config) -> None:
    _register_marker(config, "mailconform", "a scenario of the mailconform catalog")
    for level in ("must", "should", "info"):
        _register_marker(config, f"level_{level}", f"mailconform scenarios of level {level.upper()}")
    config.stash[_SPEC] = _adapter_spec(config)
    config.stash[_SEEN_IDS] = {}


def _scenarios_dir(config: pytest.Config) -> Path:
    directory = config.getoption("--mailconform-scenarios-dir")
    if directory:
        return (config.invocation_params.dir / directory).resolve()
    from .scenario import SCENARIO_DIR

    return SCENARIO_DIR.resolve()


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """In catalog mode, collect the scenarios (not the test files) unless paths were given."""
    config = session.config
    if config.stash[_SPEC] is None:
        return
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(_scenarios_dir(config))]
    # TOML files named on the command line are scenarios wherever they are (pytest drops an
    # argument inside another one, so Session.isinitpath cannot tell).
    config.stash[_EXPLICIT] = {(config.invocation_params.dir / arg.split("::")[0]).resolve()
                               for arg in config.args if arg.split("::")[0].endswith(".toml")}


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    config = parent.config
    if config.stash.get(_SPEC, None) is None or file_path.suffix != ".toml":
        return None
    # Only scenario files: under the catalog directory, or named on the command line. Other
    # TOML files (pyproject.toml, provider files, test data) are not scenarios.
    path = file_path.resolve()
    if not (path.is_relative_to(_scenarios_dir(config)) or path in config.stash.get(_EXPLICIT, ())):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    def collect(self):
        from .scenario import ScenarioError, load

        try:
            scenario = load(self.path)
        except ScenarioError as exc:  # file:line: what, and the closest valid word; no traceback
            raise self.CollectError(str(exc)) from None
        seen = self.config.stash[_SEEN_IDS]
        other = seen.setdefault(scenario.id, self.path)
        if other != self.path:
            raise self.CollectError(f"{self.path}: id {scenario.id!r} is already used by {other}")
        patterns = self.config.getoption("--mailconform-scenario")
        if not scenario.matches(patterns):
            return
        item = ScenarioItem.from_parent(self, name=scenario.id, scenario=scenario)
        item.add_marker("mailconform")
        item.add_marker(f"level_{scenario.level.lower()}")
        area = _marker("area_", scenario.area)
        _register_marker(self.config, area, f"mailconform scenarios of area {scenario.area}")
        item.add_marker(area)
        for tag in scenario.tags:
            name = _marker("tag_", tag)
            _register_marker(self.config, name, f"mailconform scenarios tagged {tag}")
            item.add_marker(name)
        yield item


class ScenarioFailure(Exception):
    def __init__(self, result: ScenarioResult, text: str) -> None:
        super().__init__(result.reason)
        self.result = result
        self.text = text


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.mailconform_result: ScenarioResult | None = None

    def runtest(self) -> None:
        from .runner import RunOptions, run_scenario

        spec = self.config.stash[_SPEC]
        seed = self.config.getoption("--mailconform-seed")
        result = run_scenario(self.scenario, spec(), RunOptions(seed=seed))
        result.replay = _replay(self.config, spec, self.scenario, seed)
        self.mailconform_result = result
        self.user_properties.append(("verdict", result.verdict.value))
        text = _describe(result, secrets=_secrets(self.scenario))
        verdict = Verdict(result.verdict)
        if verdict.fails_run:
            raise ScenarioFailure(result, text)  # the failure report carries the text
        self.add_report_section("call", "mailconform", text)
        if verdict in (Verdict.UNSUPPORTED, Verdict.SKIPPED):
            pytest.skip(f"{verdict.value}: {result.reason}")
        if verdict is Verdict.XFAIL:
            pytest.xfail(result.reason)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailure):
            return excinfo.value.text
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"scenario {self.scenario.id}"


def _replay(config: pytest.Config, spec, scenario, seed: int) -> str:
    """The pytest command line that runs this one scenario again, as this run did."""
    parts = ["pytest"]
    if spec.kind == "python":
        parts += ["--mailconform-client-python", spec.target]
    else:
        parts += ["--mailconform-client", spec.target]
        if spec.config:
            parts += ["--mailconform-client-config", spec.config]
    if spec.features:
        parts += ["--mailconform-features", spec.features]
    directory = config.getoption("--mailconform-scenarios-dir")
    if directory:
        parts += ["--mailconform-scenarios-dir", directory]
    parts += ["--mailconform-scenario", scenario.id, "--mailconform-seed", str(seed)]
    if scenario.path is not None and not Path(scenario.path).resolve().is_relative_to(_scenarios_dir(config)):
        parts.append(str(scenario.path))  # a file named on the command line
    return shlex.join(parts)


def _secrets(scenario) -> list[str]:
    """Every credential the scenario hands out: hidden wherever the plugin prints text."""
    found = [scenario.client.password]
    for account in (scenario.provider.data or {}).get("accounts", ()):
        if isinstance(account, dict):
            found.append(account.get("password"))
            for key in ("app_passwords", "oauth_tokens"):
                found.extend(account.get(key) or ())
    return sorted({s for s in found if isinstance(s, str) and len(s) >= 4}, key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _capped(text: str, limit: int) -> list[str]:
    lines = text.splitlines()
    if len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more lines"]
    return ["  " + line for line in lines]


def _describe(result: ScenarioResult, secrets: list[str] = ()) -> str:
    lines = [f"{result.verdict.value}: {result.id} — {result.title} [{result.level}]",
             f"requirement: {result.requirement}", f"source: {result.source}"]
    if result.reason:
        lines.append(f"reason: {result.reason}")
    quoted_wire = False
    for check in result.checks:
        state = {True: "ok", False: "FAILED", None: "n/a"}[check.passed]
        lines.append(f"  check {check.check} [{check.level}]: {state}" + (f" ({check.error})" if check.error else ""))
        for e in check.evidence:
            lines.append(f"    {e.rule}: expected {e.expected}; observed {e.observed}")
            if (check.passed is False or check.error) and e.wire:
                quoted_wire = True
                lines.append("      wire (credentials redacted):")
                lines.extend("      " + line for line in e.wire.splitlines())
    lines.append(f"replay: {result.replay}")
    failing = result.verdict.fails_run
    if failing and result.transcript and not quoted_wire:
        lines.append("wire (credentials redacted):")
        lines.extend(_capped(result.transcript, WIRE_LINES))
    if failing and result.client_output:
        lines.append("client output:")
        lines.extend(_capped(result.client_output, OUTPUT_LINES))
    return _redact("\n".join(lines), list(secrets))


@pytest.fixture
def mailconform_provider():
    """A factory of started fake providers (``FakeProvider`` keyword arguments), stopped after
    the test; with no accounts given, one account ``alice@example.test`` with 12 messages
    (``provider.first_account()`` gives its username and password)."""
    from fake_servers import FakeProvider
    from fake_servers.mailstore import fill

    started = []

    def make(*, account: tuple[str, str] | None = ("alice@example.test", "correct horse battery staple"),
             messages: int = 12, **options):
        provider = FakeProvider(**options)
        started.append(provider)  # stopped (its TLS material removed) even if starting fails
        provider.start()
        if account is not None:
            def setup():
                acct = provider.store.add_account(*account)
                fill(acct.folder("INBOX"), messages, seed=options.get("seed", 0))

            provider.call(setup)
        return provider

    yield make
    errors = []
    for provider in reversed(started):
        try:
            provider.stop()
        except Exception as exc:  # stop the others all the same
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def mailconform_run():
    """Run one scenario against a client; returns the ScenarioResult.

    ``scenario`` is a loaded Scenario, the path of a scenario file, or the id of a scenario of
    the bundled catalog. The client is a command template (``client=``), an in-process
    ``module:callable`` (``python=``), or else the bundled reference client.
    """
    from .cli import REFERENCE_CLIENT, REFERENCE_FEATURES
    from .run_command import AdapterSpec
    from .runner import RunOptions, run_scenario
    from .scenario import SCENARIO_DIR, Scenario, ScenarioError, catalog, load

    def find(scenario) -> Scenario:
        if isinstance(scenario, Scenario):
            return scenario
        path = Path(scenario)
        if path.suffix == ".toml" or path.exists():
            return load(path)
        found = [s for s in catalog(SCENARIO_DIR) if s.id == str(scenario)]
        if not found:
            raise ScenarioError(f"no scenario {str(scenario)!r} in {SCENARIO_DIR}")
        return found[0]

    def run(scenario, *, client: str | None = None, python: str | None = None, features: str | None = None,
            config: str | None = None, seed: int = 0) -> ScenarioResult:
        if client and python:
            raise ValueError("give client= or python=, not both")
        if python:
            spec = AdapterSpec("python", python, None, features)
        elif client:
            spec = AdapterSpec("command", client, config, features)
        else:
            spec = AdapterSpec("command", REFERENCE_CLIENT, None, features or REFERENCE_FEATURES)
        flag = {"python": "--client-python", "command": "--client"}[spec.kind]
        replay = shlex.join(["mailconform", "run", flag, spec.target, *(["--features", features] if features else [])])
        return run_scenario(find(scenario), spec(), RunOptions(seed=seed, replay_command=replay))

    return run
