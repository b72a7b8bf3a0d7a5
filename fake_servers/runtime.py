"""One asyncio event loop, in a background thread, shared by every fake server.

Twisted (IMAP, HTTP, DNS) and aiosmtpd (SMTP) must run on the same loop so that one
scenario can script them together. Twisted's reactor cannot be restarted, so there is one
runtime per process: started on first use, stopped at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import sys
import threading
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_runtime: "Runtime | None" = None


class LoopUnavailable(RuntimeError):
    """The shared loop could not be started or is no longer running."""


class Runtime:
    """The shared loop and Twisted reactor, and a way to run code on them from any thread."""

    def __init__(self) -> None:
        existing = sys.modules.get("twisted.internet.reactor")
        if existing is not None and type(existing).__name__ != "AsyncioSelectorReactor":
            raise LoopUnavailable(
                f"a {type(existing).__name__} was installed before mailconform's runtime; "
                "import fake_servers.runtime (or call runtime()) before anything imports "
                "twisted.internet.reactor"
            )
        self.loop = asyncio.new_event_loop()
        if existing is None:
            from twisted.internet import asyncioreactor

            asyncioreactor.install(self.loop)
        from twisted.internet import reactor

        if reactor._asyncioEventloop is not self.loop:  # installed by someone else
            self.loop.close()
            self.loop = reactor._asyncioEventloop
        self.reactor = reactor
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mailconform-loop", daemon=True)
        self.thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.reactor.run(installSignalHandlers=False)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
        """Run ``fn(*args)`` on the loop thread and return its result (or raise its error).

        If ``fn`` returns an awaitable or a Twisted Deferred, its outcome is waited for.
        """
        if self.in_loop_thread():
            raise LoopUnavailable("Runtime.call from the loop thread would deadlock; call fn directly")
        if not self.running:
            raise LoopUnavailable("the mailconform event loop is not running")
        future: concurrent.futures.Future = concurrent.futures.Future()

        def invoke() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)
                return
            _settle(result, future)

        self.loop.call_soon_threadsafe(invoke)
        return future.result(timeout)

    def call_here_or_there(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` directly on the loop thread, through :meth:`call` from any other (for
        plain functions: an awaitable returned on the loop thread is not waited for)."""
        if self.in_loop_thread():
            return fn(*args)
        return self.call(fn, *args)

    def run(self, awaitable: Awaitable[T], timeout: float = 30.0) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), self.loop).result(timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn`` on the loop thread without waiting for it."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self.running:
            self.reactor.callFromThread(self.reactor.stop)
            self.thread.join(10)


def _settle(result: Any, future: concurrent.futures.Future) -> None:
    from twisted.internet.defer import Deferred

    if isinstance(result, Deferred):
        result.addCallbacks(future.set_result, lambda f: future.set_exception(f.value))
    elif asyncio.isfuture(result) or asyncio.iscoroutine(result):
        task = asyncio.ensure_future(result)
        task.add_done_callback(
            lambda t: future.set_exception(t.exception()) if t.exception() else future.set_result(t.result())
        )
    else:
        future.set_result(result)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def runtime() -> Runtime:
    """The process's shared runtime, started on first use."""
    global _runtime
    with _lock:
        if _runtime is None or not _runtime.running:
            if _runtime is not None:
                raise LoopUnavailable("the mailconform event loop stopped and cannot be restarted")
            _runtime = Runtime()
            atexit.register(_runtime.stop)
        return _runtime


def set_nodelay(transport: Any) -> None:
    """Disable Nagle on the TCP socket under ``transport`` (TLS wrappers included).

    Without it each command round trip waits ~40 ms for a delayed ACK.
    """
    seen = 0
    while transport is not None and seen < 5:
        setter = getattr(type(transport), "setTcpNoDelay", None)
        if setter is not None:
            try:
                transport.setTcpNoDelay(True)
                return
            except (OSError, AttributeError):
                pass
        transport = getattr(transport, "transport", None)
        seen += 1
