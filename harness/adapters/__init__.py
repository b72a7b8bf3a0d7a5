"""How the harness runs any client (CONTRACT.md): a command, a Python callable, or a daemon.

Every adapter kind gets the same values (``ClientContext``): as ``MAILCONFORM_*`` environment
variables, as ``{placeholders}`` in command and config templates, or as attributes of the
object a python client is called with. Every run yields an ``Outcome``; checks, not the exit
status, decide the verdict.

Modules, one job each: ``context`` (the values), ``base`` (features, the Adapter interface),
``template`` (placeholder rendering), ``process`` (a client's session: output, kill),
``launch`` (templates → a started process), and the three kinds: ``command``, ``python``,
``daemon``.
"""

from ..outcome import Outcome
from .base import DEFAULT_FEATURES, FEATURES, Adapter, AdapterError, Until, parse_features
from .command import CommandAdapter
from .context import ENVIRONMENT, PLACEHOLDERS, ClientContext
from .daemon import DaemonAdapter
from .process import OUTPUT_LIMIT
from .python import PythonAdapter, load_callable
from .template import TemplateError

__all__ = [
    "Adapter", "AdapterError", "ClientContext", "CommandAdapter", "DaemonAdapter",
    "DEFAULT_FEATURES", "ENVIRONMENT", "FEATURES", "OUTPUT_LIMIT", "Outcome", "PLACEHOLDERS",
    "PythonAdapter", "TemplateError", "Until", "load_callable", "parse_features",
]
