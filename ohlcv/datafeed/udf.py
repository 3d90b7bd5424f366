"""The TradingView UDF endpoints: ``/config``, ``/symbols``, ``/search``, ``/time``, ``/history``.

``GET /config``, ``/symbols?symbol=``, ``/search?query=&limit=&type=&exchange=``, ``/time``
(plain seconds) and ``/history?symbol=&resolution=&from=&to=&countback=``. Times are Unix
seconds, prices and volumes floats (the ``_e8`` integers / 1e8). ``/history`` serves the
bars with ``from <= t < to`` (TradingView's "to is not included"); with ``countback > 0``
the last ``countback`` bars before ``to`` whatever ``from`` says. An empty answer is
``{"s": "no_data", "nextTime": t}`` with ``t`` the newest bar before ``from``, or plain
``{"s": "no_data"}`` when there is none. A bad request is HTTP 400
``{"s": "error", "errmsg": "<parameter>: <why>"}``; a bar store that fails is 503 with the
same shape. Resolutions are the UDF strings ``1S 1 5 15 60 1D`` (``D`` is taken for
``1D``), from :mod:`ohlcv.bars`' table.

The symbols served are the configured ones, listed even before their first bar, and those
the bar store holds. ``/history`` of 5,000 bars has a 20 ms p99 target: its answer is
written by :func:`_history_body` in one pass per field, nothing per bar besides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from operator import attrgetter, floordiv

from aiohttp import web

from ohlcv.bars import RESOLUTIONS, resolution_from_udf
from ohlcv.datafeed.http_support import BadRequest, error, int_param, param
from proto import mdfeed_pb2 as pb
from storage.bars import BarStore
from storage.errors import StoreError

__all__ = ["RESOLUTIONS_UDF", "UdfEndpoints", "resolution_param"]

#: UDF resolution strings and the bar resolution each one serves, finest first (the shared
#: table of :mod:`ohlcv.bars`).
RESOLUTIONS_UDF: dict[str, pb.Resolution.ValueType] = {r.udf: r.value for r in RESOLUTIONS}
_EXCHANGE = "mdfeed"
_SYMBOL_TYPE = "stock"
_MAX_SECONDS = (2**63 - 1) // 1_000_000_000
_SEARCH_LIMIT_MAX = 1000

_SECOND_NS = 1_000_000_000
_PRICE_FIELDS = tuple(
    (key, attrgetter(field))
    for key, field in (
        ("o", "open_px_e8"),
        ("h", "high_px_e8"),
        ("l", "low_px_e8"),
        ("c", "close_px_e8"),
        ("v", "volume_e8"),
    )
)
_OPEN_TIME = attrgetter("open_time_ns")


def _history_body(bars: Sequence[pb.Bar]) -> bytes:
    """The ``/history`` answer ``{"s":"ok","t":[...],"o":[...],...}`` for ``bars``, as JSON.

    Each ``_e8`` integer is written as the JSON number ``<integer>e-8``: every JSON parser
    reads it as the same double as ``value / 1e8`` (the nearest to the exact decimal, and
    exact where the division would round twice), while formatting an integer costs a
    third of formatting that float (the bulk of a 5000-bar answer's time).
    """
    parts = [
        '{"s":"ok","t":[',
        ",".join(map(str, map(floordiv, map(_OPEN_TIME, bars), repeat(_SECOND_NS)))),
    ]
    for key, field in _PRICE_FIELDS:
        parts += ['],"', key, '":[', "e-8,".join(map(str, map(field, bars))), "e-8"]
    parts.append("]}")
    return "".join(parts).encode()


def resolution_param(text: str) -> pb.Resolution.ValueType:
    """The bar resolution of a UDF ``resolution`` parameter; BadRequest naming the choices."""
    try:
        return resolution_from_udf(text)
    except ValueError:
        choices = ", ".join(RESOLUTIONS_UDF)
        raise BadRequest(f"resolution: {text[:40]!r} is not one of {choices}") from None


def _seconds_param(request: web.Request, name: str) -> int:
    value = int_param(request, name)
    if not -_MAX_SECONDS <= value <= _MAX_SECONDS:
        raise BadRequest(f"{name}: {value} is out of range (Unix seconds)")
    return value


class UdfEndpoints:
    """The UDF handlers on ``bars`` (see the module docstring).

    ``symbols`` are the configured symbols; ``session_timezone`` is what ``/symbols``
    reports; ``clock_ns`` is read by ``/time``.
    """

    def __init__(
        self,
        bars: BarStore,
        *,
        symbols: Sequence[str],
        session_timezone: str,
        clock_ns: Callable[[], int],
    ) -> None:
        self._bars = bars
        self._symbols = tuple(symbols)
        self._session_timezone = session_timezone
        self._clock_ns = clock_ns

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/config", self._config)
        app.router.add_get("/symbols", self._symbols_info)
        app.router.add_get("/search", self._search)
        app.router.add_get("/time", self._time)
        app.router.add_get("/history", self._history)

    async def symbol(self, request: web.Request) -> str:
        """The request's ``symbol``: configured or in the bar store, else BadRequest."""
        symbol = param(request, "symbol")
        if symbol not in self._symbols and symbol not in await self._bars.symbols():
            raise BadRequest(f"symbol: unknown symbol {symbol[:80]!r}")
        return symbol

    async def _known_symbols(self) -> list[str]:
        stored = await self._bars.symbols()
        return sorted(set(self._symbols).union(stored))

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "supported_resolutions": list(RESOLUTIONS_UDF),
                "supports_search": True,
                "supports_group_request": False,
                "supports_marks": False,
                "supports_timescale_marks": False,
                "supports_time": True,
                "exchanges": [{"value": _EXCHANGE, "name": _EXCHANGE, "desc": _EXCHANGE}],
                "symbols_types": [{"name": _SYMBOL_TYPE, "value": _SYMBOL_TYPE}],
            }
        )

    async def _symbols_info(self, request: web.Request) -> web.Response:
        try:
            symbol = await self.symbol(request)
        except BadRequest as exc:
            return error(str(exc))
        return web.json_response(
            {
                "name": symbol,
                "ticker": symbol,
                "description": symbol,
                "type": _SYMBOL_TYPE,
                "exchange": _EXCHANGE,
                "listed_exchange": _EXCHANGE,
                "session": "24x7",
                "timezone": self._session_timezone,
                "minmov": 1,
                "pricescale": 100,
                "has_intraday": True,
                "has_seconds": True,
                "seconds_multipliers": ["1"],
                "intraday_multipliers": ["1", "5", "15", "60"],
                "has_daily": True,
                "daily_multipliers": ["1"],
                "has_weekly_and_monthly": False,
                "supported_resolutions": list(RESOLUTIONS_UDF),
                "volume_precision": 8,
                "data_status": "streaming",
            }
        )

    async def _search(self, request: web.Request) -> web.Response:
        try:
            query = param(request, "query", required=False).upper()
            limit = int_param(request, "limit", default=30)
            if not 1 <= limit <= _SEARCH_LIMIT_MAX:
                raise BadRequest(f"limit: {limit} is not from 1 to {_SEARCH_LIMIT_MAX}")
        except BadRequest as exc:
            return error(str(exc))
        kind = param(request, "type", required=False)
        exchange = param(request, "exchange", required=False)
        if (kind and kind != _SYMBOL_TYPE) or (exchange and exchange.lower() != _EXCHANGE):
            return web.json_response([])
        found = [s for s in await self._known_symbols() if query in s.upper()]
        # Prefix matches first, then the rest, each alphabetically.
        found.sort(key=lambda s: (not s.upper().startswith(query), s))
        return web.json_response(
            [
                {
                    "symbol": s,
                    "full_name": s,
                    "description": s,
                    "exchange": _EXCHANGE,
                    "ticker": s,
                    "type": _SYMBOL_TYPE,
                }
                for s in found[:limit]
            ]
        )

    async def _time(self, request: web.Request) -> web.Response:
        return web.Response(text=str(self._clock_ns() // 1_000_000_000))

    async def _history(self, request: web.Request) -> web.Response:
        try:
            symbol = await self.symbol(request)
            resolution = resolution_param(param(request, "resolution"))
            from_s = _seconds_param(request, "from")
            to_s = _seconds_param(request, "to")
            countback = int_param(request, "countback", default=0)
            if not 0 <= countback <= 2**31 - 1:
                raise BadRequest(f"countback: {countback} is not from 0 to 2**31-1")
            if countback == 0 and from_s > to_s:
                raise BadRequest(f"from: {from_s} is after to {to_s}")
        except BadRequest as exc:
            return error(str(exc))
        from_ns, to_ns = from_s * 1_000_000_000, to_s * 1_000_000_000
        before: pb.Bar | None = None
        try:
            bars = await self._bars.history(symbol, resolution, from_ns, to_ns, countback)
            if not bars and not countback:
                # With countback nothing exists before ``to``, so nothing before ``from``.
                before = await self._bars.last_before(symbol, resolution, from_ns)
        except StoreError as exc:
            return error(f"bar store unavailable: {exc}", status=503)
        if not bars:
            if before is None:
                return web.json_response({"s": "no_data"})
            return web.json_response(
                {"s": "no_data", "nextTime": before.open_time_ns // 1_000_000_000}
            )
        return web.Response(body=_history_body(bars), content_type="application/json")
