"""Generated config, command lines and layout of the local stack servers (no servers run)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from mdfeed import stack
from mdfeed.stack.servers import (
    SERVER_NAMES,
    Cassandra,
    Kafka,
    Mosquitto,
    make_server,
    new_kafka_cluster_id,
)


def _properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and line[0] != "#"]
    return dict(line.split("=", 1) for line in lines)


def _yaml_lines(text: str) -> dict[str, object]:
    """Our cassandra.yaml writes one `key: <JSON>` line per setting (JSON is YAML)."""
    lines = [line for line in text.splitlines() if line and line[0] != "#"]
    pairs = (line.split(": ", 1) for line in lines)
    return {key: json.loads(value) for key, value in pairs}


def test_ports_are_the_documented_ones() -> None:
    assert stack.HOST == "127.0.0.1"
    assert (stack.KAFKA_PORT, stack.KAFKA_CONTROLLER_PORT) == (9092, 9093)
    assert (stack.CASSANDRA_PORT, stack.CASSANDRA_STORAGE_PORT) == (9042, 7000)
    assert stack.MOSQUITTO_PORT == 1883
    assert stack.SERVER_NAMES == ("kafka", "cassandra", "mosquitto")


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_layout_is_one_folder_per_server(tmp_path: Path, name: str) -> None:
    server = make_server(name, tmp_path)
    assert server.name == name
    assert server.pid_file == tmp_path / name / "server.pid"
    assert [server.lib_dir, server.data_dir, server.logs_dir, server.conf_dir] == [
        tmp_path / name / sub for sub in ("lib", "data", "logs", "conf")
    ]
    assert server.port in server.ports
    assert server.host == "127.0.0.1"


def test_unknown_server_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown server 'zookeeper'"):
        make_server("zookeeper", tmp_path)


@pytest.mark.parametrize("server", [Kafka(Path()), Cassandra(Path())])
def test_jvm_servers_ship_their_pom(server: Kafka | Cassandra) -> None:
    assert server.pom.is_file()
    assert "<artifactId>" in server.pom.read_text(encoding="utf-8")


def test_kafka_properties_make_a_single_kraft_node(tmp_path: Path) -> None:
    props = _properties(Kafka(tmp_path).properties())
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert "CONTROLLER:PLAINTEXT" in props["listener.security.protocol.map"]
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["num.partitions"] == "3"
    assert props["auto.create.topics.enable"] == "true"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_kafka_ports_follow_the_server_fields(tmp_path: Path) -> None:
    props = _properties(Kafka(tmp_path, broker_port=19092, controller_port=19093).properties())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"


def test_kafka_command_lines(tmp_path: Path) -> None:
    kafka = Kafka(tmp_path)
    command = kafka.command("/usr/bin/java")
    assert command[0] == "/usr/bin/java"
    assert command[-2:] == ["kafka.Kafka", str(kafka.properties_file)]
    assert "-Xmx1g" in command
    assert f"-Dlog4j.configuration=file:{kafka.log4j_file}" in command
    assert f"-Dkafka.logs.dir={kafka.logs_dir}" in command
    assert command[command.index("-cp") + 1] == f"{kafka.lib_dir}/*"
    fmt = kafka.format_command("java", "abcdefghijklmnopqrstuv")
    assert fmt[-6:] == [
        "kafka.tools.StorageTool",
        "format",
        "-t",
        "abcdefghijklmnopqrstuv",
        "-c",
        str(kafka.properties_file),
    ]
    assert kafka.identity in " ".join(command)


def test_kafka_writes_its_config_and_log4j(tmp_path: Path) -> None:
    kafka = Kafka(tmp_path)
    kafka.make_dirs()
    kafka.write_config()
    assert _properties(kafka.properties_file.read_text())["node.id"] == "1"
    log4j = _properties(kafka.log4j_file.read_text())
    assert log4j["log4j.appender.file.File"] == "${kafka.logs.dir}/server.log"
    assert not kafka.formatted
    (kafka.data_dir / "meta.properties").write_text("node.id=1\n")
    assert kafka.formatted


def test_kafka_cluster_ids_look_like_kafkas() -> None:
    ids = {new_kafka_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_cassandra_yaml_is_a_local_single_node(tmp_path: Path) -> None:
    cassandra = Cassandra(tmp_path)
    config = _yaml_lines(cassandra.cassandra_yaml())
    assert config == cassandra.settings()
    data = tmp_path / "cassandra" / "data"
    assert config["listen_address"] == config["rpc_address"] == "127.0.0.1"
    assert config["native_transport_port"] == 9042
    assert config["storage_port"] == 7000
    assert config["start_native_transport"] is True
    assert config["num_tokens"] == 1
    assert config["initial_token"] == 0
    assert config["commitlog_sync"] == "periodic"
    assert config["commitlog_sync_period"] == "10000ms"
    assert config["partitioner"] == "org.apache.cassandra.dht.Murmur3Partitioner"
    assert config["endpoint_snitch"] == "SimpleSnitch"
    assert config["seed_provider"] == [
        {
            "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
            "parameters": [{"seeds": "127.0.0.1:7000"}],
        }
    ]
    assert config["data_file_directories"] == [str(data / "data")]
    for key, sub in [
        ("commitlog_directory", "commitlog"),
        ("saved_caches_directory", "saved_caches"),
        ("hints_directory", "hints"),
        ("cdc_raw_directory", "cdc_raw"),
    ]:
        assert config[key] == str(data / sub)


def test_cassandra_yaml_quotes_odd_paths(tmp_path: Path) -> None:
    odd = tmp_path / 'with space: and "quote"'
    config = _yaml_lines(Cassandra(odd).cassandra_yaml())
    assert config["commitlog_directory"] == str(odd / "cassandra" / "data" / "commitlog")


def test_cassandra_jvm_options(tmp_path: Path) -> None:
    cassandra = Cassandra(tmp_path)
    command = cassandra.command("java")
    assert command[-1] == "org.apache.cassandra.service.CassandraDaemon"
    assert {"-Xms1g", "-Xmx1g", "-Dcassandra-foreground=yes"} <= set(command)
    assert f"-Dcassandra.config=file://{cassandra.yaml_file}" in command
    assert f"-Dlogback.configurationFile=file://{cassandra.logback_file}" in command
    assert f"-Dcassandra.logdir={cassandra.logs_dir}" in command
    assert f"-Dcassandra.storagedir={cassandra.data_dir}" in command
    assert "-Dcassandra.skip_wait_for_gossip_to_settle=0" in command
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in command
    assert "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED" in command
    assert not any(option.startswith("-javaagent") for option in command)
    # JMX stays off: nothing listens beyond the CQL and storage ports.
    assert not any("jmx.local.port" in option or "jmxremote" in option for option in command)

    cassandra.make_dirs()
    (cassandra.lib_dir / "jamm-0.4.0.jar").touch()
    assert f"-javaagent:{cassandra.lib_dir / 'jamm-0.4.0.jar'}" in cassandra.command("java")


def test_cassandra_logback_writes_system_log(tmp_path: Path) -> None:
    cassandra = Cassandra(tmp_path)
    cassandra.make_dirs()
    cassandra.write_config()
    logback = cassandra.logback_file.read_text()
    assert "${cassandra.logdir}/system.log" in logback
    assert cassandra.main_log == cassandra.logs_dir / "system.log"
    assert _yaml_lines(cassandra.yaml_file.read_text())["cluster_name"] == "mdfeed-local"


def test_mosquitto_conf(tmp_path: Path) -> None:
    mosquitto = Mosquitto(tmp_path)
    lines = mosquitto.mosquitto_conf(user="alice").splitlines()
    assert "listener 1883 127.0.0.1" in lines
    assert "allow_anonymous true" in lines
    assert "persistence true" in lines
    assert f"persistence_location {tmp_path / 'mosquitto' / 'data'}/" in lines
    assert f"log_dest file {tmp_path / 'mosquitto' / 'logs' / 'mosquitto.log'}" in lines
    assert "user alice" in lines
    assert mosquitto.command("java") == ["/usr/sbin/mosquitto", "-c", str(mosquitto.conf_file)]
    assert "listener 18830 127.0.0.1" in Mosquitto(tmp_path, mqtt_port=18830).mosquitto_conf()
