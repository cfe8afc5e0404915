"""The Redis state backend: quota windows and reservations, key and project health, a virtual
key's windows and budgets, and small records, shared by every replica and worker. Each decision
is one round trip (a Lua script, timed by Redis's own clock); while Redis is unreachable each
replica serves on its own memory state with limits divided by `state.replicas` (link.py)."""
