"""The pipeline's ledger: what was submitted and produced, in SQLite or PostgreSQL.

model     the records (Submission, RowRecord, State) and the schema version
ledger    Ledger: the named transitions, written once, and its named locks
sqlite    a ledger file beside the outputs (flock'd lock files)
postgres  one database shared by several machines (advisory locks)
location  a path or a postgresql:// URL, and how to name it without its password
errors    LedgerUnavailable, LedgerTooNew, RunInProgress
"""

from img2svg.stores.ledger.errors import LedgerTooNew, LedgerUnavailable, RunInProgress
from img2svg.stores.ledger.ledger import RUN_LOCK_MESSAGE, Ledger, run_lock_name
from img2svg.stores.ledger.location import describe, is_postgres
from img2svg.stores.ledger.model import (
    SCHEMA_VERSION,
    SUBMITTED,
    SUBMITTING,
    CallbackOutcome,
    RowRecord,
    RowWrite,
    State,
    Submission,
    submission_key,
)

__all__ = [
    "RUN_LOCK_MESSAGE",
    "SCHEMA_VERSION",
    "SUBMITTED",
    "SUBMITTING",
    "CallbackOutcome",
    "Ledger",
    "LedgerTooNew",
    "LedgerUnavailable",
    "RowRecord",
    "RowWrite",
    "RunInProgress",
    "State",
    "Submission",
    "describe",
    "is_postgres",
    "run_lock_name",
    "submission_key",
]
