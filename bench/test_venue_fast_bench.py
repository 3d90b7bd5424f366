"""The venue's fast stream: entries per second from one process to a reader in another.

Not part of `make test`; run with `make bench`. `bench.harness.fast_venue` runs the venue
on its benchmark stream in a process of its own; this process logs on with a bare FIX
client, subscribes 50 symbols in one MarketDataRequest and, after a second of warm-up,
only counts bytes, X frames (``<SOH>35=X<SOH>``) and entries (``<SOH>279=``) for
``SECONDS``. The target (issue 12): at least 1,000,000 entries/s, so the ingest
benchmarks measure the reader, not the simulator.
"""

from __future__ import annotations

import socket
import time

from bench.harness.children import Child, cpu_seconds
from bench.harness.pipeline import symbol_names
from fix_spec import fix44
from fix_spec.fix44.enums import EncryptMethod, MDEntryType, MDUpdateType, SubscriptionRequestType
from fix_spec.fix44.header import Header, Message
from fix_spec.fix44.messages import Logon, MarketDataRequest

SECONDS = 5.0
TARGET_ENTRIES_PER_S = 1_000_000


def _send(sock: socket.socket, message: Message, seq: int) -> None:
    message.header = Header(
        sender_comp_id="MDFEED",
        target_comp_id="VENUE",
        msg_seq_num=seq,
        sending_time=time.time_ns() // 1_000_000 * 1_000_000,
    )
    sock.sendall(fix44.encode(message))


def test_fast_venue_offers_a_million_entries_per_second_to_a_counting_reader() -> None:
    symbols = symbol_names(50)
    venue = Child("bench.harness.fast_venue", "--symbols", ",".join(symbols), name="fast venue")
    try:
        port = venue.read()["port"]
        sock = socket.create_connection(("127.0.0.1", port))
        _send(
            sock,
            Logon(encrypt_method=EncryptMethod.NONE, heart_bt_int=30, reset_seq_num_flag=True),
            1,
        )
        request = MarketDataRequest
        kinds = (MDEntryType.BID, MDEntryType.OFFER, MDEntryType.TRADE)
        _send(
            sock,
            request(
                md_req_id="all",
                subscription_request_type=SubscriptionRequestType.SNAPSHOT_AND_UPDATES,
                market_depth=10,
                md_update_type=MDUpdateType.INCREMENTAL_REFRESH,
                no_md_entry_types=[request.NoMDEntryTypes(md_entry_type=k) for k in kinds],
                no_related_sym=[request.NoRelatedSym(symbol=s) for s in symbols],
            ),
            2,
        )
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        start = time.monotonic() + 1.0  # warm-up: logon, snapshots, the first cycles
        while time.monotonic() < start:
            sock.recv_into(view)
        cpu0 = cpu_seconds(venue.pid)
        nbytes = frames = entries = 0
        t0 = time.monotonic()
        while (now := time.monotonic()) - t0 < SECONDS:
            n = sock.recv_into(view)
            nbytes += n
            frames += buf.count(b"\x0135=X\x01", 0, n)
            entries += buf.count(b"\x01279=", 0, n)
        elapsed = now - t0
        venue_cpu = (cpu_seconds(venue.pid) - cpu0) / elapsed
        sock.close()
    finally:
        venue.close()
    rate = entries / elapsed
    print(
        f"\nfast venue -> counting reader: {rate:,.0f} entries/s, {frames / elapsed:,.0f} X/s, "
        f"{entries / max(frames, 1):.2f} entries per X, {nbytes / elapsed / 1e6:.1f} MB/s, "
        f"venue {venue_cpu:.2f} CPU s per s; target {TARGET_ENTRIES_PER_S:,} "
        f"(ratio {rate / TARGET_ENTRIES_PER_S:.2f})"
    )
    assert rate >= TARGET_ENTRIES_PER_S
