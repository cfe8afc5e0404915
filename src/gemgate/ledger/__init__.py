"""The usage and cost ledger: one durable record per client request, and reports over them."""
