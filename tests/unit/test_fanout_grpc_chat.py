"""gRPC: chat on Connect, resume without loss or duplicates, auth and entitlements,
malformed requests, health, reflection and TLS. In-process bus, SQLite chat store."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from polling import until

from fanout.chat import ChatService
from fanout.tick_fanout import TickFanout
from fanout.transports.grpc_server import GrpcServer, server_credentials
from fanout.transports.grpc_service import SERVICE_NAME, MarketDataServicer
from mdfeed.kernel.bus import BusProducer, MemoryBus
from mdfeed.kernel.config import BusConfig, ChatConfig, ConfigError, FanoutConfig
from mdfeed.kernel.entitlements import Entitlements, User
from proto import mdfeed_pb2 as pb
from storage import SqliteChatStore

ALICE = User("alice", "alice-token-1", frozenset({"AAPL"}), frozenset({"lobby"}))
BOB = User("bob", "bob-token-22", frozenset({"*"}), frozenset({"*"}))

Call = aio.StreamStreamCall[pb.ClientFrame, pb.ServerFrame]


@dataclass
class Env:
    fanout: TickFanout
    chat: ChatService
    servicer: MarketDataServicer
    server: GrpcServer
    producer: BusProducer
    channel: aio.Channel

    def connect(self, token: str | None = None, user: str | None = None) -> Call:
        method = self.channel.stream_stream(
            f"/{SERVICE_NAME}/Connect",
            request_serializer=pb.ClientFrame.SerializeToString,
            response_deserializer=pb.ServerFrame.FromString,
        )
        return method(None, metadata=_metadata(token, user))  # no iterator: frames are written

    def subscribe(
        self, request: pb.SubscribeRequest, token: str | None = None
    ) -> aio.UnaryStreamCall[pb.SubscribeRequest, pb.ServerFrame]:
        method = self.channel.unary_stream(
            f"/{SERVICE_NAME}/Subscribe",
            request_serializer=pb.SubscribeRequest.SerializeToString,
            response_deserializer=pb.ServerFrame.FromString,
        )
        return method(request, metadata=_metadata(token, None))


def _metadata(token: str | None, user: str | None) -> list[tuple[str, str]]:
    out = []
    if token is not None:
        out.append(("authorization", f"Bearer {token}"))
    if user is not None:
        out.append(("x-mdfeed-user", user))
    return out


@asynccontextmanager
async def env(
    tmp_path: Path,
    entitlements: Entitlements | None = None,
    fanout_config: FanoutConfig | None = None,
    chat_config: ChatConfig | None = None,
) -> AsyncIterator[Env]:
    bus = MemoryBus(dataclasses.replace(BusConfig(kind="memory"), tick_partitions=2))
    async with (
        bus,
        SqliteChatStore(tmp_path / "chat.sqlite3") as store,
        ChatService(store, bus, chat_config or ChatConfig(rate_burst=1000)) as chat,
        TickFanout(bus, poll_timeout_ms=50) as fanout,
        bus.producer() as producer,
    ):
        servicer = MarketDataServicer(fanout, chat=chat, entitlements=entitlements)
        config = fanout_config or FanoutConfig(grpc_port=0)
        server = GrpcServer(servicer, config)
        await server.start()
        try:
            async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield Env(fanout, chat, servicer, server, producer, channel)
        finally:
            await server.stop(None)


async def read(
    call: Call | aio.UnaryStreamCall[pb.SubscribeRequest, pb.ServerFrame],
) -> pb.ServerFrame:
    frame = await call.read()
    assert isinstance(frame, pb.ServerFrame)
    return frame


async def read_chat(call: Call, count: int) -> list[pb.ChatMessage]:
    got: list[pb.ChatMessage] = []
    while len(got) < count:
        frame = await read(call)
        assert frame.WhichOneof("body") == "chat", frame
        got.append(frame.chat)
    return got


def post(room: str, text: str, ref: str = "") -> pb.ClientFrame:
    return pb.ClientFrame(chat_post=pb.ChatPost(room=room, text=text, client_ref=ref))


async def test_chat_round_trip_and_resume_without_loss_or_duplicates(tmp_path: Path) -> None:
    async with asyncio.timeout(20), env(tmp_path) as e:
        reader = e.connect(user="reader")
        await reader.write(pb.ClientFrame(subscribe=pb.SubscribeRequest(rooms=["lobby"])))
        await until(lambda: e.chat.membership_count == 1)
        writer = e.connect(user="writer")
        for i in range(1, 4):
            await writer.write(post("lobby", f"m{i}", f"r{i}"))
        echo = await read_chat(writer, 3)  # not a member: each stored post comes back as its ack
        assert [(m.seq, m.author) for m in echo] == [(1, "writer"), (2, "writer"), (3, "writer")]
        got = await read_chat(reader, 3)
        assert [(m.seq, m.text) for m in got] == [(1, "m1"), (2, "m2"), (3, "m3")]

        # The reader goes away after seq 3; four more are posted; it resumes after 3.
        reader.cancel()
        for i in range(4, 8):
            await writer.write(post("lobby", f"m{i}", f"r{i}"))
        await read_chat(writer, 4)
        again = e.connect(user="reader")
        await again.write(pb.ClientFrame(resume=pb.ResumeRequest(room="lobby", after_seq=3)))
        await writer.write(post("lobby", "m8", "r8"))
        got = await read_chat(again, 5)
        assert [m.seq for m in got] == [4, 5, 6, 7, 8]
        # Nothing more (no duplicate of 8): the next message is 9.
        await writer.write(post("lobby", "m9", "r9"))
        assert [m.seq for m in await read_chat(again, 1)] == [9]

        history = e.channel.unary_unary(
            f"/{SERVICE_NAME}/GetChatHistory",
            request_serializer=pb.ChatHistoryRequest.SerializeToString,
            response_deserializer=pb.ChatHistoryResponse.FromString,
        )
        reply = await history(pb.ChatHistoryRequest(room="lobby", after_seq=6, limit=2))
        assert [m.text for m in reply.messages] == ["m7", "m8"]
        writer.cancel()
        again.cancel()


async def test_bad_chat_posts_get_error_frames_with_the_client_ref(tmp_path: Path) -> None:
    async with asyncio.timeout(10), env(tmp_path, chat_config=ChatConfig(max_text_chars=5)) as e:
        call = e.connect()
        await call.write(post("lobby", "far too long", "ref-a"))
        frame = await read(call)
        assert (frame.error.code, frame.error.ref) == (3, "ref-a")
        assert frame.error.message == "text: 12 characters, at most 5"
        await call.write(post("bad room", "hi", "ref-b"))
        frame = await read(call)
        assert (frame.error.code, frame.error.ref) == (3, "ref-b")
        await call.write(post("lobby", "ok", "ref-c"))
        assert (await read(call)).chat.seq == 1
        call.cancel()


async def test_auth_missing_or_unknown_token_is_unauthenticated(tmp_path: Path) -> None:
    entitlements = Entitlements([ALICE, BOB], enabled=True)
    async with asyncio.timeout(10), env(tmp_path, entitlements) as e:
        for token, detail in ((None, "missing token"), ("nope-nope", "unknown token")):
            call = e.subscribe(pb.SubscribeRequest(symbols=["AAPL"]), token=token)
            with pytest.raises(aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert detail in (info.value.details() or "")
        connect = e.connect(token="wrong-token")
        with pytest.raises(aio.AioRpcError) as info:
            await connect.read()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_entitlements_per_symbol_and_room(tmp_path: Path) -> None:
    entitlements = Entitlements([ALICE, BOB], enabled=True)
    async with asyncio.timeout(10), env(tmp_path, entitlements) as e:
        denied = e.subscribe(pb.SubscribeRequest(symbols=["AAPL", "TSLA"]), token=ALICE.token)
        with pytest.raises(aio.AioRpcError) as info:
            await denied.read()
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert info.value.details() == "alice is not entitled to symbols TSLA"

        ok = e.subscribe(pb.SubscribeRequest(symbols=["AAPL"]), token=ALICE.token)
        assert (await read(ok)).ticks.snapshot
        ok.cancel()

        call = e.connect(token=ALICE.token)
        await call.write(pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=["MSFT"])))
        frame = await read(call)
        assert frame.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        assert frame.error.message == "subscribe: alice is not entitled to symbols MSFT"
        await call.write(post("desk", "hello", "p1"))
        frame = await read(call)
        assert (frame.error.code, frame.error.ref) == (7, "p1")
        await call.write(pb.ClientFrame(resume=pb.ResumeRequest(room="desk", after_seq=0)))
        frame = await read(call)
        assert (frame.error.code, frame.error.ref) == (7, "desk")
        await call.write(post("lobby", "hello", "p2"))
        message = (await read(call)).chat
        assert (message.author, message.seq) == ("alice", 1)
        call.cancel()

        bob = e.subscribe(pb.SubscribeRequest(symbols=["TSLA"], rooms=["desk"]), token=BOB.token)
        assert (await read(bob)).ticks.snapshot
        bob.cancel()


async def test_malformed_requests_get_invalid_argument_and_others_are_unaffected(
    tmp_path: Path,
) -> None:
    async with asyncio.timeout(10), env(tmp_path) as e:
        healthy = e.subscribe(pb.SubscribeRequest(symbols=["AAPL"]))
        assert (await read(healthy)).ticks.snapshot
        junk = b"\xff\xff\xff\xff"
        raw_subscribe = e.channel.unary_stream(
            f"/{SERVICE_NAME}/Subscribe", request_serializer=None, response_deserializer=None
        )
        with pytest.raises(aio.AioRpcError) as info:
            async for _ in raw_subscribe(junk):
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (info.value.details() or "").startswith("malformed SubscribeRequest")

        raw_connect = e.channel.stream_stream(
            f"/{SERVICE_NAME}/Connect", request_serializer=None, response_deserializer=None
        )
        call = raw_connect(None)
        await call.write(junk)
        raw = await call.read()
        assert isinstance(raw, bytes)
        error = pb.ServerFrame.FromString(raw)
        assert error.error.code == 3
        assert error.error.message.startswith("malformed ClientFrame")
        await call.write(
            pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=["AAPL"])).SerializeToString()
        )
        raw = await call.read()
        assert isinstance(raw, bytes)
        snapshot = pb.ServerFrame.FromString(raw)
        assert snapshot.ticks.snapshot
        assert e.servicer.malformed == 2

        e.producer.send(
            e.fanout._topic,
            b"AAPL",
            pb.Tick(symbol="AAPL", seq=1, kind=pb.TICK_KIND_QUOTE).SerializeToString(),
        )
        frame = await read(healthy)
        assert [t.seq for t in frame.ticks.ticks] == [1]
        healthy.cancel()
        call.cancel()


async def test_health_and_reflection(tmp_path: Path) -> None:
    async with asyncio.timeout(10), env(tmp_path) as e:
        health = health_pb2_grpc.HealthStub(e.channel)
        for service in ("", SERVICE_NAME):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(aio.AioRpcError) as info:
            await health.Check(health_pb2.HealthCheckRequest(service="nope"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        stub = reflection_pb2_grpc.ServerReflectionStub(e.channel)
        call = stub.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        reply = await call.read()
        names = {s.name for s in reply.list_services_response.service}
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names
        await call.write(
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)
        )
        reply = await call.read()
        assert reply.file_descriptor_response.file_descriptor_proto
        await call.done_writing()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_serves_only_tls_clients(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = FanoutConfig(grpc_port=0, tls_cert_file=str(cert), tls_key_file=str(key))
    async with asyncio.timeout(15), env(tmp_path, fanout_config=config) as e:
        assert e.server.tls
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        async with aio.secure_channel(f"127.0.0.1:{e.server.port}", credentials) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME)
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        async with aio.insecure_channel(f"127.0.0.1:{e.server.port}") as plain:
            with pytest.raises(aio.AioRpcError) as info:
                await health_pb2_grpc.HealthStub(plain).Check(
                    health_pb2.HealthCheckRequest(), timeout=3
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^fanout\.tls_key_file: required"):
        server_credentials(FanoutConfig(tls_cert_file="x.pem"))
    with pytest.raises(ConfigError, match=r"^fanout\.tls_cert_file: cannot read"):
        server_credentials(FanoutConfig(tls_cert_file="/nope.pem", tls_key_file="/nope.key"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"^fanout\.tls_cert_file: .* not a PEM file"):
        server_credentials(FanoutConfig(tls_cert_file=str(junk), tls_key_file=str(junk)))


async def test_bar_updates_and_get_bars(tmp_path: Path) -> None:
    from fanout.bars import BarFanout
    from storage import SqliteBarStore

    def bar(minute: int, close: int) -> pb.Bar:
        return pb.Bar(
            symbol="AAPL", resolution=pb.RESOLUTION_1M, open_time_ns=minute * 60 * 10**9,
            open_px_e8=100, high_px_e8=close + 5, low_px_e8=90, close_px_e8=close,
            volume_e8=10, trade_count=1,
        )  # fmt: skip

    bus = MemoryBus(BusConfig(kind="memory"))
    async with (
        asyncio.timeout(15),
        bus,
        SqliteBarStore(tmp_path / "bars.sqlite3") as store,
        TickFanout(bus, poll_timeout_ms=20) as fanout,
        BarFanout(bus) as bars,
        bus.producer() as producer,
    ):
        await store.upsert([bar(m, 100 + m) for m in range(1, 11)])
        entitlements = Entitlements([ALICE, BOB], enabled=True)
        servicer = MarketDataServicer(fanout, entitlements=entitlements, bars=bars, bar_store=store)
        server = GrpcServer(servicer, FanoutConfig(grpc_port=0))
        await server.start()
        try:
            async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                auth = [("authorization", f"Bearer {ALICE.token}")]
                get_bars = channel.unary_unary(
                    f"/{SERVICE_NAME}/GetBars",
                    request_serializer=pb.BarsRequest.SerializeToString,
                    response_deserializer=pb.BarsResponse.FromString,
                )
                reply = await get_bars(
                    pb.BarsRequest(symbol="AAPL", resolution=pb.RESOLUTION_1M, countback=3),
                    metadata=auth,
                )
                assert [b.close_px_e8 for b in reply.bars] == [108, 109, 110]
                reply = await get_bars(
                    pb.BarsRequest(
                        symbol="AAPL", resolution=pb.RESOLUTION_1M,
                        from_time_ns=2 * 60 * 10**9, to_time_ns=4 * 60 * 10**9,
                    ),
                    metadata=auth,
                )  # fmt: skip
                assert [b.close_px_e8 for b in reply.bars] == [102, 103]
                for request, code in (
                    (
                        pb.BarsRequest(symbol="TSLA", resolution=pb.RESOLUTION_1M),
                        "PERMISSION_DENIED",
                    ),
                    (pb.BarsRequest(symbol="AAPL"), "INVALID_ARGUMENT"),
                    (
                        pb.BarsRequest(
                            symbol="AAPL", resolution=pb.RESOLUTION_1M, from_time_ns=9, to_time_ns=1
                        ),
                        "INVALID_ARGUMENT",
                    ),
                ):
                    with pytest.raises(aio.AioRpcError) as info:
                        await get_bars(request, metadata=auth)
                    assert info.value.code().name == code, request

                subscribe = channel.unary_stream(
                    f"/{SERVICE_NAME}/Subscribe",
                    request_serializer=pb.SubscribeRequest.SerializeToString,
                    response_deserializer=pb.ServerFrame.FromString,
                )
                bad = subscribe(
                    pb.SubscribeRequest(
                        symbols=["AAPL"],
                        bar_resolutions=[pb.Resolution.Value("RESOLUTION_UNSPECIFIED")],
                    ),
                    metadata=auth,
                )
                with pytest.raises(aio.AioRpcError) as info:
                    await bad.read()
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                call = subscribe(
                    pb.SubscribeRequest(symbols=["AAPL"], bar_resolutions=[pb.RESOLUTION_1M]),
                    metadata=auth,
                )
                first = await read(call)
                assert first.ticks.snapshot
                while not bars._subscribers:  # noqa: ASYNC110 - plain state
                    await asyncio.sleep(0.01)
                producer.send(bus.config.bar_topic, b"AAPL", bar(11, 111).SerializeToString())
                producer.send(bus.config.bar_topic, b"MSFT", pb.Bar(
                    symbol="MSFT", resolution=pb.RESOLUTION_1M, open_time_ns=1
                ).SerializeToString())  # fmt: skip
                frame = await read(call)
                assert frame.WhichOneof("body") == "bar"
                assert frame.bar.bar.close_px_e8 == 111
                call.cancel()
        finally:
            await server.stop(None)
