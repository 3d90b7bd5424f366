"""fix_spec.md_columns: the column form of W/X/Y messages the tick path decodes into."""

from __future__ import annotations

from fix_spec.md_columns import ABSENT, BID, DELETE, NEW, TRADE, MdMessage


def test_entries_go_into_parallel_columns_with_absent_defaults() -> None:
    message = MdMessage()
    message.add_entry(NEW, BID, "AAPL", 18_750_000_000, 300_000_000_00)
    message.add_entry(DELETE, TRADE, "MSFT", ABSENT, ABSENT, entry_id="e7", position_no=2)
    assert message.count == 2
    assert message.entry_symbol == ["AAPL", "MSFT"]
    assert message.px_e8 == [18_750_000_000, ABSENT]
    assert message.time_ns == [ABSENT, ABSENT]
    assert message.position_no == [ABSENT, 2]
    assert message.entry_id == ["", "e7"]
    columns = (
        message.action,
        message.kind,
        message.entry_symbol,
        message.px_e8,
        message.size_e8,
        message.time_ns,
        message.position_no,
        message.price_level,
        message.entry_id,
        message.ref_id,
    )
    assert {len(c) for c in columns} == {2}


def test_clear_empties_every_field_and_keeps_the_lists_for_reuse() -> None:
    message = MdMessage()
    px = message.px_e8
    message.msg_type, message.seq_num, message.symbol, message.invalid = "W", 9, "AAPL", "x"
    message.add_entry(NEW, BID, "AAPL", 1, 1)
    message.clear()
    assert (message.msg_type, message.seq_num, message.symbol, message.invalid) == ("", 0, "", "")
    assert message.count == 0
    assert message.px_e8 == []
    assert message.px_e8 is px
    # Every field, by its public name (the compiled class has no __dict__ for vars()).
    fresh = MdMessage()
    fields = [n for n in dir(fresh) if not n.startswith("_") and not callable(getattr(fresh, n))]
    assert len(fields) == 19
    assert [getattr(message, n) for n in fields] == [getattr(fresh, n) for n in fields]
