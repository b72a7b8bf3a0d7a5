"""Running one named check on an Observation, as the check tests do, asserting what every
result must carry (no defect of the check itself, and its own name)."""

from __future__ import annotations

from harness import checks
from harness.observation import Observation


def judge(name: str, obs: Observation, params: dict | None = None, level: str = "MUST"):
    result = checks.run(name, obs, level, params or {})
    assert result.error is None, result.error
    assert result.check == name
    return result
