"""The vocabulary every stage shares: the run's parameters, its settings, row statuses and flags."""
