"""Runs scenarios against a client: provider up, runs, changes between runs, checks, verdict.

One scenario at a time here; ``run_all`` adds a selection, a baseline and progress, and
can spread scenarios over worker processes (each has its own loop and fakes).
"""

from __future__ import annotations

import shlex
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import checks as check_registry
from .adapters.base import Adapter
from .adapters.context import ClientContext
from .discovery import facts_of
from .observation import Observation
from .scenario import Scenario
from .verdicts import CheckResult, ScenarioResult, Verdict, apply_baseline, combine

TRANSCRIPT_LIMIT = 400  # lines per connection kept in a result


@dataclass
class RunOptions:
    seed: int = 0
    workdir: Path | None = None  # where each scenario's Maildir and state go (default: a temp dir)
    replay_command: str = "mailconform run"  # how the report tells a person to replay one scenario
    expected_failures: frozenset[str] = frozenset()  # from a baseline


def run_scenario(scenario: Scenario, adapter: Adapter, options: RunOptions | None = None) -> ScenarioResult:
    options = options or RunOptions()
    started = time.monotonic()
    result = ScenarioResult(id=scenario.id, title=scenario.title, level=scenario.level, verdict=Verdict.ERROR,
                            tags=list(scenario.tags), source=scenario.source, requirement=scenario.requirement,
                            replay=f"{options.replay_command} --scenario {shlex.quote(scenario.id)} --seed {options.seed}")
    missing = adapter.supports(scenario.needs)
    if missing:
        result.verdict = Verdict.UNSUPPORTED
        result.reason = f"the client does not declare: {', '.join(sorted(missing))}"
        return result
    if options.workdir is None:
        with tempfile.TemporaryDirectory(prefix="mailconform-") as tmp:
            return _run(scenario, adapter, options, Path(tmp), result, started)
    return _run(scenario, adapter, options, Path(options.workdir), result, started)


def _run(scenario: Scenario, adapter: Adapter, options: RunOptions, workdir: Path, result: ScenarioResult,
         started: float) -> ScenarioResult:
    base = workdir / scenario.id
    maildir, state_dir, outbox = base / "Maildir", base / "state", base / "outbox"
    for path in (maildir, state_dir, outbox):
        path.mkdir(parents=True, exist_ok=True)
    checks: list[CheckResult] = []
    try:
        provider = scenario.provider.build(seed=options.seed)
        with provider:
            account = provider.first_account()
            username = scenario.client.username or (account[0] if account else "")
            password = scenario.client.password or (account[1] if account else "")
            endpoints = _endpoints(scenario, provider)
            endpoints.update(_discovery_context(scenario, provider, username))
            files = scenario.outbox_files(username, options.seed)
            written: dict[str, bytes] = {}
            written_before: dict[str, int] = {}
            outcomes, snapshots, left = [], [], []
            for run in range(1, scenario.runs + 1):
                if run > 1:
                    provider.next_run()
                    for change in scenario.between_runs:
                        if change.after == run - 1:
                            provider.change(change.actions)
                for when, name, raw in files:
                    if when == run:
                        _write_outbox_file(outbox, name, raw)
                        written[name], written_before[name] = raw, run
                ctx = ClientContext(
                    scenario=scenario.id, run=run, username=username, password=password, email=username,
                    ca_file=provider.ca_file, maildir=maildir, state_dir=state_dir, outbox=outbox, **endpoints,
                )
                if run == 1:
                    adapter.start(ctx)  # daemons start once per scenario; others do nothing
                outcomes.append(adapter.run(ctx, scenario.deadline))
                _settle(provider)
                snapshots.append(provider.mailboxes(username))
                left.append(_outbox_listing(outbox))
            life = adapter.stop()  # a daemon's whole life, as run 0
            if life is not None:
                outcomes.append(life)
                _settle(provider)
                if left:  # what a daemon sent after the last run's snapshot counts for the last run
                    left[-1] = _outbox_listing(outbox)
            submissions = provider.submissions() if endpoints.get("smtp_port") is not None \
                or scenario.client.discover else []
            obs = Observation(scenario=scenario, wire=provider.wire, outcomes=outcomes, maildir=maildir,
                              outbox=outbox, username=username, password=password, server_after_run=snapshots,
                              secrets=tuple(s.encode("utf-8") for s in {password} if s),
                              submissions=submissions, outbox_messages=written, outbox_run=written_before,
                              outbox_after_run=left, discovery=facts_of(provider))
            for use in scenario.checks:
                checks.append(check_registry.run(use.name, obs, use.level or scenario.level, use.params))
            secrets = [password, *scenario.provider.secrets()] if hasattr(scenario.provider, "secrets") else [password]
            result.transcript = _redact("\n\n".join(c.transcript(limit=TRANSCRIPT_LIMIT)
                                                   for c in provider.wire.select()), secrets)
            result.client_output = _redact("\n".join(_output(o) for o in outcomes), secrets)
            result.runs = len(outcomes)
    except Exception:
        result.verdict = Verdict.ERROR
        result.reason = "the harness failed: " + traceback.format_exc(limit=3).strip().splitlines()[-1]
        result.client_output = traceback.format_exc()
        result.duration = time.monotonic() - started
        return result
    result.checks = checks
    verdict, reason, security = combine(scenario.level, checks)
    if security and "security" not in result.tags:
        result.tags.append("security")
    result.verdict = apply_baseline(verdict, scenario.id in options.expected_failures)
    result.reason = reason
    result.duration = time.monotonic() - started
    return result


def _endpoints(scenario: Scenario, provider) -> dict:
    """The servers a run's client is pointed at, as ClientContext fields.

    IMAP for every scenario but those that need SMTP and not IMAP (a submission-only scenario
    judges the submission path alone); SMTP for scenarios that need it, when the provider runs
    an SMTP server.
    """
    client, needs = scenario.client, scenario.needs
    out: dict = {}
    if client.discover:  # it is told nothing: it must find the servers (see _discovery_context)
        return out
    if "imap" in needs or "smtp" not in needs:
        out.update(imap_host=provider.host, imap_security=client.imap_security,
                   imap_port=_port(provider, client.imap_endpoint, client.imap_security, "imap"))
    if "smtp" in needs and _has_smtp(provider):
        out.update(smtp_host=provider.host, smtp_security=client.smtp_security,
                   smtp_port=_port(provider, client.smtp_endpoint, client.smtp_security, "smtp"))
    return out


def _discovery_context(scenario: Scenario, provider, email: str) -> dict:
    """What a client of a provider with ``[discovery]`` is told: the fake DNS and the connect-to
    map always, the token endpoint when there is OAuth, the address to discover when it must."""
    discovery = getattr(provider, "discovery", None)
    if discovery is None:
        return {}
    out = {"dns": discovery.dns_address, "connect_to": discovery.connect_to_env,
           "oauth_token_url": discovery.token_url}
    if scenario.client.discover:
        out["autodiscover_email"] = email
    return out


def _has_smtp(provider) -> bool:
    try:
        return getattr(provider, "smtp_port", None) is not None
    except (KeyError, AttributeError):  # a provider started without an SMTP server
        return False


def _port(provider, endpoint: str, security: str, protocol: str) -> int:
    if endpoint == "auto":
        endpoint = "implicit" if security == "tls" else "plain"
    if endpoint == "closed":
        return provider.closed_port()
    if protocol == "smtp":
        return provider.smtps_port if endpoint == "implicit" else provider.smtp_port
    return provider.imaps_port if endpoint == "implicit" else provider.imap_port


def _write_outbox_file(outbox: Path, name: str, raw: bytes) -> None:
    """Write ``name`` whole or not at all (a daemon watching the directory never sees half a file)."""
    tmp = outbox / f".{name}.tmp"
    tmp.write_bytes(raw)
    tmp.replace(outbox / name)


def _outbox_listing(outbox: Path) -> set[str]:
    """The files directly in the outbox (a file moved into a subdirectory has left it)."""
    try:
        return {p.name for p in outbox.iterdir() if p.is_file() and not p.name.startswith(".")}
    except OSError:
        return set()


def _redact(text: str, secrets) -> str:
    """Reports are shared: a password a client printed (or leaked on the wire) is shown as ***."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _settle(provider) -> None:
    """Wait until the fake saw every connection of the run end (the client has exited)."""
    for conn in provider.wire.select():
        conn.wait_closed(2.0)


def _output(outcome) -> str:
    parts = [outcome.summary()]
    if outcome.stdout.strip():
        parts.append("stdout:\n" + outcome.stdout.strip())
    if outcome.stderr.strip():
        parts.append("stderr:\n" + outcome.stderr.strip())
    if outcome.error:
        parts.append(outcome.error.strip())
    return "\n".join(parts)


def run_all(scenarios: list[Scenario], adapter_factory: Callable[[], Adapter], options: RunOptions,
            progress: Callable[[int, int, ScenarioResult], None] | None = None, jobs: int = 1) -> list[ScenarioResult]:
    """Run ``scenarios`` (in ``jobs`` worker processes when > 1), in id order in the result."""
    results: list[ScenarioResult] = []
    total = len(scenarios)
    if jobs <= 1 or total <= 1:
        for i, scenario in enumerate(scenarios, start=1):
            result = run_scenario(scenario, adapter_factory(), options)
            results.append(result)
            if progress:
                progress(i, total, result)
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        # Longest first (by deadline and runs), so one slow scenario does not run alone at the end.
        ordered = sorted(scenarios, key=lambda s: (s.deadline * s.runs, s.id), reverse=True)
        futures = {pool.submit(_run_in_worker, s.path, adapter_factory, options): s for s in ordered}
        for i, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            results.append(result)
            if progress:
                progress(i, total, result)
    return sorted(results, key=lambda r: r.id)


def _run_in_worker(path: Path, adapter_factory: Callable[[], Adapter], options: RunOptions) -> ScenarioResult:
    from .scenario import load

    return run_scenario(load(path), adapter_factory(), options)
