"""Shared fixtures: the real service as a child process on loopback, and a loopback web server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from img2svg.service.embedded import EmbeddedService
from tests.helpers import LoopbackServer
from tests.pg import PostgresServer

ServiceFactory = Callable[..., EmbeddedService]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start `img2svg serve` with extra CLI args; every one started is stopped at teardown."""
    started: list[EmbeddedService] = []

    def start(*args: str, data_dir: Path | None = None, env: dict | None = None) -> EmbeddedService:
        directory = data_dir or tmp_path / f"service-{len(started)}"
        service = EmbeddedService(directory, extra_args=["--workers", "2", *args], env=env)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def service(start_service: ServiceFactory) -> EmbeddedService:
    return start_service("--allow-private-urls")


@pytest.fixture
def api(service: EmbeddedService) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=service.url, headers={"X-accept-language": "en"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def web() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session, started on first use."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a new, empty ledger lives: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "ledger.sqlite3"
    return request.getfixturevalue("postgres_url")
