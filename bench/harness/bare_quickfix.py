"""The bare QuickFIX floor: a QuickFIX initiator whose ``fromApp`` only counts messages.

No Python FIX ingest can take in more FIX messages per second than QuickFIX delivers to
an application that does nothing with them, so `mdfeed bench --scenarios ingest` measures
this floor against the same venue, the same packing and in the same run, and states the
ingest as a share of it. The session uses the ingest's own QuickFIX settings
(`fix_session.ingest.quickfix_settings`), but subscribes every symbol in ONE
MarketDataRequest, so the venue packs several symbols into each X; ``fromApp`` adds one
to a counter and returns (no ``toString``, no hand-off).

Run as ``python -P -m bench.harness.bare_quickfix --port P --symbols A,B,... --seconds S``
(a process of its own); it prints one JSON line: FIX messages counted in the measured
window, its length in seconds, and the process's CPU seconds in it (all its threads,
from ``resource.getrusage``). The window starts ``--warmup`` seconds after the first
market data message. Like the ingest in this scenario it is pinned to one core, the same
one by default, so both are measured on the same budget.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness.children import answer_once

__all__ = ["main", "measure"]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    port: int, symbols: list[str], seconds: float, *, warmup_s: float = 1.0, host: str = "127.0.0.1"
) -> dict[str, Any]:
    """Log on, subscribe `symbols` in one request, count ``fromApp`` calls over a window."""
    import quickfix

    from fix_session.ingest import quickfix_settings
    from mdfeed.kernel.config import FixSessionConfig

    counted = [0]
    logged_on = threading.Event()
    session_ids: list[Any] = []

    class CountingApp(quickfix.Application):  # type: ignore[misc]  # quickfix has no types: Any
        def onCreate(self, session_id: Any) -> None:  # noqa: N802 - QuickFIX's names
            pass

        def onLogon(self, session_id: Any) -> None:  # noqa: N802 - QuickFIX's names
            session_ids.append(session_id)
            logged_on.set()

        def onLogout(self, session_id: Any) -> None:  # noqa: N802 - QuickFIX's names
            pass

        def toAdmin(self, message: Any, session_id: Any) -> None:  # noqa: N802 - QuickFIX's names
            pass

        def fromAdmin(self, message: Any, session_id: Any) -> None:  # noqa: N802 - QuickFIX's names
            pass

        def toApp(self, message: Any, session_id: Any) -> None:  # noqa: N802 - QuickFIX's names
            pass

        def fromApp(self, message: Any, session_id: Any) -> None:  # noqa: N802 - QuickFIX's names
            counted[0] += 1

    with tempfile.TemporaryDirectory(prefix="bare-quickfix-") as tmp:
        config = FixSessionConfig(host=host, port=port, symbols=tuple(symbols), log_dir=tmp)
        settings_file = Path(tmp) / "quickfix.cfg"
        settings_file.write_text(quickfix_settings(config, Path(tmp)), encoding="utf-8")
        settings = quickfix.SessionSettings(str(settings_file))
        initiator = quickfix.SocketInitiator(
            CountingApp(),
            quickfix.MemoryStoreFactory(),
            settings,
            quickfix.ScreenLogFactory(settings),
        )
        initiator.start()
        try:
            if not logged_on.wait(30):
                raise RuntimeError(f"no logon to the venue on {host}:{port} within 30 s")
            request = quickfix.Message()
            request.getHeader().setField(35, "V")
            request.setField(262, "bare.1")
            request.setField(263, "1")
            request.setField(264, str(config.market_depth))
            request.setField(265, "1")
            for entry_type in ("0", "1", "2"):
                group = quickfix.Group(267, 269)
                group.setField(269, entry_type)
                request.addGroup(group)
            for symbol in symbols:
                group = quickfix.Group(146, 55)
                group.setField(55, symbol)
                request.addGroup(group)
            quickfix.Session.sendToTarget(request, session_ids[0])
            deadline = time.monotonic() + 30
            while counted[0] == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("no market data within 30 s of the MarketDataRequest")
                time.sleep(0.01)
            time.sleep(warmup_s)
            n0, t0, c0 = counted[0], time.monotonic(), _cpu_s()
            time.sleep(seconds)
            n1, t1, c1 = counted[0], time.monotonic(), _cpu_s()
        finally:
            initiator.stop(True)
    return {"messages": n1 - n0, "seconds": t1 - t0, "cpu_s": c1 - c0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--symbols", required=True, help="comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--cpu", type=int, default=None, help="the core to pin to (default: the last)"
    )
    args = parser.parse_args(argv)
    # The same one-core budget as the ingest (bench.harness.ingest_alone), on the same core.
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {args.cpu if args.cpu is not None else cores[-1]})
    answer_once(
        lambda: measure(
            args.port, args.symbols.split(","), args.seconds, warmup_s=args.warmup, host=args.host
        )
    )


if __name__ == "__main__":
    main()
