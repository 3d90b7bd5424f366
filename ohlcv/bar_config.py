"""The ``[ohlcv]`` settings of the bar logic, checked and turned into the plain values it takes.

:mod:`ohlcv.bars` is compiled with mypyc (setup.py) and depends on no config: its
:class:`~ohlcv.bars.BarAggregator` and :func:`~ohlcv.bars.recompute_bars` take wire
resolutions, a ``ZoneInfo``, a flag and a lateness in nanoseconds. The bar service
(:mod:`ohlcv.aggregator`) and reconciliation (:mod:`ohlcv.reconcile`) read those from
``OhlcvConfig`` through these checks, whose ``ConfigError`` names the key at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mdfeed.kernel.config import ConfigError
from ohlcv.bars import RESOLUTIONS
from proto import mdfeed_pb2 as pb

__all__ = ["parse_resolutions", "parse_session_timezone"]

_BY_CONFIG = {r.config: r for r in RESOLUTIONS}


def parse_resolutions(names: Iterable[str]) -> tuple[pb.Resolution.ValueType, ...]:
    """Check ``ohlcv.resolutions``: the wire resolutions, finest first, each once.

    ConfigError naming every unknown or repeated entry, or an empty list.
    """
    names = list(names)
    unknown = [n for n in names if n not in _BY_CONFIG]
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in names:
        (repeated if name in seen else seen).add(name)
    problems = []
    if unknown:
        known = ", ".join(_BY_CONFIG)
        problems.append(f"unknown {', '.join(map(repr, unknown))} (known: {known})")
    if repeated:
        problems.append(f"repeated {', '.join(map(repr, sorted(repeated)))}")
    if not names:
        problems.append("empty: name at least one resolution")
    if problems:
        raise ConfigError(f"ohlcv.resolutions: {'; '.join(problems)}")
    return tuple(r.value for r in RESOLUTIONS if r.config in seen)


def parse_session_timezone(name: str) -> ZoneInfo:
    """Check ``ohlcv.session_timezone``: the IANA zone, or a ConfigError naming the key."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"ohlcv.session_timezone: unknown time zone {name!r} "
            "(an IANA name such as 'America/New_York' or 'UTC')"
        ) from None
