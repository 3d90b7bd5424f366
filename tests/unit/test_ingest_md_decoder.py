"""fix_session.ingest.md_decoder: the ingest's raw FIX -> MdMessage step, fast path and fallback."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from fix_session.ingest import md_decoder
from fix_spec import fix44
from fix_spec.codec import FixCodecError
from fix_spec.fix44 import enums
from fix_spec.fix44.groups import SecAltIDGrpNoSecurityAltID
from fix_spec.fix44.header import Header
from fix_spec.fix44.messages import Heartbeat
from fix_spec.fix44.messages import MarketDataIncrementalRefresh as X
from fix_spec.md_columns import MdMessage
from fix_spec.md_from_typed import columns_from_typed

HEADER = Header(sender_comp_id="V", target_comp_id="M", msg_seq_num=5, sending_time=10**18)


def fields(md: MdMessage) -> dict[str, object]:
    """Every public field of `md` (a compiled MdMessage has no __dict__)."""
    names = (k for k in dir(md) if not k.startswith("_") and not callable(getattr(md, k)))
    return {k: getattr(md, k) for k in names}


def increment(alt_ids: Sequence[SecAltIDGrpNoSecurityAltID] = ()) -> X:
    entry = X.NoMDEntries(
        md_update_action=enums.MDUpdateAction.CHANGE, md_entry_type=enums.MDEntryType.BID,
        symbol="AAPL", md_entry_px=Decimal("187.25"), md_entry_size=Decimal(3),
        no_security_alt_id=alt_ids,
    )  # fmt: skip
    return X(no_md_entries=[entry, entry], header=HEADER)


@pytest.mark.parametrize(
    "message",
    [
        increment(),
        # A nested group inside an entry: the fast decoder leaves it to the typed codec.
        increment([SecAltIDGrpNoSecurityAltID(security_alt_id="US0378331005")]),
    ],
    ids=["fast-path", "nested-group-fallback"],
)
def test_market_data_reads_into_the_reference_columns(message: X) -> None:
    decode = md_decoder("fix44")
    out = MdMessage()
    assert decode(fix44.encode(message), out)
    assert fields(out) == fields(columns_from_typed(fix44.decode(fix44.encode(message))))


def test_other_messages_are_not_market_data_and_bad_ones_raise() -> None:
    decode = md_decoder("fix44")
    out = MdMessage()
    heartbeat = fix44.encode(Heartbeat(header=HEADER))
    assert decode(heartbeat, out) is False
    raw = fix44.encode(increment())
    with pytest.raises(FixCodecError):
        decode(raw.replace(b"270=187.25", b"270=18x.25"), out)
