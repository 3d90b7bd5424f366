"""Choosing the bus adapter from the config."""

from __future__ import annotations

from mdfeed.kernel.bus._kafka import KafkaBus
from mdfeed.kernel.bus._memory import MemoryBus
from mdfeed.kernel.bus.ports import Bus
from mdfeed.kernel.config import BusConfig

__all__ = ["open_bus"]


def open_bus(config: BusConfig) -> Bus:
    """The bus ``config.kind`` names: :class:`MemoryBus` ("memory") or :class:`KafkaBus`."""
    if config.kind == "memory":
        return MemoryBus(config)
    if config.kind == "kafka":
        return KafkaBus(config)
    raise ValueError(f"unknown bus kind {config.kind!r}")
