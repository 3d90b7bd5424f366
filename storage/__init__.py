"""Bar and chat stores: Cassandra for production, SQLite for the embedded default."""
