"""The PostgreSQL backend: the ledger, its rollup, virtual keys and resource owners shared by
every replica (asyncpg; chosen by measurement, bench/clients.py)."""
