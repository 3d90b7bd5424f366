"""Types of the native core (fix_session/tick_core.c): raw FIX W/X -> books -> encoded Ticks."""

from collections.abc import Iterable
from typing import Final, Protocol

RAW_FALLBACK: Final[int]
RAW_X: Final[int]
RAW_W: Final[int]
RAW_Y: Final[int]

class _Columns(Protocol):
    msg_type: str
    seq_num: int
    sending_ns: int
    symbol: str
    count: int
    action: list[int]
    kind: list[int]
    entry_symbol: list[str]
    px_e8: list[int]
    size_e8: list[int]
    time_ns: list[int]

#: (table, required codes, first tag) of one level, as fix_spec.md_decoder builds them.
LevelSpec = tuple[list[int], list[int], int]
#: (prefix, header, W body, W entry, X body, X entry, MDEntryType chars, MDUpdateAction chars)
NativeLayout = tuple[bytes, LevelSpec, LevelSpec, LevelSpec, LevelSpec, LevelSpec, bytes, bytes]

class TickCore:
    last_symbol: str
    pending: int
    counters: tuple[int, int, int, int, int, int]
    def __init__(self, symbols: Iterable[str], layout: NativeLayout | None = None) -> None: ...
    def on_raw(self, data: str | bytes, ingest_ns: int) -> int: ...
    def apply(self, md: _Columns, ingest_ns: int) -> None: ...
    def take(self, keys: list[bytes], values: list[bytes]) -> None: ...
    def flush(self) -> list[tuple[bytes, bytes]]: ...
    def top(self, symbol: str) -> tuple[int | None, int | None, int | None]: ...
    def sequence(self, symbol: str) -> int: ...
    def symbols(self) -> list[str]: ...
    def hold_back(self) -> None: ...
    def held(self) -> list[str]: ...
