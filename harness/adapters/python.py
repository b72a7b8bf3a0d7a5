"""In-process clients: ``package.module:callable`` called with the run's ``ClientContext``.

The callable runs in a worker thread so the harness can keep its deadline. What callers must
know:

- A thread cannot be killed. At the deadline the run is reported killed
  (``killed_at_deadline=True``) and the thread is abandoned as a daemon thread: it runs on
  until it returns or the harness exits. The runner stops the scenario's provider next, so
  the abandoned client's sockets close and it fails out soon; the next scenario has its own
  Maildir and state dir, so late writes land in the old ones.
- The ``MAILCONFORM_*`` variables are *not* set: the process environment is shared by
  parallel scenarios. The callable gets the context object only (``ctx.environ()`` has the
  variables, e.g. for a subprocess).
- Its stdout/stderr are not captured (``sys.stdout`` is shared by every thread); the outcome's
  ``stdout``/``stderr`` are empty and the evidence is the wire, the store, and ``error``.
- Returning (any value) is exit status 0; an exception is exit status 1 with the formatted
  traceback in ``error``; ``sys.exit(n)`` is exit status ``n``.
- When the context has a connect-to map (``ctx.connect_to``, discovery scenarios), the callable
  runs inside ``fake_servers.discovery.resolve_to_fakes``: while it runs, the scenario's names
  resolve to the fakes and every other name fails, without touching the machine's resolver
  (``socket.getaddrinfo`` is answered from the map, process-wide, for as long as the client
  runs). Nothing else global is set. The names it resolved are the outcome's ``lookups``.
"""

from __future__ import annotations

import importlib
import threading
import time
import traceback
from typing import Any, Callable, Iterable

from ..outcome import Outcome
from .base import Adapter, AdapterError, Until, closest
from .context import ClientContext


def load_callable(spec: str) -> Callable[[ClientContext], Any]:
    """Import ``package.module:callable`` (the attribute may be dotted: ``mod:Class.run``)."""
    module_name, colon, attr_path = spec.partition(":")
    where = f"python client {spec!r}"
    if not colon or not module_name or not attr_path:
        raise AdapterError(f"{where}: expected 'package.module:callable'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AdapterError(f"{where}: no module named {exc.name!r} (not installed, "
                               "or not on sys.path?)") from None
        raise AdapterError(f"{where}: importing {module_name!r} failed:\n"
                           f"{_format(exc)}") from None
    except (Exception, SystemExit) as exc:  # the module itself raised while importing
        raise AdapterError(f"{where}: importing {module_name!r} failed:\n"
                           f"{_format(exc)}") from None
    walked = module_name
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise AdapterError(f"{where}: {walked!r} has no attribute {part!r}"
                               f"{closest(part, public) if public else ''}")
        obj = getattr(obj, part)
        walked += (":" if walked == module_name else ".") + part
    if not callable(obj):
        raise AdapterError(f"{where}: {attr_path!r} is a {type(obj).__name__}, not callable")
    return obj


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()


class PythonAdapter(Adapter):
    """``PythonAdapter(spec, features=None, *, name=None)``: the callable is imported now,
    so a bad spec is reported before any scenario runs."""

    kind = "python"

    def __init__(self, spec: str, features: Iterable[str] | str | None = None, *,
                 name: str | None = None) -> None:
        self.spec = spec
        self.function = load_callable(spec)
        super().__init__(name or spec, features)

    def run(self, ctx: ClientContext, deadline: float, until: Until = None) -> Outcome:
        result: dict[str, Any] = {"lookups": []}
        names = ctx.connect_to_map()

        def call() -> None:
            try:
                if names:
                    from fake_servers.discovery import resolve_to_fakes

                    with resolve_to_fakes(names) as resolver:
                        result["lookups"] = resolver.looked_up  # live: read even if the client is abandoned
                        self.function(ctx)
                else:
                    self.function(ctx)
                result["status"] = 0
            except SystemExit as exc:
                code = exc.code
                result["status"] = code if isinstance(code, int) else (0 if code is None else 1)
                if not isinstance(code, int) and code is not None:
                    result["error"] = str(code)
            except BaseException as exc:  # noqa: BLE001 - the client's failure is evidence
                result["status"] = 1
                result["error"] = _format(exc)

        started = time.monotonic()
        worker = threading.Thread(target=call, daemon=True,
                                  name=f"client-{ctx.scenario}-run{ctx.run}")
        worker.start()
        worker.join(max(0.0, deadline))
        duration = time.monotonic() - started
        if worker.is_alive():
            return Outcome(run=ctx.run, exit_status=None, killed_at_deadline=True,
                           duration=duration, stdout="", stderr="",
                           error=f"{self.spec} did not return within {deadline:g} s; its thread "
                                 "was abandoned (a thread cannot be killed)", lookups=list(result["lookups"]))
        return Outcome(run=ctx.run, exit_status=result["status"], killed_at_deadline=False,
                       duration=duration, stdout="", stderr="", error=result.get("error"),
                       lookups=list(result["lookups"]))

    def describe(self) -> str:
        return f"python: {self.spec}"
