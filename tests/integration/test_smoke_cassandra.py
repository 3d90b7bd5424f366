"""A write and a read through the real Cassandra with cassandra-driver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cassandra.cluster import Cluster, Session

from mdfeed.kernel.config import MdfeedConfig
from proto import mdfeed_pb2 as pb


@pytest.fixture
def session(stack_config: MdfeedConfig, unique_name: str) -> Iterator[Session]:
    store = stack_config.store
    cluster = Cluster(list(store.cassandra_contact_points), port=store.cassandra_port)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE {unique_name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.set_keyspace(unique_name)
    try:
        yield session
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {unique_name}")
        cluster.shutdown()


def test_bar_written_and_read_back(session: Session) -> None:
    session.execute(
        "CREATE TABLE bars (symbol text, open_time_ns bigint, bar blob, "
        "PRIMARY KEY (symbol, open_time_ns))"
    )
    insert = session.prepare("INSERT INTO bars (symbol, open_time_ns, bar) VALUES (?, ?, ?)")
    bars = [
        pb.Bar(
            symbol="MSFT",
            resolution=pb.RESOLUTION_1M,
            open_time_ns=minute * 60_000_000_000,
            open_px_e8=41_000_000_000 + minute,
            close_px_e8=41_000_000_001 + minute,
            trade_count=minute,
        )
        for minute in range(10)
    ]
    for bar in bars:
        session.execute(insert, (bar.symbol, bar.open_time_ns, bar.SerializeToString()))
    rows = session.execute(
        "SELECT bar FROM bars WHERE symbol = %s ORDER BY open_time_ns", ("MSFT",)
    )
    assert [pb.Bar.FromString(row.bar) for row in rows] == bars
