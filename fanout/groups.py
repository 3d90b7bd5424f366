"""Subscription groups: the clients of one symbol set share the framing of their ticks.

Serialize once, build once (docs/architecture.md, "Principles": 5. serialize once). Clients
that subscribe to the same set of symbols form a ``SubscriptionGroup``. The fanout adds each
tick once per group (not once per client); after every batch of bus records it flushes each
group into ``SharedFrame``s (``fanout.frames``; at most ``max_batch_ticks`` ticks each, built
once) and pushes a reference to every member's ``TickLane`` (``fanout.lane``). The cost per
tick is O(groups holding its symbol); the cost per client is one queue append per frame, so
a thousand clients of one symbol set cost little more than one.

``SubscriptionGroups`` keeps the groups by symbol set and by symbol, and every member in the
group of its current symbol set: a group is made with its first member and dropped with its
last.
"""

from __future__ import annotations

from collections.abc import Collection

from fanout.frames import SharedFrame
from fanout.lane import LaneMember

__all__ = ["SubscriptionGroup", "SubscriptionGroups"]


class SubscriptionGroup:
    """The clients subscribed to exactly ``symbols``; ticks are framed once for all."""

    __slots__ = ("_ticks", "members", "symbols")

    def __init__(self, symbols: frozenset[str]) -> None:
        self.symbols = symbols
        self.members: set[LaneMember] = set()
        self._ticks: list[tuple[str, int, bytes]] = []

    def add(self, symbol: str, seq: int, encoded: bytes) -> None:
        self._ticks.append((symbol, seq, encoded))

    def flush(self, max_batch_ticks: int) -> None:
        """Frame the ticks added since the last flush and push them to every member."""
        ticks = self._ticks
        if not ticks:
            return
        self._ticks = []
        members = self.members
        for start in range(0, len(ticks), max_batch_ticks):
            shared = SharedFrame.of_ticks(ticks[start : start + max_batch_ticks])
            for member in members:
                member.push_frame(shared)

    def broadcast(self, frame: SharedFrame) -> None:
        for member in self.members:
            member.push_frame(frame)


class SubscriptionGroups:
    """The groups by symbol set and by symbol; each member is in the group of its set."""

    __slots__ = ("_by_set", "_group_of", "by_symbol")

    def __init__(self) -> None:
        self._by_set: dict[frozenset[str], SubscriptionGroup] = {}
        #: The groups holding each symbol. The consume loop reads it directly, once per tick;
        #: only ``place`` changes it.
        self.by_symbol: dict[str, list[SubscriptionGroup]] = {}
        self._group_of: dict[LaneMember, SubscriptionGroup] = {}

    def place(self, member: LaneMember, symbols: Collection[str]) -> None:
        """Move ``member`` to the group of exactly ``symbols`` (out of all when empty)."""
        old = self._group_of.pop(member, None)
        if old is not None:
            old.members.discard(member)
            if not old.members:
                self._drop(old)
        if not symbols:
            return
        key = frozenset(symbols)
        group = self._by_set.get(key)
        if group is None:
            group = self._by_set[key] = SubscriptionGroup(key)
            for symbol in key:
                self.by_symbol.setdefault(symbol, []).append(group)
        group.members.add(member)
        self._group_of[member] = group

    def _drop(self, group: SubscriptionGroup) -> None:
        del self._by_set[group.symbols]
        for symbol in group.symbols:
            groups = self.by_symbol[symbol]
            groups.remove(group)
            if not groups:
                del self.by_symbol[symbol]

    def __len__(self) -> int:
        """Distinct symbol sets among the members."""
        return len(self._by_set)
