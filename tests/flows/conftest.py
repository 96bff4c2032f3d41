"""Real Prefect flow runs against a throwaway Prefect backend (prefect_test_harness)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness

# The harness's server must not phone home (no network here), and its telemetry write has been
# seen to race the harness's own database setup ("database is locked").
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


@pytest.fixture(autouse=True, scope="session")
def prefect_backend() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield
