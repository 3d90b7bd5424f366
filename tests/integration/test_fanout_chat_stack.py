"""Chat through the real stack: `mdfeed fanout` processes on Kafka, Cassandra and Mosquitto.

* Two fanout processes side by side: a post on one reaches a member on the other.
* No chat lost across a client disconnect and a fanout restart by SIGKILL: every
  acknowledged message is delivered after the client resumes, exactly once, in order.
* A post over MQTT is taken once although both fanouts' bridges subscribe (shared
  subscription) and reaches gRPC members.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from grpc import aio
from paho.mqtt.enums import CallbackAPIVersion
from polling import until_sync

from fanout.transports.grpc_service import SERVICE_NAME
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb

Call = aio.StreamStreamCall[pb.ClientFrame, pb.ServerFrame]
# The installed build: -P keeps the working directory (the source tree) off sys.path.
MDFEED = [sys.executable, "-P", "-m", "mdfeed.cli"]


class FanoutProcess:
    """`mdfeed fanout --config FILE` as a child process."""

    def __init__(self, config_file: Path, port: int, log: Path) -> None:
        self.config_file = config_file
        self.port = port
        # Two fanouts on one host: each needs a metrics port of its own too.
        self.metrics_port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        env = dict(
            os.environ,
            MDFEED__FANOUT__GRPC_PORT=str(self.port),
            MDFEED__METRICS__PORT=str(self.metrics_port),
        )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*MDFEED, "fanout", "--config", str(self.config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        proc = self.proc

        def ready() -> bool:
            if b"fanout ready" in self.log.read_bytes().split(b"=== start")[-1]:
                return True
            if proc.poll() is not None:
                pytest.fail(f"mdfeed fanout exited:\n{self.log.read_text()[-3000:]}")
            return False

        until_sync(
            ready,
            timeout_s=timeout_s,
            interval_s=0.1,
            what=lambda: f"mdfeed fanout ready:\n{self.log.read_text()[-3000:]}",
        )

    def mark(self) -> None:
        with self.log.open("ab") as out:
            out.write(b"\n=== start\n")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def config_file(tmp_path: Path, stack_config: MdfeedConfig, unique_name: str) -> Path:
    path = tmp_path / "fanout.toml"
    path.write_text(
        f"""
[venue]
enabled = false

[bus]
kind = "kafka"
bootstrap_servers = "{stack_config.bus.bootstrap_servers}"
tick_topic = "{unique_name}_ticks"
chat_topic = "{unique_name}_chat"
tick_partitions = 2

[store]
kind = "cassandra"
keyspace = "{unique_name}"

[mqtt]
kind = "external"
host = "127.0.0.1"
port = 1883
topic_prefix = "{unique_name}"

[chat]
rate_burst = 1000
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def fanouts(tmp_path: Path, config_file: Path) -> Iterator[list[FanoutProcess]]:
    procs = [FanoutProcess(config_file, free_port(), tmp_path / f"fanout{i}.log") for i in range(2)]
    yield procs
    for proc in procs:
        proc.stop()


def _connect(channel: aio.Channel, user: str) -> Call:
    method = channel.stream_stream(
        f"/{SERVICE_NAME}/Connect",
        request_serializer=pb.ClientFrame.SerializeToString,
        response_deserializer=pb.ServerFrame.FromString,
    )
    return method(None, metadata=[("x-mdfeed-user", user)])  # no iterator: frames are written


async def _chat(call: Call, count: int) -> list[pb.ChatMessage]:
    got: list[pb.ChatMessage] = []
    while len(got) < count:
        frame = await call.read()
        assert isinstance(frame, pb.ServerFrame), frame
        assert frame.WhichOneof("body") == "chat", frame
        got.append(frame.chat)
    return got


async def _post_all(address: str, room: str, texts: list[str]) -> list[int]:
    """Post each text; return the acknowledged seqs (the poster is not a member)."""
    async with aio.insecure_channel(address) as channel:
        call = _connect(channel, "writer")
        for text in texts:
            await call.write(
                pb.ClientFrame(chat_post=pb.ChatPost(room=room, text=text, client_ref=text))
            )
        acks = await _chat(call, len(texts))
        call.cancel()
    assert [m.text for m in acks] == texts
    return [m.seq for m in acks]


def _mqtt_post(prefix: str, room: str, user: str, text: str) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-phone")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        # No client_ref: only the shared subscription keeps two bridges from storing it twice.
        payload = pb.ChatPost(room=room, text=text).SerializeToString()
        info = client.publish(f"{prefix}/post/{room}/{user}", payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


async def test_two_fanouts_share_chat_and_a_kill_9_loses_nothing(
    fanouts: list[FanoutProcess], unique_name: str
) -> None:
    prefix = unique_name
    first, second = fanouts
    first.mark()
    second.mark()
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    room = "trading-desk"
    async with asyncio.timeout(120):
        # A member on the second instance sees posts made on the first.
        async with aio.insecure_channel(second.address) as channel:
            reader = _connect(channel, "reader")
            await reader.write(pb.ClientFrame(resume=pb.ResumeRequest(room=room, after_seq=0)))
            seqs = await _post_all(first.address, room, [f"m{i}" for i in range(1, 11)])
            assert seqs == list(range(1, 11))
            got = await _chat(reader, 10)
            assert [(m.seq, m.text, m.author) for m in got] == [
                (i, f"m{i}", "writer") for i in range(1, 11)
            ]
            reader.cancel()

        # The reader is gone after seq 10; the first instance is killed mid-flight.
        seqs = await _post_all(first.address, room, [f"m{i}" for i in range(11, 16)])
        assert seqs == list(range(11, 16))
        first.kill()
        first.mark()
        await asyncio.to_thread(first.start)
        seqs = await _post_all(first.address, room, [f"m{i}" for i in range(16, 21)])
        assert seqs == list(range(16, 21)), "numbering continues after the restart"

        # Resuming on the restarted instance after seq 10: exactly 11..20, then live.
        async with aio.insecure_channel(first.address) as channel:
            reader = _connect(channel, "reader")
            await reader.write(pb.ClientFrame(resume=pb.ResumeRequest(room=room, after_seq=10)))
            got = await _chat(reader, 10)
            assert [m.seq for m in got] == list(range(11, 21))
            assert [m.text for m in got] == [f"m{i}" for i in range(11, 21)]
            await _post_all(second.address, room, ["m21"])
            (live,) = await _chat(reader, 1)
            assert (live.seq, live.text) == (21, "m21")

            # A mobile post over MQTT: both bridges share the post subscription, so it is
            # taken once, and reaches the gRPC member like any other post.
            await asyncio.to_thread(_mqtt_post, prefix, room, "mobile", "from the phone")
            (mobile,) = await _chat(reader, 1)
            assert (mobile.seq, mobile.author, mobile.text) == (22, "mobile", "from the phone")
            history = channel.unary_unary(
                f"/{SERVICE_NAME}/GetChatHistory",
                request_serializer=pb.ChatHistoryRequest.SerializeToString,
                response_deserializer=pb.ChatHistoryResponse.FromString,
            )
            await asyncio.sleep(1.0)  # a second bridge taking the post too would add seq 23
            reply = await history(pb.ChatHistoryRequest(room=room, after_seq=20, limit=10))
            assert [m.seq for m in reply.messages] == [21, 22]
            reader.cancel()
