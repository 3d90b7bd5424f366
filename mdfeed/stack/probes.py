"""Readiness probes that speak each server's own wire protocol over a plain socket.

An open TCP port only says the listener is bound; these probes check that the server
actually answers a request of its protocol:

* Kafka: a Metadata (v1) request must list this broker.
* Cassandra: STARTUP then ``SELECT release_version FROM system.local`` over CQL v4.
* Mosquitto: an MQTT 3.1.1 CONNECT must get a CONNACK with return code 0.

They use only the standard library so that ``mdfeed stack`` works before (and without)
any client driver being importable.  Each returns a short description of what answered
(for example Cassandra's release version) and raises :class:`ProbeError` otherwise.
"""

from __future__ import annotations

import socket
import struct

__all__ = [
    "ProbeError",
    "port_is_bindable",
    "probe_cassandra",
    "probe_kafka",
    "probe_mosquitto",
]


class ProbeError(Exception):
    """The server did not answer as a ready server would."""


def port_is_bindable(host: str, port: int) -> bool:
    """True when nothing holds ``host:port``: a listener bound there would fail to start.

    SO_REUSEADDR makes sockets lingering in TIME_WAIT (from a server that just stopped)
    not count as a conflict, exactly as for the JVM servers and Mosquitto themselves.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            raise ProbeError("connection closed by the server")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ProbeError(f"cannot connect to {host}:{port}: {exc}") from exc


# --- Kafka -----------------------------------------------------------------------------

_KAFKA_METADATA = 3
_KAFKA_CLIENT_ID = b"mdfeed-stack"


def _kafka_string(buf: bytes, pos: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", buf, pos)
    pos += 2
    if length < 0:
        return None, pos
    return buf[pos : pos + length].decode("utf-8"), pos + length


def kafka_metadata_request(correlation_id: int) -> bytes:
    """A Metadata v1 request for no topics (brokers and controller only)."""
    header = struct.pack(">hhih", _KAFKA_METADATA, 1, correlation_id, len(_KAFKA_CLIENT_ID))
    body = struct.pack(">i", 0)  # v1: an empty topic array means "no topics"
    payload = header + _KAFKA_CLIENT_ID + body
    return struct.pack(">i", len(payload)) + payload


KafkaBroker = tuple[int, str, int]
"""(node id, host, port) of a broker in a Metadata response."""


def parse_kafka_metadata(payload: bytes, correlation_id: int) -> tuple[list[KafkaBroker], int]:
    """Decode a Metadata v1 response: ([(node_id, host, port)], controller_id)."""
    (got_id, broker_count) = struct.unpack_from(">ii", payload, 0)
    if got_id != correlation_id:
        raise ProbeError(f"kafka answered correlation id {got_id}, expected {correlation_id}")
    pos = 8
    brokers: list[KafkaBroker] = []
    for _ in range(broker_count):
        (node_id,) = struct.unpack_from(">i", payload, pos)
        host, pos = _kafka_string(payload, pos + 4)
        (port,) = struct.unpack_from(">i", payload, pos)
        _rack, pos = _kafka_string(payload, pos + 4)
        brokers.append((node_id, host or "", port))
    (controller_id,) = struct.unpack_from(">i", payload, pos)
    return brokers, controller_id


def probe_kafka(host: str, port: int, timeout: float = 2.0) -> str:
    """Ask the broker for cluster metadata; ready once it lists itself and a controller."""
    with _connect(host, port, timeout) as sock:
        try:
            sock.sendall(kafka_metadata_request(correlation_id=7))
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            payload = _recv_exact(sock, size)
        except OSError as exc:
            raise ProbeError(f"kafka metadata request failed: {exc}") from exc
    brokers, controller_id = parse_kafka_metadata(payload, correlation_id=7)
    if not any(b_port == port for _node, _host, b_port in brokers):
        raise ProbeError(f"kafka metadata lists no broker on port {port} yet: {brokers}")
    if controller_id < 0:
        raise ProbeError("kafka metadata reports no active controller yet")
    return f"{len(brokers)} broker(s), controller {controller_id}"


# --- Cassandra (CQL native protocol v4) ---------------------------------------------

_CQL_VERSION = 0x04
_CQL_RESPONSE = 0x80
_OP_ERROR = 0x00
_OP_STARTUP = 0x01
_OP_READY = 0x02
_OP_QUERY = 0x07
_OP_RESULT = 0x08
_RESULT_ROWS = 0x0002
_CONSISTENCY_ONE = 0x0001
_ROWS_GLOBAL_TABLES_SPEC = 0x0001
_ROWS_HAS_MORE_PAGES = 0x0002
_ROWS_NO_METADATA = 0x0004


def _cql_frame(stream: int, opcode: int, body: bytes) -> bytes:
    return struct.pack(">BBhBi", _CQL_VERSION, 0, stream, opcode, len(body)) + body


def _cql_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def cql_startup_frame(stream: int = 0) -> bytes:
    body = struct.pack(">H", 1) + _cql_string("CQL_VERSION") + _cql_string("3.0.0")
    return _cql_frame(stream, _OP_STARTUP, body)


def cql_query_frame(query: str, stream: int = 1) -> bytes:
    raw = query.encode("utf-8")
    body = struct.pack(">i", len(raw)) + raw + struct.pack(">HB", _CONSISTENCY_ONE, 0)
    return _cql_frame(stream, _OP_QUERY, body)


def _read_cql_frame(sock: socket.socket) -> tuple[int, bytes]:
    version, _flags, _stream, opcode, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    if version != (_CQL_VERSION | _CQL_RESPONSE):
        raise ProbeError(f"unexpected CQL protocol version byte 0x{version:02x}")
    return opcode, _recv_exact(sock, length)


def _cql_error(body: bytes) -> str:
    (code,) = struct.unpack_from(">i", body, 0)
    (length,) = struct.unpack_from(">H", body, 4)
    return f"CQL error 0x{code:04x}: {body[6 : 6 + length].decode('utf-8', 'replace')}"


def parse_cql_first_cell(body: bytes) -> str | None:
    """First column of the first row of a Rows RESULT body, as text (None if no row)."""
    (kind,) = struct.unpack_from(">i", body, 0)
    if kind != _RESULT_ROWS:
        raise ProbeError(f"CQL result kind {kind} is not Rows")
    flags, columns = struct.unpack_from(">ii", body, 4)
    pos = 12
    if flags & _ROWS_HAS_MORE_PAGES:
        (state_len,) = struct.unpack_from(">i", body, pos)
        pos += 4 + max(state_len, 0)
    if not flags & _ROWS_NO_METADATA:
        if flags & _ROWS_GLOBAL_TABLES_SPEC:
            for _ in range(2):  # keyspace, table
                (length,) = struct.unpack_from(">H", body, pos)
                pos += 2 + length
        for _ in range(columns):
            if not flags & _ROWS_GLOBAL_TABLES_SPEC:
                for _ in range(2):
                    (length,) = struct.unpack_from(">H", body, pos)
                    pos += 2 + length
            (length,) = struct.unpack_from(">H", body, pos)  # column name
            pos += 2 + length
            (type_id,) = struct.unpack_from(">H", body, pos)
            pos += 2
            if type_id not in (0x0001, 0x000A, 0x000D):  # ascii, text, varchar
                raise ProbeError(f"unexpected CQL column type 0x{type_id:04x}")
    (row_count,) = struct.unpack_from(">i", body, pos)
    pos += 4
    if row_count == 0 or columns == 0:
        return None
    (cell_len,) = struct.unpack_from(">i", body, pos)
    if cell_len < 0:
        return None
    return body[pos + 4 : pos + 4 + cell_len].decode("utf-8")


def probe_cassandra(host: str, port: int, timeout: float = 3.0) -> str:
    """Run ``SELECT release_version FROM system.local``; returns the release version."""
    with _connect(host, port, timeout) as sock:
        try:
            sock.sendall(cql_startup_frame())
            opcode, body = _read_cql_frame(sock)
            if opcode == _OP_ERROR:
                raise ProbeError(_cql_error(body))
            if opcode != _OP_READY:
                raise ProbeError(f"CQL STARTUP answered opcode 0x{opcode:02x}, not READY")
            sock.sendall(cql_query_frame("SELECT release_version FROM system.local"))
            opcode, body = _read_cql_frame(sock)
        except (OSError, struct.error) as exc:
            raise ProbeError(f"CQL exchange failed: {exc}") from exc
    if opcode == _OP_ERROR:
        raise ProbeError(_cql_error(body))
    if opcode != _OP_RESULT:
        raise ProbeError(f"CQL QUERY answered opcode 0x{opcode:02x}, not RESULT")
    try:
        version = parse_cql_first_cell(body)
    except struct.error as exc:
        raise ProbeError(f"malformed CQL result: {exc}") from exc
    if version is None:
        raise ProbeError("system.local has no row yet")
    return f"release_version {version}"


# --- Mosquitto (MQTT 3.1.1) ----------------------------------------------------------

_MQTT_CONNECT = 0x10
_MQTT_CONNACK = 0x20
_MQTT_DISCONNECT = b"\xe0\x00"


def mqtt_connect_packet(client_id: str, keepalive: int = 10) -> bytes:
    raw_id = client_id.encode("utf-8")
    variable = b"\x00\x04MQTT" + struct.pack(">BBH", 4, 0x02, keepalive)  # clean session
    payload = struct.pack(">H", len(raw_id)) + raw_id
    remaining = len(variable) + len(payload)
    if remaining > 127:
        raise ValueError("client id too long for this minimal encoder")
    return bytes([_MQTT_CONNECT, remaining]) + variable + payload


def probe_mosquitto(host: str, port: int, timeout: float = 2.0) -> str:
    """CONNECT as a throwaway client; ready when the broker accepts (CONNACK rc 0)."""
    with _connect(host, port, timeout) as sock:
        try:
            sock.sendall(mqtt_connect_packet("mdfeed-stack-probe"))
            packet_type, length, _flags, return_code = _recv_exact(sock, 4)
            if packet_type != _MQTT_CONNACK or length != 2:
                raise ProbeError(f"expected CONNACK, got packet 0x{packet_type:02x}")
            if return_code != 0:
                raise ProbeError(f"broker refused the connection (return code {return_code})")
            sock.sendall(_MQTT_DISCONNECT)
        except OSError as exc:
            raise ProbeError(f"MQTT exchange failed: {exc}") from exc
    return "CONNACK accepted"
