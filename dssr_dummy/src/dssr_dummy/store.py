"""The dummy's job records and their SQLite table.

A :class:`Job` is an immutable snapshot; the connector replaces it (``attrs.evolve``) and saves
the new one. The store is not thread-safe by itself: the connector serialises every call.
"""

import contextlib
import functools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import attrs

from dssr_core.errors import ClusterUnavailable, ConnectorError, SettingsError

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
#: The types each column's value may have in Python (SQLite stores booleans as integers).
_COLUMN_TYPES = {
    field.name: {bool: int, float: (int, float), float | None: (int, float, type(None))}.get(
        field.type, field.type)
    for field in attrs.fields(Job)
}

#: SQLite's primary result codes that mean the disk, not the database, is the problem.
_DISK_PROBLEMS = {"SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN"}
#: What callers are told when the state cannot be written; the log names the file.
UNWRITABLE = ("The dummy cannot record jobs now: its state disk is full or read-only "
              "(the server log names it); try again once it is writable.")


def _database_errors(method):
    """Turn sqlite3's errors into DSSR's: a disk that is full or read-only is
    ClusterUnavailable (the caller may retry), anything else ConnectorError, naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise database_error(self.path, error) from None

    return wrapper


def database_error(path: Path, error: sqlite3.Error) -> Exception:
    primary = "_".join(getattr(error, "sqlite_errorname", "").split("_")[:2])  # SQLITE_IOERR_WRITE
    if primary in _DISK_PROBLEMS:
        return ClusterUnavailable(UNWRITABLE, detail=f"its job database {path}: {error}")
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
        return ConnectorError(
            f"The dummy's job database {path} is damaged ({error}): restore it from a backup, "
            "or move the state dir away to start afresh (its jobs are then forgotten)."
        )
    return ConnectorError(f"The dummy's job database {path} failed: {error}.")


class DamagedState(ConnectorError, SettingsError):
    """The state dir cannot be trusted: the start stops with this sentence.

    Also a SettingsError: like a bad setting, it is the operator's to fix before DSSR can
    start (``dssr`` exits 2 for it).
    """


class JobStore:
    """The ``jobs`` table in ``jobs.sqlite3`` (WAL mode), and a small ``meta`` table."""

    @_database_errors
    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit reaches the disk; NORMAL may lose the last ones when the disk fails.
        self._db.execute("PRAGMA synchronous=FULL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._db.close()
            raise ConnectorError(
                f"{path} was written by a newer dssr_dummy (schema {version}); upgrade "
                "dssr_dummy or set JARVICE_DUMMY_STATE_DIR to another folder."
            )
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            self._db.close()
            raise DamagedState(
                f"The dummy's job database {path} is damaged ({problems[0]}): restore it from "
                "a backup, or move the state dir away to start afresh (its jobs are then forgotten)."
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
        """Every job; a row that is not a job stops here with a sentence naming it."""
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY jobid")
        return [self._job(dict(zip(_COLUMNS, row, strict=True))) for row in rows]

    def _job(self, row: dict) -> Job:
        wrong = [f"{name} is {value!r:.40}" for name, value in row.items()
                 if not isinstance(value, _COLUMN_TYPES[name])]
        if not wrong:
            try:
                return Job(**row)
            except (TypeError, ValueError):
                wrong = [f"state is {row['state']!r:.40}, not one of {', '.join(STATES)}"]
        raise DamagedState(
            f"The dummy's job database {self.path} has a damaged row, job {row['jobid']!r:.20}: "
            f"{'; '.join(wrong)}. Correct or delete that row (sqlite3 {self.path}), or restore "
            "a backup; DSSR does not guess what the job was."
        )

    @_database_errors
    def last_jobid(self) -> int:
        """The largest job id ever issued (0 before the first): ids are never reused."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        return row[0] if row else 0

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
