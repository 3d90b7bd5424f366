"""The market data requests of one FIX session: which MDReqID asks for which symbols.

`FixIngest` subscribes its symbols in groups: one MarketDataRequest (V) for up to
``fix_session.symbols_per_request`` symbols, so the venue can pack the entries of several
symbols into one incremental refresh (X carries the MDReqID of its subscription, and
symbols subscribed together share X messages). `Subscriptions` is the bookkeeping behind
that, with no I/O of its own:

* request ids: ``md<n>``, unique for the life of the object (across reconnects too), so a
  reject (Y) or a snapshot is never attributed to a request of an earlier session;
* MDReqID -> the symbols it asked for, and symbol -> the request it is streamed under now
  (subscribing a symbol again moves it to the new request, as the venue does);
* which symbols are known good: a snapshot (W) arrived since their latest request.

A reject names only its MDReqID. For a request of one symbol that is the symbol: it is
unavailable. For a request of several symbols (a grouped V is rejected symbol by symbol,
each unknown one with a Y of the group's MDReqID, while the known ones are served) the
reject cannot say which symbol it is about, so `retry_alone` lists the symbols of that
request with no snapshot yet: each is requested again alone, and the venue's answer to
that request marks exactly the unknown ones. Symbols that already streamed keep their
group's request (and their shared X messages).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Request", "Subscriptions", "shard_of", "shard_symbols"]


def shard_of(symbol: str, shards: int) -> int:
    """The shard (1..`shards`) a symbol belongs to: ``zlib.crc32(symbol) % shards + 1``,
    the same in every process and every run (unlike ``hash()``)."""
    return zlib.crc32(symbol.encode()) % shards + 1


def shard_symbols(symbols: Iterable[str], k: int, n: int) -> tuple[str, ...]:
    """The symbols of shard `k` of `n`, in their given order."""
    return tuple(s for s in symbols if shard_of(s, n) == k)


@dataclass(frozen=True, slots=True)
class Request:
    """One MarketDataRequest to send: its MDReqID (262) and the symbols (146/55) it names."""

    md_req_id: str
    symbols: tuple[str, ...]


class Subscriptions:
    """MDReqID -> symbols for one FIX session; see the module docstring."""

    def __init__(self, symbols_per_request: int) -> None:
        if symbols_per_request < 1:
            raise ValueError(f"symbols_per_request must be at least 1, got {symbols_per_request}")
        self.symbols_per_request = symbols_per_request
        self._counter = 0
        self._requests: dict[str, tuple[str, ...]] = {}
        self._current: dict[str, str] = {}
        self._good: set[str] = set()

    def new_session(self) -> None:
        """A new FIX session (logon): the venue knows none of the earlier requests."""
        self._requests.clear()
        self._current.clear()
        self._good.clear()

    def subscribe(self, symbols: Iterable[str]) -> list[Request]:
        """The requests (263=1) for `symbols`, at most `symbols_per_request` each, recorded
        as the symbols' current requests; the symbols are not known good until a snapshot."""
        requests = [Request(self._next_id(), chunk) for chunk in self._chunks(symbols)]
        for request in requests:
            self._requests[request.md_req_id] = request.symbols
            for symbol in request.symbols:
                old = self._current.get(symbol)
                self._current[symbol] = request.md_req_id
                self._good.discard(symbol)
                if old is not None:
                    self._forget_if_unused(old)
        return requests

    def unsubscribe(self, symbols: Iterable[str]) -> list[Request]:
        """The requests (263=2) that stop `symbols`; the symbols have no request after it."""
        requests = [Request(self._next_id(), chunk) for chunk in self._chunks(symbols)]
        for request in requests:
            for symbol in request.symbols:
                old = self._current.pop(symbol, None)
                self._good.discard(symbol)
                if old is not None:
                    self._forget_if_unused(old)
        return requests

    def snapshot(self, symbol: str) -> None:
        """A snapshot (W) of `symbol` arrived: it is known good."""
        if symbol in self._current:
            self._good.add(symbol)

    def symbols_of(self, md_req_id: str) -> tuple[str, ...]:
        """The symbols a request asked for that are still streamed under it (none when the
        MDReqID is not one of this session's, or every symbol moved on)."""
        named = self._requests.get(md_req_id, ())
        return tuple(s for s in named if self._current.get(s) == md_req_id)

    def is_single(self, md_req_id: str) -> bool:
        """True when the request named exactly one symbol: its reject is about that one."""
        return len(self._requests.get(md_req_id, ())) == 1

    def rejected_alone(self, md_req_id: str) -> tuple[str, ...]:
        """A reject of a one-symbol request: the symbol (or nothing if it moved on since),
        which no longer has a request."""
        symbols = self.symbols_of(md_req_id) if self.is_single(md_req_id) else ()
        for symbol in symbols:
            del self._current[symbol]
            self._good.discard(symbol)
        self._forget_if_unused(md_req_id)
        return symbols

    def retry_alone(self, md_req_id: str) -> tuple[str, ...]:
        """After a reject of a request of several symbols: those of its symbols with no
        snapshot yet, still under that request, to be requested again one by one."""
        return tuple(s for s in self.symbols_of(md_req_id) if s not in self._good)

    @property
    def active(self) -> dict[str, str]:
        """Symbol -> MDReqID it is subscribed under (a copy)."""
        return dict(self._current)

    @property
    def open_requests(self) -> int:
        """Requests that still have a symbol streamed under them."""
        return len(self._requests)

    def _next_id(self) -> str:
        self._counter += 1
        return f"md{self._counter}"

    def _chunks(self, symbols: Iterable[str]) -> list[tuple[str, ...]]:
        unique = list(dict.fromkeys(symbols))
        size = self.symbols_per_request
        return [tuple(unique[i : i + size]) for i in range(0, len(unique), size)]

    def _forget_if_unused(self, md_req_id: str) -> None:
        named = self._requests.get(md_req_id)
        if named is not None and not any(self._current.get(s) == md_req_id for s in named):
            del self._requests[md_req_id]
