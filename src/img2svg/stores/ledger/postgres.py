"""The ledger in PostgreSQL, so several machines share one.

Its tables live in the schema `img2svg` (each connection's search_path), so a shared database is
not cluttered. The schema version is a row of `img2svg.meta`; migrations run under a
transaction-level advisory lock, so workers that start at once take turns instead of racing.
Connections are in autocommit with explicit transactions; one the server aborts for a
serialization failure or a deadlock is run again. Named locks are session-level advisory locks,
each on a connection of its own: the server drops the lock when that connection closes, so when
its holder dies (SIGKILL included), and a connection lost with the ledger's own connection does
not take the lock with it.

A lost connection (the server restarted, a network blip) is reconnected with backoff for up to
`IMG2SVG_LEDGER_OUTAGE_S` seconds (default 300) before `LedgerUnavailable` is raised, and the
statement or transaction is run again: a transaction cut off before its COMMIT was rolled back,
and every ledger transition is written to be run again (a claim recognizes its own committed
row). A named lock's session is watched the same way: its holder renews a lease row every few
seconds and takes its advisory lock back after a reconnection, and a second holder never takes
a lock whose lease is still being renewed, so a server restart does not let a second run in.

psycopg's messages may quote the connection string: every one is scrubbed of the password, and
the driver's exception is not chained to the `LedgerUnavailable` raised in its place.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.errors import DeadlockDetected, SerializationFailure
from psycopg.rows import dict_row

from img2svg.stores.ledger.dialect import Dialect, Row, T, holder_message
from img2svg.stores.ledger.errors import LedgerTooNew, LedgerUnavailable, RunInProgress
from img2svg.stores.ledger.location import describe, scrub
from img2svg.stores.ledger.model import PAID_BEFORE_V6, SCHEMA_VERSION

SCHEMA = "img2svg"
_DEFAULTS = {"connect_timeout": 10, "application_name": "img2svg"}  # unless the URL sets them
_RETRIED = (SerializationFailure, DeadlockDetected)
_ATTEMPTS = 5
_POLL_S = 0.5  # a waiting lock polls, so Ctrl-C still stops it
OUTAGE_ENV = "IMG2SVG_LEDGER_OUTAGE_S"
_OUTAGE_S = 300.0  # how long a lost ledger is waited for before the run gives up on it
_RENEW_S = 2.0  # a lock's holder renews its lease this often...
_LEASE_S = 10.0  # ...and a lease not renewed for this long is its dead holder's

log = logging.getLogger("img2svg.ledger")


def outage_s() -> float:
    return float(os.environ.get(OUTAGE_ENV) or _OUTAGE_S)


_CREATE = [
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.submissions ("
    " key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, mode TEXT NOT NULL,"
    " backend TEXT NOT NULL, idem_key TEXT NOT NULL, state TEXT NOT NULL, task_id TEXT,"
    " sub_task_id TEXT, svg_url TEXT, svg_path TEXT, svg_sha256 TEXT, error TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0, token_id TEXT, flags TEXT NOT NULL DEFAULT '',"
    " created_at DOUBLE PRECISION NOT NULL, submitted_at DOUBLE PRECISION,"
    " finished_at DOUBLE PRECISION, quality TEXT)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.rows ("
    " row_id TEXT PRIMARY KEY, key TEXT NOT NULL, svg_path TEXT NOT NULL,"
    " svg_sha256 TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, svg_size BIGINT,"
    " svg_mtime_ns BIGINT)",
    f"CREATE INDEX IF NOT EXISTS rows_key ON {SCHEMA}.rows (key)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.file_hashes ("
    " path TEXT PRIMARY KEY, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,"
    " sha256 TEXT NOT NULL)",
    # Who holds each named lock, for the message a second one shows (as the pid in a lock file).
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.locks ("
    " key BIGINT PRIMARY KEY, name TEXT NOT NULL, holder TEXT NOT NULL,"
    " since DOUBLE PRECISION NOT NULL)",
]
_V6 = [
    f"ALTER TABLE {SCHEMA}.submissions ADD COLUMN IF NOT EXISTS callback TEXT",
    f"ALTER TABLE {SCHEMA}.submissions ADD COLUMN IF NOT EXISTS paid INTEGER NOT NULL DEFAULT 0",
    f"ALTER TABLE {SCHEMA}.submissions"
    " ADD COLUMN IF NOT EXISTS paid_again INTEGER NOT NULL DEFAULT 0",
    f"CREATE INDEX IF NOT EXISTS submissions_callback ON {SCHEMA}.submissions (callback)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.callbacks ("
    " token_hash TEXT PRIMARY KEY, main_task_id TEXT NOT NULL, sub_task_results TEXT NOT NULL,"
    " received_at DOUBLE PRECISION NOT NULL, repeats INTEGER NOT NULL DEFAULT 0)",
    f"ALTER TABLE {SCHEMA}.locks ADD COLUMN IF NOT EXISTS renewed_at DOUBLE PRECISION",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.runs ("
    " run_id TEXT PRIMARY KEY, out TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL,"
    " ended_at DOUBLE PRECISION NOT NULL, figures TEXT NOT NULL)",
    f"{PAID_BEFORE_V6.replace('submissions', f'{SCHEMA}.submissions')} AND paid = 0",
]
# Statements that bring a database to each version. PostgreSQL support began at version 5.
_STEPS: dict[int, list[str]] = {5: _CREATE, 6: _V6}


def advisory_key(name: str) -> int:
    """A bigint for pg_advisory_lock, from the name (prefixed: the key space is database-wide)."""
    digest = hashlib.sha256(f"img2svg {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_MIGRATION_LOCK = advisory_key("schema migration")


def _pg(sql: str) -> str:
    """The ledger's `?` placeholders as psycopg's `%s` (its SQL has no literal `?` or `%`)."""
    return sql.replace("?", "%s")


def _guarded(url: str, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, a lost or refused connection raised as LedgerUnavailable."""
    try:
        return call(*args)
    except _RETRIED:
        raise
    except psycopg.OperationalError as exc:
        failure = scrub(f"{type(exc).__name__}: {exc}", url)
    # Raised outside the except block, so the driver's exception is not even its context.
    raise LedgerUnavailable(f"the ledger {describe(url)} is unavailable: {failure}")


def connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    try:
        given = conninfo_to_dict(url)
        options = {name: value for name, value in _DEFAULTS.items() if name not in given}
        db = psycopg.connect(url, autocommit=True, row_factory=dict_row, **options)
        try:
            db.execute(f"SET search_path TO {SCHEMA}")
        except BaseException:
            db.close()
            raise
        return db
    except psycopg.Error as exc:
        failure = scrub(f"{type(exc).__name__}: {exc}", url)
    raise LedgerUnavailable(f"cannot connect to the ledger {describe(url)}: {failure}")


class PostgresDialect(Dialect):
    for_update = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._in_transaction = False
        self._db = connect(url)
        try:
            self.write(self._migrate)
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresDialect({describe(self._url)!r})"

    def _version(self) -> int:
        if self._db.execute(f"SELECT to_regclass('{SCHEMA}.meta') AS t").fetchone()["t"] is None:
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row["value"]) if row else 0

    def _migrate(self) -> None:
        self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        version = self._version()
        if version > SCHEMA_VERSION:
            raise LedgerTooNew(
                f"the ledger {describe(self._url)} was written by a newer img2svg "
                f"(schema {version})"
            )
        if version == SCHEMA_VERSION:
            return
        # Looked up first: CREATE SCHEMA IF NOT EXISTS needs the CREATE right even when it exists.
        if not self._db.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)
        ).fetchone():
            self._db.execute(f"CREATE SCHEMA {SCHEMA}")
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _STEPS.get(target, []):
                self._db.execute(statement)
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )

    def _execute(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[dict[str, Any]]:
        if self._in_transaction:  # a lost connection is the transaction's to handle
            return _guarded(self._url, self._db.execute, _pg(sql), params)
        return self._again_when_lost(lambda: self._db.execute(_pg(sql), params))

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)

        def run() -> None:
            with self._db.cursor() as cursor:
                cursor.executemany(_pg(sql), rows)

        if self._in_transaction:
            _guarded(self._url, run)
        else:
            self._again_when_lost(run)

    def _transaction(self, work: Callable[[], T]) -> T:
        with self._guard, self._db.transaction():
            self._in_transaction = True
            try:
                return work()
            finally:
                self._in_transaction = False

    def write(self, work: Callable[[], T]) -> T:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._again_when_lost(lambda: self._transaction(work))
            except _RETRIED:
                if attempt == _ATTEMPTS:
                    raise
            time.sleep(0.05 * 2**attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    def _again_when_lost(self, call: Callable[[], T]) -> T:
        """`call()`; when the connection is lost under it, reconnect and call it again."""
        with self._guard:
            while True:
                try:
                    return _guarded(self._url, call)
                except LedgerUnavailable as exc:
                    if not (self._db.closed or self._db.broken):
                        raise  # the server answered, with an error: not an outage
                    self._reconnect(str(exc))

    def _reconnect(self, failure: str) -> None:
        """Connect again, backing off, for up to `outage_s()`; then LedgerUnavailable."""
        bound = outage_s()
        deadline, delay = time.monotonic() + bound, 0.1
        log.warning("%s; reconnecting for up to %g s", failure, bound)
        while True:
            try:
                fresh = connect(self._url)
            except LedgerUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise LedgerUnavailable(
                        f"the ledger {describe(self._url)} has been unreachable for {bound:g} s "
                        f"({exc}); set {OUTAGE_ENV} to wait longer"
                    ) from None
                time.sleep(delay)
                delay = min(2 * delay, 5.0)
                continue
            with contextlib.suppress(psycopg.Error):
                self._db.close()
            self._db = fresh
            log.warning("the ledger %s is back", describe(self._url))
            return

    def select_in(self, table: str, column: str, values: list[str]) -> list[Row]:
        if not values:
            return []
        return self.all(f"SELECT * FROM {table} WHERE {column} = ANY(?)", (list(values),))

    @contextmanager
    def lock(self, name: str, *, wait: bool, what: str) -> Iterator[None]:
        key = advisory_key(name)
        me = f"pid {os.getpid()} on {socket.gethostname()} ({random.getrandbits(32):08x})"
        session = connect(self._url)  # its own: closing it is what releases the lock
        try:
            while True:
                if _guarded(self._url, _try_lock, session, key):
                    renewed = _guarded(self._url, _lease, session, key)
                    if renewed is None or _lease_lapsed(self._url, session, key, renewed):
                        break
                    # A holder lost its session (the server restarted) and still renews its
                    # lease: it is alive, reconnecting. Give the lock back for it to take.
                    _guarded(self._url, _unlock, session, key)
                if not wait:
                    holder = _guarded(self._url, _holder, session, key)
                    raise RunInProgress(holder_message(what, holder), holder)
                time.sleep(_POLL_S)
            _guarded(self._url, _take_lease, session, key, name, me)
            keeper = _LeaseKeeper(self._url, session, key, name, me)
            keeper.start()
            try:
                yield
            finally:
                session = keeper.stop()
        finally:
            session.close()

    def close(self) -> None:
        with self._guard:
            self._db.close()


def _try_lock(session: psycopg.Connection[dict[str, Any]], key: int) -> bool:
    return session.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()["ok"]


def _unlock(session: psycopg.Connection[dict[str, Any]], key: int) -> None:
    session.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _lease(session: psycopg.Connection[dict[str, Any]], key: int) -> tuple[str, float] | None:
    """(holder, renewed_at) of the lock's lease, when a holder left one."""
    row = session.execute("SELECT holder, renewed_at FROM locks WHERE key = %s", (key,)).fetchone()
    if row is None or row["renewed_at"] is None:
        return None
    return row["holder"], row["renewed_at"]


def _lease_lapsed(
    url: str, session: psycopg.Connection[dict[str, Any]], key: int, seen: tuple[str, float]
) -> bool:
    """Whether the lease `seen` is a dead holder's: not renewed within `_LEASE_S` of its last
    renewal (a live holder renews it every `_RENEW_S`, and clears it when it lets go)."""
    while time.time() < seen[1] + _LEASE_S:
        time.sleep(_POLL_S)
        if _guarded(url, _lease, session, key) != seen:
            return False  # renewed, or let go and taken: someone is alive
    return True


def _take_lease(session: psycopg.Connection[dict[str, Any]], key: int, name: str, me: str) -> None:
    now = time.time()
    session.execute(
        "INSERT INTO locks (key, name, holder, since, renewed_at) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (key) DO UPDATE SET name = excluded.name, holder = excluded.holder, "
        "since = excluded.since, renewed_at = excluded.renewed_at",
        (key, name, me, now, now),
    )


class _LeaseKeeper(threading.Thread):
    """Renews a held lock's lease; when its session is lost, reconnects (for up to the outage
    bound) and takes the advisory lock back, which no one else takes while the lease is
    renewed."""

    def __init__(
        self, url: str, session: psycopg.Connection[dict[str, Any]], key: int, name: str, me: str
    ) -> None:
        super().__init__(name=f"ledger-lock-{key}", daemon=True)
        self.url, self.session, self.key, self.lock_name, self.me = url, session, key, name, me
        self._stopping = threading.Event()

    def stop(self) -> psycopg.Connection[dict[str, Any]]:
        """Stop renewing and clear the lease (the next holder need not wait it out)."""
        self._stopping.set()
        self.join(timeout=30)
        with contextlib.suppress(psycopg.Error):
            _renew(self.session, self.key, self.me, None)
        return self.session

    def run(self) -> None:
        while not self._stopping.wait(_RENEW_S):
            try:
                _renew(self.session, self.key, self.me, time.time())
            except psycopg.Error:
                self._restore()

    def _restore(self) -> None:
        deadline = time.monotonic() + outage_s()
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                fresh = connect(self.url)
                _renew(fresh, self.key, self.me, time.time())  # before anyone thinks it lapsed
                mine = _try_lock(fresh, self.key)
            except (psycopg.Error, LedgerUnavailable):
                time.sleep(_POLL_S)
                continue
            with contextlib.suppress(psycopg.Error):
                self.session.close()
            self.session = fresh
            if mine:
                log.warning("lock %r held again now that the ledger is back", self.lock_name)
            else:
                log.error("lock %r was taken while the ledger was away", self.lock_name)
            return


def _renew(
    session: psycopg.Connection[dict[str, Any]], key: int, me: str, when: float | None
) -> None:
    session.execute(
        "UPDATE locks SET renewed_at = %s WHERE key = %s AND holder = %s", (when, key, me)
    )


def _holder(session: psycopg.Connection[dict[str, Any]], key: int) -> str:
    row = session.execute("SELECT holder FROM locks WHERE key = %s", (key,)).fetchone()
    return row["holder"] if row else "holder unknown"
