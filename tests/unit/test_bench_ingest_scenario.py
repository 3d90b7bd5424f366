"""The ingest scenario's figures and its headline, from what its processes report."""

from __future__ import annotations

import re

from bench.harness.ingest_scenario import headline, ingest_figures, scale_out_figures, summary


def venue(x: int, entries: int, cpu_s: float, t: float) -> dict[str, float]:
    return {"x_messages": x, "entries": entries, "cpu_s": cpu_s, "t": t}


def test_figures_take_rates_packing_and_costs_from_the_reports() -> None:
    bare = {"messages": 30_000, "seconds": 2.0, "cpu_s": 1.8}
    ingest = {
        "messages": 10_000,
        "entries": 190_000,
        "ticks": 40_000,
        "seconds": 2.0,
        "cpu_s": 1.9,
        "cpus_allowed": 1,
        "decode_errors": 0,
        "rejected": 0,
        "dropped": 0,
        "stage_ns": {"decode": 200_000_000, "normalize": 100_000_000, "produce": 10_000_000},
    }
    figures = ingest_figures(
        2.0,
        bare,
        (venue(0, 0, 1.0, 10.0), venue(40_000, 800_000, 2.0, 14.0)),
        ingest,
        (venue(40_000, 800_000, 2.0, 14.0), venue(50_000, 990_000, 2.5, 19.0)),
    )
    assert figures["bare_quickfix"]["fix_msgs_per_s"] == 15_000
    assert figures["bare_quickfix"]["entries_per_x"] == 20.0
    assert figures["bare_quickfix"]["entries_per_s"] == 300_000
    assert figures["ingest"]["fix_msgs_per_s"] == 5_000
    assert figures["ingest"]["entries_per_x"] == 19.0
    assert figures["ingest"]["ticks_per_s"] == 20_000
    assert figures["ingest"]["cpu_per_wall_s"] == 0.95
    assert figures["ingest"]["stage_us"]["decode"] == {"per_message": 20.0, "per_entry": 1.053}
    assert figures["venue_cpu_per_wall_s_ingest_phase"] == 0.1
    assert figures["quote_updates_per_s"] == 95_000
    assert figures["ratios"]["ingest_vs_bare_quickfix_fix_msgs"] == round(5_000 / 15_000, 4)
    lines = summary(figures)
    assert (
        lines[-1] == headline(figures) == "ingest: 95,000 quote updates/s (0.33 of bare QuickFIX)"
    )
    assert re.fullmatch(r"ingest: [\d,]+ quote updates/s \(\d+\.\d\d of bare QuickFIX\)", lines[-1])


def test_scale_out_sums_the_shards_and_prints_before_the_headline() -> None:
    figures = {"quote_updates_per_s": 100_000.0}
    shards = [
        {"shard": f"{k}/2", "symbols": 25, "messages": 6_000, "entries": 120_000,
         "seconds": 2.0, "cpu_s": 1.5, "dropped": 0}
        for k in (1, 2)
    ]  # fmt: skip
    scale = scale_out_figures(shards, figures)
    assert scale["entries_per_s"] == 120_000
    assert scale["vs_one_process"] == 1.2
    assert [s["fix_msgs_per_s"] for s in scale["shards"]] == [3_000, 3_000]
    full = {
        "duration_s": 2.0,
        "bare_quickfix": {"fix_msgs_per_s": 1, "entries_per_s": 1, "entries_per_x": 1,
                          "cpu_per_wall_s": 1},
        "ingest": {"fix_msgs_per_s": 1, "entries_per_s": 1, "entries_per_x": 1,
                   "ticks_per_s": 1, "cpu_per_wall_s": 1, "cores_allowed": 1, "stage_us": {},
                   "decode_errors": 0, "rejected_messages": 0, "producer_dropped": 0},
        "venue_cpu_per_wall_s_ingest_phase": 0.1,
        "quote_updates_per_s": 100_000.0,
        "ratios": {"ingest_vs_bare_quickfix_fix_msgs": 0.5},
        "scale_out": scale,
    }  # fmt: skip
    lines = summary(full)
    assert "2 ingest processes at once: 120,000 entries/s in all (1.20x one process)" in lines[-2]
    assert lines[-1] == headline(full)
