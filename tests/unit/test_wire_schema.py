"""The wire schema: generated code is current, prices keep every cent, frames concatenate."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mdfeed.codegen import PROTO_OUTPUTS, generate_proto
from proto import mdfeed_pb2 as pb

E8 = Decimal(10) ** 8


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    generate_proto(tmp_path)
    installed = resources.files("proto")
    for name in PROTO_OUTPUTS:
        committed = (installed / name).read_bytes()
        fresh = (tmp_path / name).read_bytes()
        assert committed == fresh, f"proto/{name} is stale: run 'make proto' and commit"


def test_generated_files_are_marked() -> None:
    installed = resources.files("proto")
    for name in PROTO_OUTPUTS:
        head = (installed / name).read_text(encoding="utf-8")[:400].lower()
        assert "generated" in head, name
        assert "do not edit" in head, name


@given(st.decimals(min_value=Decimal("-92233720368"), max_value=Decimal("92233720368"), places=8))
def test_prices_round_trip_exactly(price: Decimal) -> None:
    tick = pb.Tick(symbol="AAPL", seq=1, bid_px_e8=int(price * E8))
    decoded = pb.Tick.FromString(tick.SerializeToString())
    assert Decimal(decoded.bid_px_e8) / E8 == price


def test_cents_survive_where_binary_floats_drift() -> None:
    # 0.1 + 0.2 in doubles is 0.30000000000000004; in scaled integers it is exact.
    total = pb.Tick(last_px_e8=10_000_000).last_px_e8 + pb.Tick(last_px_e8=20_000_000).last_px_e8
    assert total == 30_000_000


def test_unset_book_side_is_distinguishable_from_zero() -> None:
    tick = pb.Tick.FromString(pb.Tick(symbol="X", ask_px_e8=0).SerializeToString())
    assert tick.HasField("ask_px_e8")
    assert tick.ask_px_e8 == 0
    assert not tick.HasField("bid_px_e8")


ticks = st.builds(
    pb.Tick,
    symbol=st.sampled_from(["AAPL", "MSFT", "BRK.B"]),
    seq=st.integers(min_value=1, max_value=2**63),
    kind=st.sampled_from([pb.TICK_KIND_QUOTE, pb.TICK_KIND_TRADE]),
    bid_px_e8=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    last_size_e8=st.integers(min_value=0, max_value=2**63 - 1),
    ingest_time_ns=st.integers(min_value=0, max_value=2**63 - 1),
)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, varint length, bytes."""
    tag = (number << 3) | 2
    size = len(payload)
    varint = bytearray()
    while True:
        byte = size & 0x7F
        size >>= 7
        if size:
            varint.append(byte | 0x80)
        else:
            varint.append(byte)
            break
    return bytes([tag]) + bytes(varint) + payload


@given(st.lists(ticks, min_size=1, max_size=20))
def test_a_frame_is_the_concatenation_of_encoded_ticks(batch: list[pb.Tick]) -> None:
    # Serialize once: each tick is encoded once; a frame for any client is built by
    # concatenating those bytes, and it decodes to the same batch.
    encoded = [t.SerializeToString() for t in batch]
    batch_bytes = b"".join(_field(1, e) for e in encoded)
    frame_bytes = _field(1, batch_bytes)
    frame = pb.ServerFrame.FromString(frame_bytes)
    assert frame.WhichOneof("body") == "ticks"
    assert list(frame.ticks.ticks) == batch
    assert frame_bytes == pb.ServerFrame(ticks=pb.TickBatch(ticks=batch)).SerializeToString()


def test_client_frames_carry_each_request_kind() -> None:
    frames = [
        pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=["AAPL"], rooms=["lobby"])),
        pb.ClientFrame(unsubscribe=pb.UnsubscribeRequest(symbols=["AAPL"])),
        pb.ClientFrame(chat_post=pb.ChatPost(room="lobby", text="hi", client_ref="1")),
        pb.ClientFrame(resume=pb.ResumeRequest(room="lobby", after_seq=41)),
    ]
    kinds = [pb.ClientFrame.FromString(f.SerializeToString()).WhichOneof("body") for f in frames]
    assert kinds == ["subscribe", "unsubscribe", "chat_post", "resume"]


def test_service_has_the_four_calls() -> None:
    service = pb.DESCRIPTOR.services_by_name["MarketData"]
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert methods == {
        "Connect": (True, True),
        "Subscribe": (False, True),
        "GetBars": (False, False),
        "GetChatHistory": (False, False),
    }
