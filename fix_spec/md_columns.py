"""Market data messages (W, X, Y) as columns: what the fast decoder hands the normalizer.

The typed messages (fix_spec.fix44 ...) are the public API for every message; on the tick
path they cost a Decimal, an enum and an object per entry. `MdMessage` is the tick path's
form of the same three messages: one object per message, entries as parallel columns of
ints and strings, prices and sizes already scaled to integers of 10^-8 (see
proto/mdfeed.proto). A field the message does not carry is `ABSENT` (ints) or "" (strings).

One MdMessage may be reused for the next message (`clear()`), so the columns are lists
the decoder appends to and the normalizer only reads.
"""

from __future__ import annotations

from typing import Final

#: An int field the message does not carry (no valid price, size or time is this value).
ABSENT: Final = -(1 << 63)

#: MDEntryType (269) as an int: the normalizer's three; any other type is OTHER, an entry
#: without one ABSENT.
BID: Final = 0
OFFER: Final = 1
TRADE: Final = 2
OTHER: Final = -1

#: MDUpdateAction (279) as an int; snapshot (W) entries are NEW; an X entry without one
#: (the codec rejects that) or with another value is ABSENT.
NEW: Final = 0
CHANGE: Final = 1
DELETE: Final = 2


class MdMessage:
    """One W, X or Y message: header fields, then one column per entry field."""

    msg_type: str
    #: MsgSeqNum (34).
    seq_num: int
    #: SendingTime (52), ns since the epoch.
    sending_ns: int
    #: MDReqID (262), "" when absent.
    md_req_id: str
    #: Symbol (55) of a W or Y, "" when absent (X entries carry their own).
    symbol: str
    #: Text (58) and MDReqRejReason (281) of a Y, "" when absent.
    text: str
    rej_reason: str
    #: Why a value cannot be represented (a price finer than 10^-8, ...), "" when all can:
    #: the normalizer rejects such a message whole, naming its symbols.
    invalid: str
    #: The entry columns, all of length `count`.
    count: int
    action: list[int]
    kind: list[int]
    entry_symbol: list[str]
    px_e8: list[int]
    size_e8: list[int]
    #: MDEntryTime (273) as ns since midnight UTC, ABSENT when not sent.
    time_ns: list[int]
    #: MDEntryPositionNo (290) and MDPriceLevel (1023), ABSENT when not sent.
    position_no: list[int]
    price_level: list[int]
    #: MDEntryID (278) and MDEntryRefID (280), "" when not sent.
    entry_id: list[str]
    ref_id: list[str]

    def __init__(self) -> None:
        self.action = []
        self.kind = []
        self.entry_symbol = []
        self.px_e8 = []
        self.size_e8 = []
        self.time_ns = []
        self.position_no = []
        self.price_level = []
        self.entry_id = []
        self.ref_id = []
        self.clear()

    def clear(self) -> None:
        """Empty every field, keeping the lists, for the next message."""
        self.msg_type = ""
        self.seq_num = 0
        self.sending_ns = 0
        self.md_req_id = ""
        self.symbol = ""
        self.text = ""
        self.rej_reason = ""
        self.invalid = ""
        self.count = 0
        for column in self._columns():
            column.clear()

    def _columns(self) -> tuple[list[int] | list[str], ...]:
        return (
            self.action,
            self.kind,
            self.entry_symbol,
            self.px_e8,
            self.size_e8,
            self.time_ns,
            self.position_no,
            self.price_level,
            self.entry_id,
            self.ref_id,
        )

    def add_entry(
        self,
        action: int,
        kind: int,
        symbol: str,
        px_e8: int,
        size_e8: int,
        *,
        time_ns: int = ABSENT,
        position_no: int = ABSENT,
        price_level: int = ABSENT,
        entry_id: str = "",
        ref_id: str = "",
    ) -> None:
        """Append one entry to every column (for tests and adapters; decoders may append
        to the columns directly)."""
        self.action.append(action)
        self.kind.append(kind)
        self.entry_symbol.append(symbol)
        self.px_e8.append(px_e8)
        self.size_e8.append(size_e8)
        self.time_ns.append(time_ns)
        self.position_no.append(position_no)
        self.price_level.append(price_level)
        self.entry_id.append(entry_id)
        self.ref_id.append(ref_id)
        self.count += 1
