"""The vocabulary every layer shares: a request as the gateway understands it (`Call`), what
an upstream answered (`Answer`) and what that means (`Verdict`, `classify`), gemgate's own
refusals, and the events that report what happened. It imports no other gemgate package but
`problems` and the key-masking helpers, so every layer may depend on it and it on none."""
