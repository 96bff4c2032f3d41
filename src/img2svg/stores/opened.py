"""A task's stores, opened from the small values it was given (paths and a ledger location)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from img2svg.stores.ledger import Ledger
from img2svg.stores.placement import with_password
from img2svg.stores.workspace import Workspace


@contextmanager
def workspace_and_ledger(
    workspace: str, ledger_location: str
) -> Iterator[tuple[Workspace, Ledger]]:
    """The run's workspace and the ledger, its password found in this process's environment
    (a task's parameters never hold it); both closed when the block ends."""
    with Workspace(workspace) as work, Ledger(with_password(ledger_location)) as ledger:
        yield work, ledger
