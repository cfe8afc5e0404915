"""The embedded storage backend: one SQLite file (WAL) for the ledger, its rollups, virtual
keys and resource owners. The only place that speaks SQL."""
