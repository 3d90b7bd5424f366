"""The three servers of the local stack: ports, directory layout, generated config, commands.

Everything here is a pure description of a server (what to write, what to run, how to
probe it); :mod:`mdfeed.stack.manager` does the installing, starting and stopping.
"""

from __future__ import annotations

import base64
import getpass
import json
import shutil
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mdfeed.stack import probes

__all__ = [
    "CASSANDRA_PORT",
    "CASSANDRA_READY_TIMEOUT",
    "CASSANDRA_STORAGE_PORT",
    "HOST",
    "KAFKA_CONTROLLER_PORT",
    "KAFKA_PORT",
    "KAFKA_READY_TIMEOUT",
    "MOSQUITTO_BIN",
    "MOSQUITTO_PORT",
    "MOSQUITTO_READY_TIMEOUT",
    "SERVER_NAMES",
    "Cassandra",
    "Kafka",
    "Mosquitto",
    "Server",
    "make_server",
]

HOST = "127.0.0.1"
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
CASSANDRA_PORT = 9042
CASSANDRA_STORAGE_PORT = 7000
MOSQUITTO_PORT = 1883

KAFKA_READY_TIMEOUT = 90.0
CASSANDRA_READY_TIMEOUT = 180.0
MOSQUITTO_READY_TIMEOUT = 20.0

MOSQUITTO_BIN = Path("/usr/sbin/mosquitto")

#: Start order matters only for output; all three start concurrently.
SERVER_NAMES: tuple[str, ...] = ("kafka", "cassandra", "mosquitto")

_POM_DIR = Path(__file__).resolve().parent

# Cassandra 5.0 on Java 17: the module exports/opens of its conf/jvm17-server.options.
_CASSANDRA_JAVA17_MODULE_OPTIONS: tuple[str, ...] = (
    *(
        f"--add-exports={spec}=ALL-UNNAMED"
        for spec in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
            "jdk.compiler/com.sun.tools.javac.file",
            "jdk.attach/sun.tools.attach",
        )
    ),
    *(
        f"--add-opens={spec}=ALL-UNNAMED"
        for spec in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "jdk.compiler/com.sun.tools.javac",
            "java.base/java.lang",
            "java.base/java.util",
        )
    ),
)


def new_kafka_cluster_id() -> str:
    """A random cluster id the way Kafka writes them: 22 chars of unpadded base64url.

    Ids starting with '-' are skipped so they can never be mistaken for an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class Server(ABC):
    """One server of the stack, rooted at ``<root>/<name>/{lib,data,logs,conf}``."""

    name: ClassVar[str]
    ready_timeout: ClassVar[float]
    #: Name of the server's own log file under ``logs/``.
    main_log_name: ClassVar[str]

    root: Path
    host: str = HOST

    # --- layout ------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        return self.root / self.name

    @property
    def lib_dir(self) -> Path:
        return self.base / "lib"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def logs_dir(self) -> Path:
        return self.base / "logs"

    @property
    def conf_dir(self) -> Path:
        return self.base / "conf"

    @property
    def pid_file(self) -> Path:
        return self.base / "server.pid"

    @property
    def main_log(self) -> Path:
        return self.logs_dir / self.main_log_name

    @property
    def console_log(self) -> Path:
        """stdout and stderr of the process (JVM warnings, crashes before logging starts)."""
        return self.logs_dir / "console.log"

    @property
    def pom(self) -> Path | None:
        """The Maven pom whose dependencies form the server's class path (JVM servers)."""
        return None

    # --- behaviour ---------------------------------------------------------------------
    @property
    @abstractmethod
    def port(self) -> int:
        """The client port the readiness probe talks to."""

    @property
    @abstractmethod
    def ports(self) -> tuple[int, ...]:
        """Every port the server binds on ``host``."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """A string in the process command line that marks it as this stack's server."""

    @abstractmethod
    def write_config(self) -> None:
        """(Re)write the files under ``conf/``; called before every start."""

    @abstractmethod
    def command(self, java: str) -> list[str]:
        """The server's argv (``java`` is the java executable for JVM servers)."""

    @abstractmethod
    def probe(self, timeout: float = 2.0) -> str:
        """Talk the server's protocol; raise :class:`probes.ProbeError` unless it is ready."""

    def make_dirs(self) -> None:
        for path in (self.lib_dir, self.data_dir, self.logs_dir, self.conf_dir):
            path.mkdir(parents=True, exist_ok=True)


def _classpath(lib_dir: Path) -> str:
    return f"{lib_dir}/*"


# --- Kafka ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Kafka(Server):
    """Kafka 3.9.1 in KRaft mode, one node acting as broker and controller."""

    name: ClassVar[str] = "kafka"
    ready_timeout: ClassVar[float] = KAFKA_READY_TIMEOUT
    main_log_name: ClassVar[str] = "server.log"

    broker_port: int = KAFKA_PORT
    controller_port: int = KAFKA_CONTROLLER_PORT
    heap: tuple[str, str] = ("256m", "1g")  # (-Xms, -Xmx)
    #: Jars installed elsewhere (another stack's lib/) to run from instead of our own lib/:
    #: a scratch broker in a temp dir then needs no Maven run of its own.
    jars_dir: Path | None = None

    @property
    def lib_dir(self) -> Path:
        return self.jars_dir if self.jars_dir is not None else self.base / "lib"

    @property
    def port(self) -> int:
        return self.broker_port

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.broker_port, self.controller_port)

    @property
    def pom(self) -> Path:
        return _POM_DIR / "kafka" / "pom.xml"

    @property
    def properties_file(self) -> Path:
        return self.conf_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.conf_dir / "log4j.properties"

    @property
    def identity(self) -> str:
        return str(self.properties_file)

    @property
    def formatted(self) -> bool:
        """KRaft storage is formatted once; meta.properties is what format writes."""
        return (self.data_dir / "meta.properties").is_file()

    def properties(self) -> str:
        h = self.host
        lines = [
            "# Generated by `mdfeed stack up`; rewritten on every start.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{h}:{self.controller_port}",
            f"listeners=PLAINTEXT://{h}:{self.broker_port},CONTROLLER://{h}:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://{h}:{self.broker_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "num.partitions=3",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "num.network.threads=2",
            "num.io.threads=4",
            "log.retention.hours=24",
            "log.segment.bytes=104857600",
        ]
        return "\n".join(lines) + "\n"

    def log4j_properties(self) -> str:
        # ${kafka.logs.dir} is resolved by log4j from the -Dkafka.logs.dir system property.
        return (
            "# Generated by `mdfeed stack up`.\n"
            "log4j.rootLogger=INFO, file\n"
            "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
            "log4j.appender.file.File=${kafka.logs.dir}/server.log\n"
            "log4j.appender.file.MaxFileSize=20MB\n"
            "log4j.appender.file.MaxBackupIndex=3\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.request.logger=WARN\n"
            "log4j.logger.org.apache.kafka.request.logger=WARN\n"
        )

    def write_config(self) -> None:
        self.properties_file.write_text(self.properties(), encoding="utf-8")
        self.log4j_file.write_text(self.log4j_properties(), encoding="utf-8")

    def jvm_options(self) -> list[str]:
        xms, xmx = self.heap
        return [
            f"-Xms{xms}",
            f"-Xmx{xmx}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.log4j_file}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            _classpath(self.lib_dir),
        ]

    def format_command(self, java: str, cluster_id: str) -> list[str]:
        return [
            java,
            *self.jvm_options(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.properties_file),
        ]

    def command(self, java: str) -> list[str]:
        return [java, *self.jvm_options(), "kafka.Kafka", str(self.properties_file)]

    def probe(self, timeout: float = 2.0) -> str:
        return probes.probe_kafka(self.host, self.broker_port, timeout)


# --- Cassandra -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cassandra(Server):
    """Cassandra 5.0.5, one node, JMX off, everything bound to ``host``."""

    name: ClassVar[str] = "cassandra"
    ready_timeout: ClassVar[float] = CASSANDRA_READY_TIMEOUT
    main_log_name: ClassVar[str] = "system.log"

    native_port: int = CASSANDRA_PORT
    storage_port: int = CASSANDRA_STORAGE_PORT
    heap: str = "1g"
    cluster_name: str = "mdfeed-local"

    @property
    def port(self) -> int:
        return self.native_port

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.native_port, self.storage_port)

    @property
    def pom(self) -> Path:
        return _POM_DIR / "cassandra" / "pom.xml"

    @property
    def yaml_file(self) -> Path:
        return self.conf_dir / "cassandra.yaml"

    @property
    def logback_file(self) -> Path:
        return self.conf_dir / "logback.xml"

    @property
    def triggers_dir(self) -> Path:
        return self.conf_dir / "triggers"

    @property
    def identity(self) -> str:
        return str(self.yaml_file)

    def settings(self) -> dict[str, object]:
        """The cassandra.yaml settings; everything else keeps Cassandra 5.0's default."""
        d = self.data_dir
        h = self.host
        return {
            "cluster_name": self.cluster_name,
            "num_tokens": 1,
            "initial_token": 0,
            "auto_bootstrap": False,
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "endpoint_snitch": "SimpleSnitch",
            "seed_provider": [
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    "parameters": [{"seeds": f"{h}:{self.storage_port}"}],
                }
            ],
            "listen_address": h,
            "rpc_address": h,
            "storage_port": self.storage_port,
            "native_transport_port": self.native_port,
            "start_native_transport": True,
            "commitlog_sync": "periodic",
            "commitlog_sync_period": "10000ms",
            "commitlog_segment_size": "8MiB",
            "commitlog_total_space": "256MiB",
            "data_file_directories": [str(d / "data")],
            "commitlog_directory": str(d / "commitlog"),
            "saved_caches_directory": str(d / "saved_caches"),
            "hints_directory": str(d / "hints"),
            "cdc_raw_directory": str(d / "cdc_raw"),
            # A development node: no snapshots of dropped or truncated tables.
            "auto_snapshot": False,
            "concurrent_compactors": 1,
            "memtable_heap_space": "128MiB",
            "memtable_offheap_space": "128MiB",
            "key_cache_size": "16MiB",
        }

    def cassandra_yaml(self) -> str:
        """:meth:`settings` as YAML: one ``key: value`` line each, values in JSON (flow) style."""
        lines = ["# Generated by `mdfeed stack up`; rewritten on every start."]
        lines += [f"{key}: {json.dumps(value)}" for key, value in self.settings().items()]
        return "\n".join(lines) + "\n"

    def logback_xml(self) -> str:
        return """<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by `mdfeed stack up`. -->
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.SizeAndTimeBasedRollingPolicy">
      <fileNamePattern>${cassandra.logdir}/system.log.%d{yyyy-MM-dd}.%i.zip</fileNamePattern>
      <maxFileSize>20MB</maxFileSize>
      <maxHistory>3</maxHistory>
      <totalSizeCap>100MB</totalSizeCap>
    </rollingPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
  </root>
</configuration>
"""

    def write_config(self) -> None:
        self.triggers_dir.mkdir(parents=True, exist_ok=True)
        self.yaml_file.write_text(self.cassandra_yaml(), encoding="utf-8")
        self.logback_file.write_text(self.logback_xml(), encoding="utf-8")

    def jamm_agent(self) -> Path | None:
        """Cassandra measures object sizes with the jamm agent (lib/jamm-*.jar)."""
        jars = sorted(self.lib_dir.glob("jamm-*.jar"))
        return jars[-1] if jars else None

    def jvm_options(self) -> list[str]:
        options = [
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-Xss256k",
            "-XX:+UseG1GC",
            "-XX:+ParallelRefProcEnabled",
            "-XX:MaxTenuringThreshold=1",
            "-XX:G1HeapRegionSize=16m",
            "-XX:G1RSetUpdatingPauseTimePercent=5",
            "-XX:MaxGCPauseMillis=300",
            "-XX:InitiatingHeapOccupancyPercent=70",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.net.preferIPv4Stack=true",
            "-Djdk.attach.allowAttachSelf=true",
            *_CASSANDRA_JAVA17_MODULE_OPTIONS,
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Dio.netty.allocator.useCacheForAllThreads=true",
            "-Dio.netty.allocator.maxOrder=11",
            f"-Dcassandra.config=file://{self.yaml_file}",
            f"-Dlogback.configurationFile=file://{self.logback_file}",
            f"-Dcassandra.logdir={self.logs_dir}",
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dcassandra.triggers_dir={self.triggers_dir}",
            # Without it the daemon closes stdout/stderr and console.log stays empty.
            "-Dcassandra-foreground=yes",
            # A single node has nobody to gossip with: do not wait for gossip to settle.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        ]
        agent = self.jamm_agent()
        if agent is not None:
            options.append(f"-javaagent:{agent}")
        options += ["-cp", _classpath(self.lib_dir)]
        return options

    def command(self, java: str) -> list[str]:
        return [java, *self.jvm_options(), "org.apache.cassandra.service.CassandraDaemon"]

    def probe(self, timeout: float = 3.0) -> str:
        return probes.probe_cassandra(self.host, self.native_port, timeout)


# --- Mosquitto -----------------------------------------------------------------------


@dataclass(frozen=True)
class Mosquitto(Server):
    """The Mosquitto MQTT broker from the distribution's package, one local listener."""

    name: ClassVar[str] = "mosquitto"
    ready_timeout: ClassVar[float] = MOSQUITTO_READY_TIMEOUT
    main_log_name: ClassVar[str] = "mosquitto.log"

    mqtt_port: int = MOSQUITTO_PORT
    binary: Path = MOSQUITTO_BIN

    @property
    def port(self) -> int:
        return self.mqtt_port

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.mqtt_port,)

    @property
    def conf_file(self) -> Path:
        return self.conf_dir / "mosquitto.conf"

    @property
    def identity(self) -> str:
        return str(self.conf_file)

    def mosquitto_conf(self, user: str | None = None) -> str:
        # Started as root, Mosquitto would switch to the `mosquitto` user and then fail to
        # write its files here; `user <whoever runs the stack>` keeps ownership unchanged.
        run_as = user if user is not None else getpass.getuser()
        return "\n".join(
            [
                "# Generated by `mdfeed stack up`; rewritten on every start.",
                f"listener {self.mqtt_port} {self.host}",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {self.data_dir}/",
                "autosave_interval 60",
                f"log_dest file {self.main_log}",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                f"user {run_as}",
                "",
            ]
        )

    def write_config(self) -> None:
        self.conf_file.write_text(self.mosquitto_conf(), encoding="utf-8")

    def command(self, java: str) -> list[str]:
        del java  # not a JVM server
        return [str(self.binary), "-c", str(self.conf_file)]

    def probe(self, timeout: float = 2.0) -> str:
        return probes.probe_mosquitto(self.host, self.mqtt_port, timeout)


_CLASSES: dict[str, type[Server]] = {
    "kafka": Kafka,
    "cassandra": Cassandra,
    "mosquitto": Mosquitto,
}


def make_server(name: str, root: Path) -> Server:
    """The server called ``name`` (one of :data:`SERVER_NAMES`) under stack dir ``root``."""
    try:
        cls = _CLASSES[name]
    except KeyError:
        raise ValueError(
            f"unknown server {name!r}; choose from {', '.join(SERVER_NAMES)}"
        ) from None
    return cls(root=root)


def java_executable() -> str | None:
    """The java on PATH, if any."""
    return shutil.which("java")
