"""Faults: rules (event × matcher × action) and the shaping of every byte a fake sends."""

from .rules import (ACTIONS, EVENT_ACTIONS, EVENT_MATCH_KEYS, EVENTS, MATCH_KEYS, STATE_ACTIONS, Action, FaultEngine, Firing, Matcher, Rule,
                    RuleError)
from .transport import OutboundPipe, Shaping, Sink

__all__ = [
    "ACTIONS", "EVENT_ACTIONS", "EVENT_MATCH_KEYS", "EVENTS", "STATE_ACTIONS", "MATCH_KEYS", "Action", "FaultEngine", "Firing", "Matcher", "OutboundPipe",
    "Rule", "RuleError", "Shaping", "Sink",
]
