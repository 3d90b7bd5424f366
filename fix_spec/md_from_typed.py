"""A typed W, X or Y message (fix_spec.fix44, venue44, ...) as an `MdMessage`.

This is the reference reading of the three market data messages in column form: the fast
decoder's results are tested against `columns_from_typed(codec.decode(raw))`, and the
normalizer's typed entry points (tests, adapters) go through it. It is not on the tick
path: it reads the typed objects, a Decimal and an enum per value.

Rules, the same the fast decoder follows:

- prices and sizes become integers of 10^-8 units; a value finer than that, or one whose
  scaled value does not fit a signed 64-bit integer, leaves the column ABSENT and names
  the field in `invalid` (the normalizer rejects such a message whole);
- MDEntryType 0, 1 and 2 are BID, OFFER and TRADE, any other type OTHER, none ABSENT;
- MDUpdateAction is NEW, CHANGE or DELETE; W entries, which have none, are NEW; an X entry
  of another action (FIX has none today) is ABSENT;
- MDEntryTime becomes ns since midnight UTC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fix_spec.md_columns import (
    ABSENT,
    BID,
    CHANGE,
    DELETE,
    NEW,
    OFFER,
    OTHER,
    TRADE,
    MdMessage,
)

_KINDS = {"0": BID, "1": OFFER, "2": TRADE}
_ACTIONS = {"0": NEW, "1": CHANGE, "2": DELETE}
_INT64_LIMIT = 1 << 63


def scaled_e8(value: Decimal) -> int | None:
    """`value` as an integer of 10^-8 units, None when not exact or out of int64 range."""
    shifted = value.scaleb(8)
    if not shifted.is_finite():
        return None
    as_int = int(shifted)
    if as_int != shifted or not -_INT64_LIMIT < as_int < _INT64_LIMIT:
        return None
    return as_int


def time_of_day_ns(text: str) -> int:
    """A UTCTimeOnly value (HH:MM:SS[.f...]) as ns since midnight."""
    h, m, rest = text.split(":")
    seconds, _, frac = rest.partition(".")
    ns = ((int(h) * 60 + int(m)) * 60 + int(seconds)) * 1_000_000_000
    if frac:
        ns += int(frac[:9].ljust(9, "0"))
    return ns


def _code(value: Any) -> str:
    """The wire code of an enum member or plain value (None: "")."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def columns_from_typed(message: Any, out: MdMessage | None = None) -> MdMessage:
    """The MdMessage of a typed MarketDataSnapshotFullRefresh (W),
    MarketDataIncrementalRefresh (X) or MarketDataRequestReject (Y)."""
    md = out if out is not None else MdMessage()
    md.clear()
    md.msg_type = message.MSG_TYPE
    if md.msg_type not in ("W", "X", "Y"):
        raise ValueError(f"MsgType {md.msg_type} is not market data (W, X or Y)")
    md.seq_num = message.header.msg_seq_num
    md.sending_ns = message.header.sending_time
    md.md_req_id = getattr(message, "md_req_id", None) or ""
    md.symbol = getattr(message, "symbol", None) or ""
    if md.msg_type == "Y":
        md.text = getattr(message, "text", None) or ""
        md.rej_reason = _code(getattr(message, "md_req_rej_reason", None))
        return md
    invalid: list[str] = []
    for e in message.no_md_entries:
        kind_code = _code(e.md_entry_type)
        kind = _KINDS.get(kind_code, OTHER) if kind_code else ABSENT
        action_code = _code(getattr(e, "md_update_action", None))
        action = _ACTIONS.get(action_code, ABSENT) if action_code else NEW
        values = []
        for name, raw in (("MDEntryPx", e.md_entry_px), ("MDEntrySize", e.md_entry_size)):
            if raw is None:
                values.append(ABSENT)
                continue
            as_e8 = scaled_e8(raw)
            if as_e8 is None:
                invalid.append(f"{name} {raw} is not a whole number of 10^-8 in int64 range")
                values.append(ABSENT)
            else:
                values.append(as_e8)
        time_text = getattr(e, "md_entry_time", None)
        position = getattr(e, "md_entry_position_no", None)
        level = getattr(e, "md_price_level", None)
        md.add_entry(
            action,
            kind,
            getattr(e, "symbol", None) or "",
            values[0],
            values[1],
            time_ns=time_of_day_ns(time_text) if time_text else ABSENT,
            position_no=ABSENT if position is None else position,
            price_level=ABSENT if level is None else level,
            entry_id=getattr(e, "md_entry_id", None) or "",
            ref_id=getattr(e, "md_entry_ref_id", None) or "",
        )
    md.invalid = "; ".join(invalid)
    return md
