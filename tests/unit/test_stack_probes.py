"""The stack's protocol probes against hand-made replies, and the port-in-use check."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from mdfeed.stack import probes


def _kafka_str(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(text)) + text.encode()


def _metadata_response(correlation_id: int, brokers: list[tuple[int, str, int]]) -> bytes:
    body = struct.pack(">ii", correlation_id, len(brokers))
    for node_id, host, port in brokers:
        body += struct.pack(">i", node_id) + _kafka_str(host) + struct.pack(">i", port)
        body += _kafka_str(None)  # rack
    return body + struct.pack(">ii", 1, 0)  # controller id, no topics


def test_kafka_metadata_request_is_a_framed_v1_metadata_request() -> None:
    request = probes.kafka_metadata_request(correlation_id=42)
    (size,) = struct.unpack_from(">i", request, 0)
    assert size == len(request) - 4
    api_key, version, correlation = struct.unpack_from(">hhi", request, 4)
    assert (api_key, version, correlation) == (3, 1, 42)
    assert request.endswith(struct.pack(">i", 0))  # no topics


def test_kafka_metadata_response_is_decoded() -> None:
    payload = _metadata_response(42, [(1, "127.0.0.1", 9092)])
    assert probes.parse_kafka_metadata(payload, 42) == ([(1, "127.0.0.1", 9092)], 1)
    with pytest.raises(probes.ProbeError, match="correlation id 42, expected 7"):
        probes.parse_kafka_metadata(payload, 7)


def _rows_body(value: str | None) -> bytes:
    def short_str(text: str) -> bytes:
        return struct.pack(">H", len(text)) + text.encode()

    body = struct.pack(">iii", 2, 0x0001, 1)  # Rows, global table spec, one column
    body += short_str("system") + short_str("local")
    body += short_str("release_version") + struct.pack(">H", 0x000D)
    if value is None:
        return body + struct.pack(">i", 0)
    return body + struct.pack(">ii", 1, len(value)) + value.encode()


def test_cql_rows_result_is_decoded() -> None:
    assert probes.parse_cql_first_cell(_rows_body("5.0.5")) == "5.0.5"
    assert probes.parse_cql_first_cell(_rows_body(None)) is None
    with pytest.raises(probes.ProbeError, match="not Rows"):
        probes.parse_cql_first_cell(struct.pack(">i", 1))


def test_cql_frames() -> None:
    startup = probes.cql_startup_frame()
    assert startup[:5] == bytes([0x04, 0, 0, 0, 0x01])
    assert b"CQL_VERSION" in startup
    query = probes.cql_query_frame("SELECT 1")
    assert query[4] == 0x07
    assert struct.unpack_from(">i", query, 5)[0] == len(query) - 9


def test_mqtt_connect_packet() -> None:
    packet = probes.mqtt_connect_packet("probe")
    assert packet[0] == 0x10
    assert packet[1] == len(packet) - 2
    assert packet[2:8] == b"\x00\x04MQTT"
    assert packet[8] == 4  # MQTT 3.1.1
    assert packet.endswith(b"\x00\x05probe")


@pytest.fixture
def fake_broker() -> Iterator[tuple[int, list[bytes]]]:
    """A one-shot TCP server answering with whatever reply the test appends."""
    replies: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(replies[0])
            conn.recv(1024)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, replies
    thread.join(timeout=5)
    server.close()


def test_mqtt_probe_accepts_connack_zero(fake_broker: tuple[int, list[bytes]]) -> None:
    port, replies = fake_broker
    replies.append(b"\x20\x02\x00\x00")
    assert probes.probe_mosquitto("127.0.0.1", port) == "CONNACK accepted"


def test_mqtt_probe_reports_a_refused_connect(fake_broker: tuple[int, list[bytes]]) -> None:
    port, replies = fake_broker
    replies.append(b"\x20\x02\x00\x05")
    with pytest.raises(probes.ProbeError, match="return code 5"):
        probes.probe_mosquitto("127.0.0.1", port)


def test_kafka_probe_wants_this_broker_listed(fake_broker: tuple[int, list[bytes]]) -> None:
    port, replies = fake_broker
    payload = _metadata_response(7, [])
    replies.append(struct.pack(">i", len(payload)) + payload)
    with pytest.raises(probes.ProbeError, match="no broker on port"):
        probes.probe_kafka("127.0.0.1", port)


def test_probes_fail_on_a_closed_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
    for probe in (probes.probe_kafka, probes.probe_cassandra, probes.probe_mosquitto):
        with pytest.raises(probes.ProbeError, match="cannot connect"):
            probe("127.0.0.1", port, 1.0)


def test_port_in_use_is_detected() -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))  # bound, not even listening
    port = holder.getsockname()[1]
    try:
        assert not probes.port_is_bindable("127.0.0.1", port)
    finally:
        holder.close()
    assert probes.port_is_bindable("127.0.0.1", port)
