"""What one replica knows of Slurm's job ids, so that a submission looks for its twin without
listing the whole queue.

Slurm numbers jobs in the order it creates them. After a full job list whose highest id is
``H``, every job with an id up to ``H`` that was queued or running then is in that list; a job
created later has an id above ``H``. So the live jobs of a name are the list's (read again,
one by one, for whether they still live) and any among the ids above ``H``: after its own
submit returned id ``J``, a submission reads the ids from ``H + 1`` to ``J - 1`` one by one (a
twin submitted before ours has one of them), and ``H`` becomes ``J``. Usually no id at all lies
between: the index moves on with every submission of this replica and with every job list.
When too many ids lie between (:data:`MAX_PROBES`), or the ids wrapped (:data:`WRAPPED`), the
job list is read again instead.
"""

import threading
from collections.abc import Iterable

from dssr_core.remote.jobs import JobRecord
from dssr_core.remote.states import is_live

#: At most this many ids are read one by one after a submit; with more, the whole list is read.
MAX_PROBES = 16
#: A submit's id this far below the highest id known means Slurm's ids wrapped (at MaxJobId, 67
#: million by default) since: the whole list is read.
WRAPPED = 1_000_000


class TwinIndex:
    """The live jobs of ours by name, as known up to job id :attr:`upto` (None: no list read yet).
    Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._upto: int | None = None
        self._live: dict[str, dict[str, JobRecord]] = {}

    @property
    def upto(self) -> int | None:
        with self._lock:
            return self._upto

    def listed(self, records: Iterable[JobRecord], highest: int) -> None:
        """A full job list whose highest id was ``highest``: it replaces what was known up to there."""
        live: dict[str, dict[str, JobRecord]] = {}
        for record in records:
            if is_live(record.state):
                live.setdefault(record.name, {})[record.jobid] = record
        with self._lock:
            for name, jobs in self._live.items():  # learned after the list was asked for
                for jobid, record in jobs.items():
                    if int(jobid) > highest:
                        live.setdefault(name, {})[jobid] = record
            self._live = live
            self._upto = highest if self._upto is None else max(self._upto, highest)

    def learned(self, records: Iterable[JobRecord], upto: int) -> None:
        """The ids above :attr:`upto` up to ``upto`` were read; ``records``: the jobs of ours among them."""
        with self._lock:
            for record in records:
                if is_live(record.state):
                    self._live.setdefault(record.name, {})[record.jobid] = record
            self._upto = upto if self._upto is None else max(self._upto, upto)

    def named(self, name: str, upto: int | None = None) -> list[JobRecord]:
        """The jobs of ``name`` last known to be live (with ids up to ``upto``), lowest id first."""
        with self._lock:
            jobs = list(self._live.get(name, {}).values())
        return sorted((record for record in jobs if upto is None or int(record.jobid) <= upto),
                      key=lambda record: int(record.jobid))

    def ended(self, record: JobRecord) -> None:
        """``record`` was found ended, or unknown to Slurm: it is no candidate any more."""
        with self._lock:
            jobs = self._live.get(record.name, {})
            jobs.pop(record.jobid, None)
            if not jobs:
                self._live.pop(record.name, None)
