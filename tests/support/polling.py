"""Wait until a condition holds, or fail saying what was awaited and for how long.

The tests' conditions read plain state that other tasks, threads or processes change
(counters, lists, log files), so there is no event to wait on: they are polled. pytest puts
this folder on sys.path (``pythonpath`` in pyproject.toml), so a test imports it as
``from polling import until``; the project's packages still come from the installed build.

    await until(lambda: fanout.client_count == 1)
    await until(lambda: stats.acked >= 100, timeout_s=60, interval_s=0.05, what="acks")
    until_sync(lambda: "ready" in log.read_text(), timeout_s=30, what=lambda: log.read_text())

``what`` names the condition in the failure; a callable is called only then (a log's last
lines, say). Without it, the failure quotes the predicate's source line.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

Predicate = Callable[[], object]
What = str | Callable[[], str] | None


async def until(
    predicate: Predicate,
    *,
    timeout_s: float = 5.0,
    interval_s: float = 0.01,
    what: What = None,
) -> None:
    """Return once ``predicate()`` is true; raise AssertionError after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(_timed_out(predicate, timeout_s, what))
        await asyncio.sleep(min(interval_s, remaining))


def until_sync(
    predicate: Predicate,
    *,
    timeout_s: float = 5.0,
    interval_s: float = 0.01,
    what: What = None,
) -> None:
    """As :func:`until`, blocking the calling thread: for tests without an event loop."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(_timed_out(predicate, timeout_s, what))
        time.sleep(min(interval_s, remaining))


def _timed_out(predicate: Predicate, timeout_s: float, what: What) -> str:
    if callable(what):
        what = what()
    return f"timed out after {timeout_s:g} s waiting for {what or _source_of(predicate)}"


def _source_of(predicate: Predicate) -> str:
    try:
        return " ".join(inspect.getsource(predicate).split())
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))
