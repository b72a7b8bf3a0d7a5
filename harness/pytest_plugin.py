"""pytest plugin: fixtures for your own tests, and the scenario catalog as test items.

Fixtures::

    def test_my_client_survives_throttling(mailconform_provider):
        provider = mailconform_provider(faults=[{"on": "command", "command": "UID FETCH", "nth": 1,
                                                 "action": "bye", "text": "throttled"}])
        my_client.sync(provider.host, provider.imap_port, ca_file=provider.ca_file, ...)
        assert provider.wire.peak_concurrency() <= 2

Catalog mode (one test item per scenario, selectable with ``-k`` and ``-m``)::

    pytest --mailconform-client 'python -m my_client' [--mailconform-features imap,idle] \
           [--mailconform-scenario 'imap.tls.*'] -n auto

The client may also come from the ini option ``mailconform_client``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .verdicts import ScenarioResult, Verdict


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
    command = config.getoption("--mailconform-client") or config.getini("mailconform_client")
    features = config.getoption("--mailconform-features")
    if not (python or command):
        return None  # an ordinary pytest run: the plugin only offers fixtures
    from .run_command import AdapterSpec

    if python:
        return AdapterSpec("python", python, None, features)
    if command:
        return AdapterSpec("command", command, config.getoption("--mailconform-client-config"), features)
    return None


def _marker(prefix: str, value: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9]+", "_", value).strip("_").lower()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mailconform: a scenario of the mailconform catalog")
    for level in ("must", "should", "info"):
        config.addinivalue_line("markers", f"level_{level}: mailconform scenarios of level {level.upper()}")
    config._mailconform_spec = _adapter_spec(config)
    if config._mailconform_spec is not None:
        from .scenario import catalog

        directory = config.getoption("--mailconform-scenarios-dir")
        scenarios = catalog(Path(directory)) if directory else catalog()
        seen = set()
        for s in scenarios:
            for name in [_marker("area_", s.area), *(_marker("tag_", t) for t in s.tags)]:
                if name not in seen:
                    seen.add(name)
                    config.addinivalue_line("markers", f"{name}: mailconform scenarios marked so")


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """In catalog mode, collect the scenarios (not the test files) unless paths were given."""
    config = session.config
    if config._mailconform_spec is not None and not config.args_source == pytest.Config.ArgsSource.ARGS:
        from .scenario import SCENARIO_DIR

        directory = config.getoption("--mailconform-scenarios-dir") or str(SCENARIO_DIR)
        config.args[:] = [directory]


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    config = parent.config
    if config._mailconform_spec is None or file_path.suffix != ".toml":
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    def collect(self):
        from .scenario import load

        scenario = load(self.path)
        patterns = self.config.getoption("--mailconform-scenario")
        if not scenario.matches(patterns):
            return
        item = ScenarioItem.from_parent(self, name=scenario.id, scenario=scenario)
        item.add_marker("mailconform")
        item.add_marker(f"level_{scenario.level.lower()}")
        item.add_marker(_marker("area_", scenario.area))
        for tag in scenario.tags:
            item.add_marker(_marker("tag_", tag))
        yield item


class ScenarioFailure(Exception):
    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.reason)
        self.result = result


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario

    def runtest(self) -> None:
        from .runner import RunOptions, run_scenario

        spec = self.config._mailconform_spec
        options = RunOptions(seed=self.config.getoption("--mailconform-seed"),
                             replay_command=f"pytest --mailconform-client {spec.target!r}")
        result = run_scenario(self.scenario, spec(), options)
        self.user_properties.append(("verdict", result.verdict.value))
        self.add_report_section("call", "mailconform", _describe(result))
        verdict = Verdict(result.verdict)
        if verdict in (Verdict.UNSUPPORTED, Verdict.SKIPPED):
            pytest.skip(f"{verdict.value}: {result.reason}")
        if verdict is Verdict.XFAIL:
            pytest.xfail(result.reason)
        if verdict.fails_run:
            raise ScenarioFailure(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailure):
            return _describe(excinfo.value.result, transcript=True)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"scenario {self.scenario.id}"


def _describe(result: ScenarioResult, transcript: bool = False) -> str:
    lines = [f"{result.verdict.value}: {result.id} — {result.title} [{result.level}]",
             f"requirement: {result.requirement}", f"source: {result.source}"]
    if result.reason:
        lines.append(f"reason: {result.reason}")
    for check in result.checks:
        state = {True: "ok", False: "FAILED", None: "n/a"}[check.passed]
        lines.append(f"  check {check.check} [{check.level}]: {state}" + (f" ({check.error})" if check.error else ""))
        for e in check.evidence:
            lines.append(f"    {e.rule}: expected {e.expected}; observed {e.observed}")
    lines.append(f"replay: {result.replay}")
    if transcript and result.transcript:
        lines.append("wire (credentials redacted):")
        lines.extend("  " + line for line in result.transcript.splitlines()[:80])
    if transcript and result.client_output:
        lines.append("client output:")
        lines.extend("  " + line for line in result.client_output.splitlines()[:40])
    return "\n".join(lines)


@pytest.fixture
def mailconform_provider():
    """A factory of started fake providers (``FakeProvider`` keyword arguments), stopped after
    the test; with no accounts given, one account ``alice@example.test`` with 12 messages."""
    from fake_servers import FakeProvider
    from fake_servers.mailstore import fill

    started = []

    def make(*, account: tuple[str, str] | None = ("alice@example.test", "correct horse battery staple"),
             messages: int = 12, **options):
        provider = FakeProvider(**options).start()
        started.append(provider)
        if account is not None:
            def setup():
                acct = provider.store.add_account(*account)
                fill(acct.folder("INBOX"), messages, seed=options.get("seed", 0))

            provider.call(setup)
        return provider

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture
def mailconform_run():
    """Run one scenario (a path or a loaded Scenario) against a client; returns the ScenarioResult."""
    from .run_command import AdapterSpec
    from .runner import RunOptions, run_scenario
    from .scenario import Scenario, load

    def run(scenario, *, client: str | None = None, python: str | None = None, features: str = "imap",
            seed: int = 0) -> ScenarioResult:
        if not isinstance(scenario, Scenario):
            scenario = load(scenario)
        spec = AdapterSpec("python", python, None, features) if python else AdapterSpec("command", client, None, features)
        return run_scenario(scenario, spec(), RunOptions(seed=seed))

    return run
