"""Faults: rules (event × matcher × action) and the shaping of every byte a fake sends."""

from .rules import ACTIONS, EVENTS, MATCH_KEYS, Action, FaultEngine, Firing, Matcher, Rule, RuleError
from .transport import OutboundPipe, Shaping, Sink

__all__ = [
    "ACTIONS", "EVENTS", "MATCH_KEYS", "Action", "FaultEngine", "Firing", "Matcher", "OutboundPipe",
    "Rule", "RuleError", "Shaping", "Sink",
]
