"""`img2svg convert`'s options, made from the run's parameter model."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_refuses_what_the_flow_would_refuse_before_anything_starts() -> None:
    """Options carry their field's constraints: a bad value is one argparse message, exit 2."""
    for flag, value in [("--concurrency", "0"), ("--chunk-size", "0"), ("--shards", "0"),
                        ("--max-failure-ratio", "2"), ("--poll-timeout", "0")]:  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "img2svg.cli", "convert", "m.csv", flag, value],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2, (flag, done.stderr)
        assert f"argument {flag}:" in done.stderr and "Traceback" not in done.stderr
