"""Where a run keeps what it knows: the ledger (what was paid, shared across runs and
machines), the run's workspace, the outputs, and where each of them lives."""
