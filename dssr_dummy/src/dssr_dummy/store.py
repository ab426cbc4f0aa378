"""The dummy's job records and their SQLite table.

A :class:`Job` is an immutable snapshot; the connector replaces it (``attrs.evolve``) and saves
the new one. The store is not thread-safe by itself: the connector serialises every call.
"""

import contextlib
import functools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import attrs

from dssr_core.errors import ConnectorError

HELD = "HELD"
QUEUED = "QUEUED"
RUNNING = "RUNNING"
ENDED = "ENDED"
STATES = (HELD, QUEUED, RUNNING, ENDED)

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    jobid INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    submit_time REAL NOT NULL,
    eligible_time REAL NOT NULL,
    gpus INTEGER NOT NULL DEFAULT 0,
    success_marker TEXT,
    timer_running_s REAL,
    timer_rc INTEGER,
    start_time REAL,
    end_time REAL,
    pid INTEGER,
    pid_start INTEGER,
    exit_code INTEGER,
    cancelled INTEGER NOT NULL DEFAULT 0,
    kill_at REAL,
    service_port INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_name ON jobs (name);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@attrs.frozen
class Job:
    """What the dummy knows of one job.

    ``state`` is one of HELD, QUEUED, RUNNING, ENDED. ``eligible_time`` is when a queued job
    may start (timer mode's queued time). ``timer_running_s`` is set for a timer-mode job,
    which sleeps that long and exits ``timer_rc``. ``pid_start`` is the process start time
    (clock ticks since boot, from /proc) that tells our process from a later one with the
    same pid. ``exit_code`` is None until known (or when it could not be known).
    ``kill_at`` is when a terminated job still alive gets SIGKILL. ``service_port`` is where
    an interactive job's web service listens on this machine (None: it has none).
    """

    jobid: int
    name: str
    number: int
    state: str = attrs.field(validator=attrs.validators.in_(STATES))
    submit_time: float
    eligible_time: float
    gpus: int = 0
    success_marker: str | None = None
    timer_running_s: float | None = None
    timer_rc: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    pid: int | None = None
    pid_start: int | None = None
    exit_code: int | None = None
    cancelled: bool = attrs.field(default=False, converter=bool)
    kill_at: float | None = None
    service_port: int | None = None


_COLUMNS = tuple(field.name for field in attrs.fields(Job))
_DATA_COLUMNS = _COLUMNS[1:]


def _database_errors(method):
    """Turn sqlite3's errors into ConnectorError, naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise ConnectorError(f"The dummy's job database {self.path} failed: {error}.") from None

    return wrapper


class JobStore:
    """The ``jobs`` table in ``jobs.sqlite3`` (WAL mode), and a small ``meta`` table."""

    @_database_errors
    def __init__(self, path: Path):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._db.close()
            raise ConnectorError(
                f"{path} was written by a newer dssr_dummy (schema {version}); upgrade "
                "dssr_dummy or set JARVICE_DUMMY_STATE_DIR to another folder."
            )
        self._db.executescript(_SCHEMA)
        if version == 1:  # schema 1 had no service port
            self._db.execute("ALTER TABLE jobs ADD COLUMN service_port INTEGER")
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them are kept, or none when the block raises."""
        self._execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._execute("ROLLBACK")
            raise
        self._execute("COMMIT")

    @_database_errors
    def _execute(self, statement: str) -> None:
        self._db.execute(statement)

    @_database_errors
    def insert(self, job: Job) -> Job:
        """Save a new job (its ``jobid`` is ignored) and return it with its new id."""
        values = [_column_value(getattr(job, name)) for name in _DATA_COLUMNS]
        cursor = self._db.execute(
            f"INSERT INTO jobs ({', '.join(_DATA_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _DATA_COLUMNS)})", values)
        return attrs.evolve(job, jobid=cursor.lastrowid)

    @_database_errors
    def save(self, job: Job) -> None:
        values = [_column_value(getattr(job, name)) for name in _DATA_COLUMNS]
        self._db.execute(
            f"UPDATE jobs SET {', '.join(f'{name} = ?' for name in _DATA_COLUMNS)} "
            "WHERE jobid = ?", [*values, job.jobid])

    @_database_errors
    def delete(self, jobid: int) -> None:
        self._db.execute("DELETE FROM jobs WHERE jobid = ?", (jobid,))

    @_database_errors
    def load(self) -> list[Job]:
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY jobid")
        return [Job(**dict(zip(_COLUMNS, row, strict=True))) for row in rows]

    @_database_errors
    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM jobs").fetchone()[0]

    @_database_errors
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @_database_errors
    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._db.close()


def _column_value(value):
    return int(value) if isinstance(value, bool) else value
