"""The measured system of `mdfeed bench`: the real stack, the venue, mdfeed's services as
they are deployed (one process each), and the subscriber processes.

* The local stack's Kafka and Mosquitto (``mdfeed stack up kafka mosquitto``), started when
  they are not running and stopped again at the end if the harness started them. Cassandra
  is not on the tick path and is left alone.
* A fresh tick topic per run, created with ``message.timestamp.type=LogAppendTime`` so a
  record's timestamp is when the broker stored it: the bus hop. The run's topics are
  deleted at the end.
* The simulated venue in the harness's own process, paced by ``set_rate``.
* ``mdfeed ingest`` and ``mdfeed fanout`` as child processes with a config written for the
  run (SQLite chat store in the run directory, MQTT on the stack's Mosquitto under a topic
  prefix of the run's own), each with its Prometheus endpoint, which the harness scrapes
  for per-stage counts.
* The subscriber processes (``bench.harness.subscribers``): N gRPC streams and M MQTT
  clients, driven as bench.harness.children describes.

Every process it starts runs Python with ``-P``: the installed build, not a source
checkout that happens to be the working directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from bench.harness.children import Child, ChildError, cpu_seconds, listener_pid
from bench.harness.stats import HOPS, latency_from_json
from fix_session.venue import SimulatedVenue
from mdfeed.kernel.config import VenueConfig
from mdfeed.kernel.histogram import Histogram
from mdfeed.stack.scratch import free_port

__all__ = ["Counters", "Pipeline", "PipelineError", "PipelineOptions", "scrape"]

HOST = "127.0.0.1"
KAFKA = "127.0.0.1:9092"
MOSQUITTO_PORT = 1883


class PipelineError(Exception):
    """A part of the measured pipeline did not start or died; the message says which."""


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    symbols: int = 50
    rate_per_s: int = 5000
    grpc_streams: int = 8
    mqtt_clients: int = 4
    #: Clients per kind that time every tick they receive (see bench.harness.subscribers).
    recording_clients: int = 1
    partitions: int = 6
    stack_dir: str | None = None
    run_dir: Path = Path("bench-results")
    seed: int = 7
    #: Price levels a side each quote tick carries (fix_session.publish_depth; 0: top only).
    depth: int = 0


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative counts at one moment, per stage; rates are differences of two."""

    at: float
    values: Mapping[str, float]
    #: Worst venue-to-client latency the recording gRPC clients saw since the previous
    #: sample (MQTT's only without gRPC clients: MQTT quotes wait up to a conflation interval
    #: by design, so they would hide a queue building up on the tick path).
    window_max_ns: int | None
    lag: float
    errors: tuple[str, ...] = ()


def symbol_names(count: int) -> tuple[str, ...]:
    return tuple(f"S{i:04d}" for i in range(count))


async def scrape(port: int, *, timeout_s: float = 5.0) -> dict[str, float]:
    """The samples of a /metrics endpoint: ``name`` (summed over labels) and
    ``name{label="value",...}``."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
        session.get(f"http://{HOST}:{port}/metrics") as response,
    ):
        response.raise_for_status()
        text = await response.text()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
            if sample.labels:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


async def _terminate(process: asyncio.subprocess.Process, timeout_s: float = 15.0) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        async with asyncio.timeout(timeout_s):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Pipeline:
    """Everything `mdfeed bench` measures, started by ``async with`` and stopped after."""

    options: PipelineOptions
    out: TextIO = sys.stderr
    venue: SimulatedVenue | None = None
    run_id: str = field(default_factory=lambda: f"{int(time.time())}-{os.getpid()}")
    ports: dict[str, int] = field(default_factory=dict)
    _services: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _children: list[Child] = field(default_factory=list)
    _started_servers: list[str] = field(default_factory=list)
    _topics_created: bool = False
    #: What the subscribers reported going wrong (cut-off streams, refused connections, junk).
    client_errors: set[str] = field(default_factory=set)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def symbols(self) -> tuple[str, ...]:
        return symbol_names(self.options.symbols)

    @property
    def tick_topic(self) -> str:
        return f"bench.{self.run_id}.ticks"

    @property
    def floor_topic(self) -> str:
        return f"bench.{self.run_id}.floor"

    @property
    def ingest_topic(self) -> str:
        """The ingest scenario's topic (bench.harness.ingest_scenario): nothing reads it."""
        return f"bench.{self.run_id}.ingest"

    def pause_venue(self) -> None:
        """Stop the pipeline's venue streaming, so its ingest and fanout are idle."""
        assert self.venue is not None
        self.venue.pause_stream()

    def resume_venue(self) -> None:
        assert self.venue is not None
        self.venue.resume_stream()

    @property
    def logs(self) -> Path:
        return self.options.run_dir / "logs"

    async def __aenter__(self) -> Pipeline:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # -- start --------------------------------------------------------------------

    async def _start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        await self._ensure_stack()
        await self._create_topic()
        options = self.options
        self.venue = SimulatedVenue(
            VenueConfig(
                host=HOST,
                port=free_port(),
                symbols=self.symbols,
                rate_ticks_per_s=options.rate_per_s,
                seed=options.seed,
            )
        )
        await self._stack.enter_async_context(self.venue)
        self.ports = {
            "venue": self.venue.port,
            "grpc": free_port(),
            "ingest_metrics": free_port(),
            "fanout_metrics": free_port(),
        }
        config = self._write_config()
        # The fanout first: it reads the topic from its end, so it must be there before
        # the first tick.
        await self._start_service("fanout", config, self.ports["fanout_metrics"])
        await self._wait_port("fanout", self.ports["grpc"])
        await self._start_service("ingest", config, self.ports["ingest_metrics"])
        await self._wait_logged_on()
        if options.grpc_streams:
            await self._start_children(
                "grpc",
                options.grpc_streams,
                "--port",
                str(self.ports["grpc"]),
                "--symbols",
                ",".join(self.symbols),
            )
        if options.mqtt_clients:
            await self._start_children(
                "mqtt",
                options.mqtt_clients,
                "--port",
                str(MOSQUITTO_PORT),
                "--topic-prefix",
                self._mqtt_prefix,
                "--client-id",
                f"bench-{self.run_id}",
            )

    @property
    def _mqtt_prefix(self) -> str:
        return f"bench/{self.run_id}"

    async def _stack_cli(self, *args: str, show: bool = False) -> tuple[int, str]:
        """``mdfeed stack ARGS``: its exit code and output, or (``show``) its output passed
        straight through, so a first start that installs the jars shows its progress."""
        extra = ["--dir", self.options.stack_dir] if self.options.stack_dir else []
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",
            "-m",
            "mdfeed.cli",
            "stack",
            *args[:1],
            *extra,
            *args[1:],
            # Shown on stderr with the progress: stdout carries only the results.
            stdout=sys.stderr.fileno() if show else asyncio.subprocess.PIPE,
            stderr=None if show else asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        return process.returncode or 0, (output or b"").decode(errors="replace")

    async def _ensure_stack(self) -> None:
        _, status = await self._stack_cli("status")
        down = [
            line.split()[0]
            for line in status.splitlines()
            if line.split()[:1] in (["kafka"], ["mosquitto"]) and "running" not in line
        ]
        if not down:
            self._say("stack: kafka and mosquitto already running (left running)")
            return
        self._say(f"stack: starting {', '.join(down)} (stopped again at the end)…")
        self._started_servers = down  # stopped on the way out even if only half started
        code, _ = await self._stack_cli("up", *down, show=True)
        if code != 0:
            raise PipelineError(f"`mdfeed stack up {' '.join(down)}` failed (its output is above)")

    async def _create_topic(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        topic,
                        num_partitions=self.options.partitions,
                        replication_factor=1,
                        topic_configs={"message.timestamp.type": "LogAppendTime"},
                    )
                    for topic in (self.tick_topic, self.floor_topic, self.ingest_topic)
                ]
            )
        finally:
            await admin.close()
        self._topics_created = True

    def _run_topics(self) -> list[str]:
        return [self.tick_topic, self.floor_topic, self.ingest_topic] + [
            f"bench.{self.run_id}.{name}" for name in ("chat", "bars")
        ]

    async def _delete_topics(self) -> None:
        """The run's topics go with it: a benchmark's ticks are of no use afterwards."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            mine = [t for t in self._run_topics() if t in existing]
            if mine:
                await admin.delete_topics(mine)
        except Exception as exc:  # the results matter more than the tidying
            self._say(f"bench: could not delete the run's topics ({exc}); they stay on Kafka")
        finally:
            await admin.close()
        self._topics_created = False

    def _write_config(self) -> Path:
        run = self.options.run_dir.resolve()
        symbols = ", ".join(f'"{s}"' for s in self.symbols)
        text = f"""# Written by `mdfeed bench` for run {self.run_id}.
[venue]
enabled = false
symbols = [{symbols}]

[fix_session]
host = "{HOST}"
port = {self.ports["venue"]}
symbols = [{symbols}]
log_dir = "{run}/fix"
publish_depth = {self.options.depth}

[bus]
kind = "kafka"
bootstrap_servers = "{KAFKA}"
tick_topic = "{self.tick_topic}"
chat_topic = "bench.{self.run_id}.chat"
bar_topic = "bench.{self.run_id}.bars"
tick_partitions = {self.options.partitions}
client_id = "mdfeed-bench"

[store]
kind = "sqlite"
sqlite_path = "{run}/fanout.sqlite3"

[mqtt]
kind = "external"
host = "{HOST}"
port = {MOSQUITTO_PORT}
topic_prefix = "{self._mqtt_prefix}"
client_id = "mdfeed-bench-{self.run_id}"

[fanout]
grpc_host = "{HOST}"
grpc_port = {self.ports["grpc"]}

[log]
level = "WARNING"
"""
        path = run / "pipeline.toml"
        path.write_text(text)
        return path

    async def _start_service(self, command: str, config: Path, metrics_port: int) -> None:
        env = {
            **os.environ,
            "MDFEED__METRICS__PORT": str(metrics_port),
            "PYTHONUNBUFFERED": "1",
        }
        log = (self.logs / f"{command}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",
            "-m",
            "mdfeed.cli",
            command,
            "--config",
            str(config),
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
        )
        log.close()
        self._services[command] = process
        deadline = time.monotonic() + 60
        while True:
            if process.returncode is not None:
                raise PipelineError(
                    f"mdfeed {command} exited ({process.returncode}) during start-up:\n"
                    + _tail(self.logs / f"{command}.log")
                )
            with contextlib.suppress(OSError, asyncio.TimeoutError, ValueError):
                import aiohttp

                try:
                    await scrape(metrics_port, timeout_s=1.0)
                    return
                except aiohttp.ClientError:
                    pass
            if time.monotonic() > deadline:
                raise PipelineError(
                    f"mdfeed {command}: no metrics on port {metrics_port} after 60 s:\n"
                    + _tail(self.logs / f"{command}.log")
                )
            await asyncio.sleep(0.2)

    async def _wait_port(self, command: str, port: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                if time.monotonic() > deadline:
                    raise PipelineError(
                        f"mdfeed {command}: nothing listens on {HOST}:{port} "
                        f"after {timeout_s:.0f} s"
                    ) from None
                await asyncio.sleep(0.2)
                continue
            writer.close()
            return

    async def _wait_logged_on(self) -> None:
        assert self.venue is not None
        try:
            await self.venue.wait_logged_on(timeout=60)
        except TimeoutError as exc:
            raise PipelineError(
                "the FIX session did not log on to the venue within 60 s:\n"
                + _tail(self.logs / "ingest.log")
            ) from exc

    async def _start_children(self, kind: str, count: int, *args: str) -> None:
        with (self.logs / f"{kind}-subscribers.log").open("wb") as log:
            child = Child(
                "bench.harness.subscribers",
                kind,
                "--count",
                str(count),
                "--record",
                str(self.options.recording_clients),
                *args,
                name=f"{kind} subscribers",
                stderr=log,
            )
        self._children.append(child)
        await self._ask(child.aread(timeout_s=60))

    async def _ask(self, answer: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """A subscriber's answer; its failure as the pipeline's."""
        try:
            got: dict[str, Any] = await answer
        except ChildError as exc:
            raise PipelineError(f"{exc}; see its log in {self.logs}") from None
        return got

    # -- run ------------------------------------------------------------------------

    def set_rate(self, per_s: float) -> None:
        assert self.venue is not None
        self.venue.set_rate(max(1, round(per_s)))

    def check_alive(self) -> None:
        for name, process in self._services.items():
            if process.returncode is not None:
                raise PipelineError(
                    f"mdfeed {name} died ({process.returncode}):\n"
                    + _tail(self.logs / f"{name}.log")
                )

    async def sample(self) -> Counters:
        """Cumulative counts of every stage now (one scrape and one request per part)."""
        assert self.venue is not None
        self.check_alive()
        ingest, fanout = await asyncio.gather(
            scrape(self.ports["ingest_metrics"]), scrape(self.ports["fanout_metrics"])
        )
        values: dict[str, float] = {
            "venue": float(self.venue.stats.entries_sent),
            "venue_msgs": float(self.venue.stats.messages_sent),
            "ingest_msgs": ingest.get("mdfeed_ingest_fix_messages_total", 0.0),
            "ingest": ingest.get("mdfeed_ingest_ticks_total", 0.0),
            "fanout_in": fanout.get("mdfeed_fanout_ticks_in_total", 0.0),
            "grpc_out": fanout.get('mdfeed_fanout_ticks_out_total{transport="grpc"}', 0.0),
            "mqtt_out": fanout.get('mdfeed_fanout_ticks_out_total{transport="mqtt"}', 0.0),
            "conflated": fanout.get('mdfeed_fanout_conflated_ticks_total{transport="grpc"}', 0.0),
            # MQTT quotes are conflated to mqtt.quote_max_rate_per_symbol_hz by design.
            "mqtt_conflated": fanout.get(
                'mdfeed_fanout_conflated_ticks_total{transport="mqtt"}', 0.0
            ),
        }
        worst: dict[str, int | None] = {}
        errors: list[str] = []
        for child in self._children:
            answer = await self._ask(child.arequest(cmd="sample"))
            kind = child.name.split()[0]
            values[f"{kind}_clients"] = float(answer["ticks"])
            errors.extend(answer.get("errors", []))
            self.client_errors.update(answer.get("errors", []))
            got = answer.get("window_max_ns")
            worst[kind] = None if got is None else int(got)
        return Counters(
            at=time.monotonic(),
            values=values,
            window_max_ns=worst.get("grpc", worst.get("mqtt")),
            lag=fanout.get("mdfeed_consumer_lag_records", 0.0),
            errors=tuple(errors),
        )

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each process on the tick path and beside it: the
        services, Kafka, Mosquitto, the subscriber processes, and this one (the harness
        with the simulated venue, in process). Two readings apart give cores used."""
        pids: dict[str, int | None] = {name: p.pid for name, p in self._services.items()}
        pids["kafka"] = listener_pid(int(KAFKA.rsplit(":", 1)[1]))
        pids["mosquitto"] = listener_pid(MOSQUITTO_PORT)
        for child in self._children:
            pids[child.name] = child.pid
        pids["harness and venue"] = os.getpid()
        return {name: cpu_seconds(pid) for name, pid in pids.items() if pid is not None}

    async def histograms(self) -> dict[str, dict[str, Histogram]]:
        """Per transport, per hop: what the recording clients saw since the last call."""
        out: dict[str, dict[str, Histogram]] = {}
        for child in self._children:
            answer = await self._ask(child.arequest(cmd="histograms"))
            kind = "grpc" if child.name.startswith("grpc") else "mqtt"
            out[kind] = {name: latency_from_json(answer[name]) for name, _, _ in HOPS}
        return out

    async def kafka_floor(
        self, rate_per_s: float, seconds: float, *, idle: bool = True
    ) -> Histogram:
        """Bare aiokafka produce-to-consume latency at ``rate_per_s`` on the same broker
        (bench.harness.kafka_floor), with the venue paused so the pipeline is idle; with
        ``idle=False`` the pipeline goes on meanwhile (the caller keeps the venue's rate)."""
        answer = await self._floor(
            "bench.harness.kafka_floor", "kafka-floor", rate_per_s, seconds, idle=idle
        )
        return latency_from_json(answer["histogram"])

    async def relay_floor(self, rate_per_s: float, seconds: float) -> tuple[Histogram, float]:
        """Bare aiokafka, then a bare grpc.aio relay to as many streams as the pipeline's,
        producer to client (bench.harness.relay_floor), with the pipeline idle; with the
        cores the relay process used."""
        answer = await self._floor(
            "bench.harness.relay_floor",
            "relay-floor",
            rate_per_s,
            seconds,
            idle=True,
            extra=("--streams", str(max(1, self.options.grpc_streams))),
        )
        return latency_from_json(answer["histogram"]), float(answer["relay_cores"])

    async def _floor(
        self,
        module: str,
        name: str,
        rate_per_s: float,
        seconds: float,
        *,
        idle: bool,
        extra: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Run a floor's measurement process; its answer."""
        assert self.venue is not None
        if idle:
            self.venue.pause_stream()
        try:
            with (self.logs / f"{name}.log").open("wb") as log:
                child = Child(
                    module,
                    "--bootstrap",
                    KAFKA,
                    "--topic",
                    self.floor_topic,
                    "--rate",
                    str(max(1, round(rate_per_s))),
                    "--seconds",
                    str(seconds),
                    *extra,
                    name=f"the {name.replace('-', ' ')} measurement",
                    stderr=log,
                )
            try:
                answer = await child.aread(timeout_s=seconds + 120)
            except ChildError as exc:
                raise PipelineError(f"{exc} (failed; see {self.logs / f'{name}.log'})") from None
            finally:
                await child.aclose()
        finally:
            if idle:
                self.venue.resume_stream()
        return answer

    # -- stop -----------------------------------------------------------------------

    async def aclose(self) -> None:
        for child in self._children:
            with contextlib.suppress(Exception):
                await child.aclose()
        self._children.clear()
        for process in reversed(list(self._services.values())):
            await _terminate(process)
        self._services.clear()
        await self._stack.aclose()
        if self._topics_created:
            await self._delete_topics()
        if self._started_servers:
            self._say(f"stack: stopping {', '.join(self._started_servers)} (started by the bench)")
            await self._stack_cli("down", *self._started_servers, show=True)
            self._started_servers = []
