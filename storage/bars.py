"""The bar store port: OHLCV bars by symbol and resolution, whichever database is behind.

The ohlcv aggregator writes bars here (:meth:`BarStore.upsert`) and commits its bus offsets
only once the call returned; the datafeed reads them back for charts
(:meth:`BarStore.history`, :meth:`BarStore.last_before`, :meth:`BarStore.symbols`).

Policy every adapter keeps:

* A bar's key is ``(symbol, resolution, open_time_ns)``. ``upsert`` overwrites the bar
  stored under the key, so replaying bars (after a crash, before the offsets were
  committed) never duplicates one, and a revised bar (a late trade, ``final`` set once the
  interval closed) replaces the earlier version. Within one call a later bar of a key wins
  over an earlier one.
* ``upsert`` is all or error: when it returns, every bar of the call is stored; when any
  write failed it raises :class:`~storage.errors.StoreError` (or
  :class:`~storage.errors.StoreUnavailableError`, naming the database, when it could not
  be reached): some bars of the call may then be stored, some not, and the caller must not
  commit the offsets it read them at; repeating the call is safe.
* ``history`` is the bars with ``from_ns <= open_time_ns < to_ns``, ascending. With
  ``countback > 0`` it is instead the last ``countback`` bars with ``open_time_ns < to_ns``
  whatever ``from_ns`` says (TradingView's ``countback``), ascending as well.
* Resolutions and symbols are independent: a bar of one never shows up in another.
* Every field of a bar round-trips exactly (int64 prices and volume, negative ones too);
  ``trade_count`` must fit in int64 (neither database has an unsigned 64-bit integer).
* Retention is the adapter's: Cassandra expires 1s and 1m bars ``OhlcvConfig.ttl_1s_days``
  and ``ttl_1m_days`` after they were written; SQLite, the embedded single-machine default,
  keeps every bar.

Aggregator checkpoints (:meth:`BarStore.save_checkpoints`, :meth:`BarStore.load_checkpoint`)
let a bar aggregator recover exactly after a crash or a rebalance. Per symbol, a
:class:`Checkpoint` holds the bus partition and offset of the last tick applied, the bus
incarnation those offsets belong to (``Bus.incarnation``) and the aggregator's open-bar
state (bytes the store never looks into). The aggregator saves them after a flush's bars
were upserted and before it commits its offsets; the member that takes a symbol over loads
its checkpoint, restores the state and skips the symbol's records up to the offset (when
the bus is still in the incarnation the checkpoint names). Policy:

* Checkpoints belong to the store's checkpoint group (``checkpoint_group``, the
  aggregator's ``OhlcvConfig.group_id``): stores of different groups on one database never
  see each other's checkpoints.
* ``save_checkpoints`` overwrites each symbol's stored checkpoint, whatever it held
  (idempotent: saving the same checkpoints again changes nothing); it is all or error, as
  ``upsert`` is, and the caller must not commit its offsets when it raised. Checkpoints
  are kept until overwritten (no TTL, also on Cassandra).
* ``load_checkpoint`` gives the last checkpoint saved for the symbol in the group, exactly
  (``state`` byte for byte, zero bytes included), or ``None`` when none was saved.
* ``partition`` must fit in int32 and ``offset`` in int64, both ``>= 0``; ``state`` must be
  ``bytes`` of at most :data:`MAX_CHECKPOINT_STATE_BYTES` (a row far larger than that is
  what Cassandra refuses or handles badly); ``incarnation`` a ``str`` of valid Unicode of
  at most :data:`MAX_INCARNATION_CHARS` characters. A checkpoint saved before the stores
  kept incarnations loads with ``incarnation == ""``: ``start()`` adds the column to an
  existing database.
* Last writer wins: the store does not compare offsets, so a member that lost its symbols
  in a rebalance must stop saving their checkpoints (as it stops committing offsets).

Adapters: :class:`~storage.SqliteBarStore` (the embedded default) and
:class:`~storage.CassandraBarStore`. Both pass the contract suite in
:mod:`storage.bar_contract`; :func:`~storage.open_bar_store` picks one from the config.
Errors are drawn in :mod:`storage.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from proto import mdfeed_pb2 as pb

__all__ = [
    "MAX_CHECKPOINT_STATE_BYTES",
    "MAX_INCARNATION_CHARS",
    "RESOLUTIONS",
    "BarKey",
    "BarStore",
    "Checkpoint",
    "check_checkpoints",
    "check_history_args",
    "check_last_before_args",
    "check_resolution",
    "check_symbol",
    "latest_per_key",
    "name_symbols",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1

#: The resolutions a bar may have (every ``pb.Resolution`` but UNSPECIFIED).
RESOLUTIONS: tuple[pb.Resolution.ValueType, ...] = (
    pb.RESOLUTION_1S,
    pb.RESOLUTION_1M,
    pb.RESOLUTION_5M,
    pb.RESOLUTION_15M,
    pb.RESOLUTION_1H,
    pb.RESOLUTION_1D,
)

#: A bar's identity in the store: (symbol, resolution, open_time_ns).
BarKey = tuple[str, int, int]

#: The largest checkpoint ``state``: 8 MiB, half the largest write Cassandra takes by default
#: (``max_mutation_size``: half a 32 MiB commit log segment).
MAX_CHECKPOINT_STATE_BYTES = 8 * 1024 * 1024


#: The longest checkpoint ``incarnation`` (a Kafka cluster id and a topic name fit easily).
MAX_INCARNATION_CHARS = 512


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a bar aggregator stood on one symbol (see the module docstring).

    ``partition`` and ``offset``: the bus partition and offset of the last tick of the
    symbol the aggregator applied (int32 and int64, ``>= 0``); ``state``: its open-bar
    state, opaque to the store; ``incarnation``: the bus incarnation the offset belongs to
    (``""``: unknown, as in checkpoints saved before it was kept). The store checks the
    fields when it is given the checkpoint (:func:`check_checkpoints`), as it checks a bar.
    """

    partition: int
    offset: int
    state: bytes
    incarnation: str = ""


class BarStore(Protocol):
    """OHLCV bars per symbol and resolution (see the module docstring for the policy).

    An async context manager: ``async with store:`` starts it and closes it.
    """

    async def start(self) -> None:
        """Connect, and create (or migrate) the schema (safe on an existing database).

        Raises :class:`~storage.errors.StoreUnavailableError` when the database cannot be
        reached or opened.
        """

    async def close(self) -> None:
        """Release the connection. Safe to call twice, and before ``start()``."""

    async def upsert(self, bars: Sequence[pb.Bar]) -> None:
        """Store every bar, overwriting the stored bar of the same key; all or error."""

    async def history(
        self,
        symbol: str,
        resolution: pb.Resolution.ValueType,
        from_ns: int,
        to_ns: int,
        countback: int = 0,
    ) -> list[pb.Bar]:
        """Bars with ``from_ns <= open_time_ns < to_ns``, ascending.

        With ``countback > 0``: the last ``countback`` bars with ``open_time_ns < to_ns``,
        whatever ``from_ns``, ascending.
        """

    async def last_before(
        self, symbol: str, resolution: pb.Resolution.ValueType, before_ns: int
    ) -> pb.Bar | None:
        """The newest bar with ``open_time_ns < before_ns``; ``None`` if there is none.

        For the datafeed's ``nextTime`` when a requested range holds no bar.
        """

    async def symbols(self) -> list[str]:
        """Every symbol the store holds bars of, sorted.

        Cassandra keeps listing a symbol after its bars expired (see the adapter).
        """

    async def save_checkpoints(self, checkpoints: Mapping[str, Checkpoint]) -> None:
        """Store each symbol's checkpoint in the store's group, overwriting the stored one.

        All or error, as :meth:`upsert`: raises :class:`~storage.errors.StoreError` naming
        what failed; some checkpoints may then be stored, some not; repeating is safe.
        """

    async def load_checkpoint(self, symbol: str) -> Checkpoint | None:
        """The last checkpoint saved for ``symbol`` in the store's group; ``None`` if none."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_symbol(symbol: str, name: str = "symbol") -> None:
    """Raise ``ValueError`` unless ``symbol`` is a non-empty string of valid Unicode."""
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"{name} must be a non-empty string, got {symbol!r}")
    try:
        symbol.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid Unicode text: {exc.reason}") from None


def check_resolution(resolution: int, name: str = "resolution") -> None:
    """Raise ``ValueError`` unless ``resolution`` is one of :data:`RESOLUTIONS`."""
    if not _is_int(resolution) or resolution not in RESOLUTIONS:
        names = ", ".join(pb.Resolution.Name(r) for r in RESOLUTIONS)
        raise ValueError(f"{name} must be one of {names}, got {resolution!r}")


def _check_time(name: str, value: int) -> None:
    if not _is_int(value) or not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{name} must be an int64 (ns since the Unix epoch), got {value!r}")


def latest_per_key(bars: Sequence[pb.Bar]) -> list[pb.Bar]:
    """Check every bar; return one per key, the last of each, in first-seen key order.

    Raises ``ValueError`` naming the first bad bar and field.
    """
    given: object = bars  # typed as a sequence, checked as what it is
    if not isinstance(given, Sequence):
        raise ValueError(f"bars must be a sequence of Bar, got {type(bars).__name__}")
    latest: dict[BarKey, pb.Bar] = {}
    for i, bar in enumerate(bars):
        if not isinstance(bar, pb.Bar):
            raise ValueError(f"bars[{i}] must be a Bar, got {type(bar).__name__}")
        check_symbol(bar.symbol, f"bars[{i}].symbol")
        check_resolution(bar.resolution, f"bars[{i}].resolution")
        if bar.trade_count > _INT64_MAX:
            raise ValueError(f"bars[{i}].trade_count {bar.trade_count} does not fit in int64")
        latest[(bar.symbol, bar.resolution, bar.open_time_ns)] = bar
    return list(latest.values())


def check_checkpoints(checkpoints: Mapping[str, Checkpoint]) -> list[tuple[str, Checkpoint]]:
    """Check every checkpoint; return the (symbol, checkpoint) pairs, sorted by symbol.

    Raises ``ValueError`` naming the first bad one and field, as ``checkpoints['AAPL'].offset``.
    The pairs are a copy: the caller may change its mapping while the store writes.
    """
    given: object = checkpoints  # typed as a mapping, checked as what it is
    if not isinstance(given, Mapping):
        raise ValueError(
            f"checkpoints must be a mapping of symbol to Checkpoint, got {type(given).__name__}"
        )
    pairs = list(checkpoints.items())
    for symbol, checkpoint in pairs:
        check_symbol(symbol, "checkpoints key")
        name = f"checkpoints[{symbol!r}]"
        if not isinstance(checkpoint, Checkpoint):
            raise ValueError(f"{name} must be a Checkpoint, got {type(checkpoint).__name__}")
        partition, offset, state = checkpoint.partition, checkpoint.offset, checkpoint.state
        if not _is_int(partition) or not 0 <= partition <= _INT32_MAX:
            raise ValueError(
                f"{name}.partition must be an int from 0 to 2**31-1, got {partition!r}"
            )
        if not _is_int(offset) or not 0 <= offset <= _INT64_MAX:
            raise ValueError(f"{name}.offset must be an int from 0 to 2**63-1, got {offset!r}")
        if not isinstance(state, bytes):
            raise ValueError(f"{name}.state must be bytes, got {type(state).__name__}")
        if len(state) > MAX_CHECKPOINT_STATE_BYTES:
            raise ValueError(
                f"{name}.state is {len(state)} bytes, more than the "
                f"{MAX_CHECKPOINT_STATE_BYTES} a checkpoint may hold"
            )
        incarnation = checkpoint.incarnation
        if not isinstance(incarnation, str):
            raise ValueError(f"{name}.incarnation must be a str, got {type(incarnation).__name__}")
        if len(incarnation) > MAX_INCARNATION_CHARS:
            raise ValueError(
                f"{name}.incarnation is {len(incarnation)} characters, more than the "
                f"{MAX_INCARNATION_CHARS} a checkpoint may hold"
            )
        try:
            incarnation.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{name}.incarnation is not valid Unicode: {exc.reason}") from None
    pairs.sort(key=lambda pair: pair[0])
    return pairs


def name_symbols(symbols: Sequence[str], shown: int = 3) -> str:
    """The symbols for a message: ``'A', 'B', 'C' and 7 more``."""
    names = ", ".join(repr(symbol) for symbol in symbols[:shown])
    more = len(symbols) - shown
    return f"{names} and {more} more" if more > 0 else names


def check_history_args(
    symbol: str, resolution: int, from_ns: int, to_ns: int, countback: int
) -> None:
    """Raise ``ValueError`` naming the first bad argument of ``history``."""
    check_symbol(symbol)
    check_resolution(resolution)
    _check_time("from_ns", from_ns)
    _check_time("to_ns", to_ns)
    if not _is_int(countback) or not 0 <= countback <= _INT32_MAX:
        raise ValueError(f"countback must be an int from 0 to 2**31-1, got {countback!r}")
    if countback == 0 and from_ns > to_ns:
        raise ValueError(f"from_ns {from_ns} is after to_ns {to_ns}")


def check_last_before_args(symbol: str, resolution: int, before_ns: int) -> None:
    """Raise ``ValueError`` naming the first bad argument of ``last_before``."""
    check_symbol(symbol)
    check_resolution(resolution)
    _check_time("before_ns", before_ns)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
