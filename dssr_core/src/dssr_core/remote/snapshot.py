"""One status snapshot of the scheduler, shared by every thread, refreshed at most once per interval.

Upstream polls ``/queued``, ``/running`` and ``/runstatus`` for every job; all of them are
answered from one list of our jobs (one ``squeue``, one ``GET /jobs``). The snapshot is
refreshed when it is older than the interval (``JARVICE_SLURM_STATUS_INTERVAL``). Threads that
need a refresh while one is under way wait for it instead of starting their own
(single-flight). A refresh that fails raises to every thread that waited for it and is not
kept: the next call tries again. An old snapshot is never served past its interval, so a
cluster that cannot be reached gives errors, never an empty list. Each snapshot taken resets
``dssr_scheduler_snapshot_age_seconds``.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable

from dssr_core import metrics
from dssr_core.errors import ConnectorError, DssrError
from dssr_core.models import JobListing, JobRef
from dssr_core.remote.jobs import JobRecord
from dssr_core.remote.states import is_queued, is_running

log = logging.getLogger(__name__)


class Snapshot:
    """Our jobs at one moment, indexed by job id, with the listings precomputed."""

    def __init__(self, records: Iterable[JobRecord], taken_at: float):
        self.records = tuple(records)
        self.taken_at = taken_at
        self.by_id = {record.jobid: record for record in self.records}
        self.running = [JobListing(r.name, r.jobid) for r in self.records if is_running(r.state)]
        self.queued = [JobListing(r.name, r.jobid) for r in self.records if is_queued(r.state)]

    def find(self, job: JobRef) -> JobRecord | None:
        """The record of ``job`` (same id and same name), or None."""
        record = self.by_id.get(job.jobid)
        return record if record is not None and record.is_for(job) else None


class _Flight:
    """One refresh under way; the threads that wait for it share its outcome."""

    def __init__(self):
        self.done = threading.Event()
        self.result: Snapshot | None = None
        self.error: BaseException | None = None


class StatusSnapshot:
    """A :class:`Snapshot` kept fresh by ``fetch`` (which returns the records of our jobs)."""

    def __init__(self, fetch: Callable[[], Iterable[JobRecord]], interval: float,
                 clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Snapshot | None = None
        self._flight: _Flight | None = None

    def get(self) -> Snapshot:
        """A snapshot younger than the interval; refreshes (once, for everyone) when needed."""
        with self._lock:
            current = self._current
            if current is not None and self._clock() - current.taken_at < self.interval:
                return current
            leader = self._flight is None
            if leader:
                self._flight = _Flight()
            flight = self._flight
        if leader:
            return self._refresh(flight)
        flight.done.wait()
        if flight.error is not None:
            raise _shared_error(flight.error)
        return flight.result

    def peek(self) -> Snapshot | None:
        """The last snapshot, however old (None before the first): for facts that never change."""
        with self._lock:
            return self._current

    def invalidate(self) -> None:
        """Forget the current snapshot: the next :meth:`get` asks the scheduler."""
        with self._lock:
            self._current = None

    def _refresh(self, flight: _Flight) -> Snapshot:
        started = self._clock()
        try:
            flight.result = Snapshot(self._fetch(), started)
            metrics.snapshot_taken()
            return flight.result
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                if flight.result is not None:
                    self._current = flight.result
                self._flight = None
            flight.done.set()


def _shared_error(error: BaseException) -> BaseException:
    """A fresh exception for a thread that waited on a failed refresh (same class and message)."""
    if isinstance(error, DssrError):
        return type(error)(error.message)
    log.error("status refresh failed unexpectedly: %s: %s", type(error).__name__, error)
    return ConnectorError("Reading the scheduler's job list failed unexpectedly; the log has the details.")
