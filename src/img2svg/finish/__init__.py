"""Stage 4: give every row its SVG, write the results table, the failure report and report.html,
and the run's summary."""
