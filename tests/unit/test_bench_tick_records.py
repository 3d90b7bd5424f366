"""The fanout benchmarks' per-symbol batch records hold the same ticks as one per record."""

from __future__ import annotations

from bench.harness.ticks import batch_records, symbols, tick_records
from mdfeed.kernel.tick_records import ticks_of
from proto import mdfeed_pb2 as pb


def test_batch_records_hold_each_symbols_ticks_in_order_one_record_per_symbol() -> None:
    names = symbols(3)
    single = tick_records(names, 5, 10)  # SYM000 gets 4 ticks, the others 3
    batched = batch_records(single)
    assert [r.key for r in batched] == [n.encode() for n in names]
    for record in batched:
        ticks = [pb.Tick.FromString(t) for t in ticks_of(record.value)]
        assert {t.symbol for t in ticks} == {record.key.decode()}
        assert [t.seq for t in ticks] == list(range(5, 5 + len(ticks)))
    assert sorted(t for r in batched for t in ticks_of(r.value)) == sorted(r.value for r in single)
    assert len(ticks_of(batched[0].value)) == 4
