"""slurmrestd's job list, read for what DSSR needs of it and not read again when nothing changed.

``GET /slurm/vX/jobs`` answers every job with its whole record (about 8 KB of JSON a job on
26.05): :func:`read_jobs` reads it as it arrives, one job at a time, and decodes only the fields
DSSR reads (:data:`JOB_FIELDS`) with msgspec, which skips the rest without building it.
From v0.0.40 on the answer carries Slurm's ``last_update``, and from v0.0.42 on the request
takes it back as ``update_time`` (24.11 refuses it in v0.0.40 and v0.0.41): slurmctld then
answers no job at all when none has changed since, and the last list stands, running jobs'
elapsed time moved on by the clock. 22.05's v0.0.38 says no ``last_update`` but answers
``update_time`` with ``304 Not Modified``: there the time is slurmctld's clock (``GET /diag``)
read just before the list.

:class:`JobLists` reads the status snapshot's lists. :class:`Listing` also remembers the highest
job id Slurm listed (every user's): a job with a higher id was submitted after the list was
taken, which is what the check for a twin needs (:mod:`dssr_slurm.rest.twins`).
"""

import json
import logging
import re
import threading
import time
from typing import Any, Protocol

import attrs
import msgspec

from dssr_core.errors import ConnectorError
from dssr_core.remote.jobs import JobRecord
from dssr_core.remote.states import is_running
from dssr_slurm.rest.client import Answer, RestClient
from dssr_slurm.rest.errors import failure
from dssr_slurm.rest.twins import TwinIndex
from dssr_slurm.rest.versions import ApiVersion, number

log = logging.getLogger(__name__)

#: The fields of a job record that DSSR reads (``ApiVersion.job_record``), in every version.
JOB_FIELDS = ("job_id", "name", "user_name", "job_state", "start_time", "suspend_time", "pre_sus_time",
              "end_time", "nodes", "exit_code", "comment")


class _Job(msgspec.Struct):
    job_id: Any = None
    name: Any = None
    user_name: Any = None
    job_state: Any = None
    start_time: Any = None
    suspend_time: Any = None
    pre_sus_time: Any = None
    end_time: Any = None
    nodes: Any = None
    exit_code: Any = None
    comment: Any = None


class _Jobs(msgspec.Struct):
    jobs: list[_Job] | None = None
    last_update: Any = None
    errors: Any = None
    warnings: Any = None
    meta: Any = None


_DECODER = msgspec.json.Decoder(_Jobs)
_JOB_DECODER = msgspec.json.Decoder(_Job)
_JOBS_KEY = re.compile(rb'"jobs"\s*:\s*\[')
_GAP = re.compile(rb"[\s,]*")
#: How much of the answer is read at a time.
CHUNK = 1 << 16
NOT_MODIFIED = 304


class JobStream(Protocol):
    def read(self, size: int | None = None) -> bytes:
        """Up to ``size`` more bytes (b"" at the end); with None, all the rest."""


def read_jobs(stream: JobStream) -> dict:
    """A ``GET /jobs`` answer as the body :class:`~dssr_slurm.rest.client.Answer` holds, each job with
    :data:`JOB_FIELDS` only, read as it arrives: one job's JSON at a time is in memory, not the
    whole answer (about 80 MB with 10,000 jobs on 26.05).

    slurmrestd writes its answers indented, one value a line, and a JSON string holds no raw
    newline: so a job of the list ends at the first line that closes a brace at the indentation
    its own ``{`` opened with. An answer written otherwise (on one line) is read whole.
    ValueError when the answer is no such JSON.
    """
    head = b""
    while (match := _JOBS_KEY.search(head)) is None:
        chunk = stream.read(CHUNK)
        if not chunk:
            return _whole(head)  # no job list: an error's answer
        head += chunk
    skeleton, buffer, position = head[:match.end()], head[match.end():], 0
    jobs: list[dict] = []
    closing = b""
    while True:
        position = _GAP.match(buffer, position).end()
        if position == len(buffer):
            buffer, position = _more(stream, buffer, position)
            continue
        if buffer[position] == ord("]"):
            body = _whole(skeleton + buffer[position:] + stream.read())
            body["jobs"] = jobs
            return body
        if buffer[position] != ord("{"):
            raise ValueError("slurmrestd's job list holds something other than job objects")
        if not closing:
            line_start = buffer.rfind(b"\n", 0, position) + 1
            indent = buffer[line_start:position]
            if not line_start or indent.strip(b" "):  # not one value a line: read it whole
                return _whole(skeleton + buffer + stream.read())
            closing = b"\n" + indent + b"}"
        while (end := buffer.find(closing, position)) < 0:
            buffer, position = _more(stream, buffer, position)
        end += len(closing)
        jobs.append(msgspec.structs.asdict(_decode(_JOB_DECODER, buffer[position:end])))
        position = end


def _more(stream: JobStream, buffer: bytes, position: int) -> tuple[bytes, int]:
    chunk = stream.read(CHUNK)
    if not chunk:
        raise ValueError("slurmrestd's job list ends before its last job")
    return buffer[position:] + chunk, 0


def _whole(data: bytes) -> dict:
    """An answer read whole: its jobs with :data:`JOB_FIELDS` only, the rest as it is."""
    try:
        answer = _decode(_DECODER, data)
    except msgspec.ValidationError:
        body = json.loads(data)
        return body if isinstance(body, dict) else {}
    body = {key: value for key in ("last_update", "errors", "warnings", "meta")
            if (value := getattr(answer, key)) is not None}
    body["jobs"] = [msgspec.structs.asdict(job) for job in answer.jobs or ()]
    return body


def _decode(decoder: msgspec.json.Decoder, data: bytes):
    try:
        return decoder.decode(data)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError as error:
        raise ValueError(str(error)) from None


def highest_job_id(raw_jobs: list[dict]) -> int:
    """The highest job id of a list of raw job records (0 when there is none)."""
    ids = [job_id for raw in raw_jobs if isinstance(job_id := raw.get("job_id"), int)
           and not isinstance(job_id, bool)]
    return max(ids, default=0)


@attrs.frozen
class Listing:
    """One full job list: our jobs' records as they were at ``taken`` (``time.time()``), the highest
    job id listed, and the time on slurmctld's clock the list was current at: the answer's
    ``last_update``, or (v0.0.38) slurmctld's clock just before it was asked (None: not known)."""

    records: tuple[JobRecord, ...]
    highest: int
    last_update: int | None
    taken: float
    api: str

    def update_time(self, api: str) -> int | None:
        """The ``update_time`` to ask for the next list with (None: ask for everything)."""
        return self.last_update if self.last_update and api == self.api else None

    def records_now(self, now: float | None = None) -> list[JobRecord]:
        """The records as they are now, nothing having changed in Slurm: running jobs have run longer."""
        ran = int((time.time() if now is None else now) - self.taken)
        return [attrs.evolve(record, elapsed_s=record.elapsed_s + ran)
                if ran > 0 and is_running(record.state) and record.state != "SUSPENDED" else record
                for record in self.records]


def unchanged(body: dict, last_update: int | None) -> bool:
    """Whether an answer to ``update_time`` says no job changed: no job, and ``last_update`` unset
    or 0 (a list that did change carries slurmctld's time of the change)."""
    if last_update is None or body.get("jobs"):
        return False
    return not number(body.get("last_update"))


class JobLists:
    """The job lists of the status snapshot (``GET /slurm/vX/jobs`` as the service account): only
    when some job changed since the last one (``update_time``, v0.0.38 and from v0.0.42 on), else
    the last list's records as they are now. Each list read feeds ``twins``. Thread-safe."""

    def __init__(self, client: RestClient, tokens, twins: TwinIndex):
        self.client = client
        self.tokens = tokens
        self.twins = twins
        self._last: Listing | None = None
        self._lock = threading.Lock()
        self._whole = False  # slurmrestd refused update_time once: never sent again

    def read(self, version: ApiVersion) -> list[JobRecord]:
        previous = self._last
        asks_changes = (version.lists_changes or version.answers_not_modified) and not self._whole
        since = previous.update_time(version.name) if previous is not None and asks_changes else None
        credentials = self.tokens.service()
        what = "listing jobs"
        by_clock = asks_changes and version.answers_not_modified
        clock = self._controller_clock(version, credentials) if by_clock else None
        taken = time.time()
        answer = self.client.get(version.jobs_path + (f"?update_time={since}" if since else ""), credentials,
                                 what, reader=read_jobs)
        if since and answer.status == NOT_MODIFIED and version.answers_not_modified:
            return previous.records_now()
        if since and version.answers_not_modified and answer.ok and not answer.body.get("jobs"):
            since = None  # no job at all, or a slurmrestd that says "no change" so: the whole list says
            answer = self.client.get(version.jobs_path, credentials, what, reader=read_jobs)
        if since and not answer.ok:  # a slurmrestd that refuses update_time: ask for the whole list
            answer = self.client.get(version.jobs_path, credentials, what, reader=read_jobs)
            if answer.ok:
                log.info("slurmrestd at %s refuses GET %s?update_time=: every job list is read whole",
                         self.client.label, version.jobs_path)
                self._whole, since = True, None
        if not answer.ok:
            raise failure(answer, what, self.tokens, credentials.user)
        if "jobs" not in answer.body:  # never an empty list for an answer that could not be read
            raise ConnectorError(f"slurmrestd's job list could not be read: {answer.text[:200] or 'no JSON'}")
        if version.lists_changes and unchanged(answer.body, since):
            return previous.records_now()
        last_update = number(answer.body.get("last_update")) if version.lists_changes else clock
        listing = Listing(records=tuple(records_of(version, answer, taken)),
                          highest=highest_job_id(raw_jobs(answer)),
                          last_update=last_update, taken=taken, api=version.name)
        with self._lock:
            if self._last is None or listing.taken >= self._last.taken:
                self._last = listing
        self.twins.listed(listing.records, listing.highest)
        return list(listing.records)


    def _controller_clock(self, version: ApiVersion, credentials) -> int | None:
        """slurmctld's clock now (``GET /diag``'s ``req_time``), for a version whose job list does not
        say when it was current; None when slurmctld did not tell (the next list is then asked whole)."""
        answer = self.client.get(version.diag_path, credentials, "reading slurmctld's clock")
        statistics = answer.body.get("statistics") if answer.ok else None
        return number(statistics.get("req_time")) if isinstance(statistics, dict) else None


def raw_jobs(answer: Answer) -> list[dict]:
    """The job records of an answer (``jobs``), as slurmrestd wrote them."""
    return [raw for raw in answer.body.get("jobs") or [] if isinstance(raw, dict)]


def records_of(version: ApiVersion, answer: Answer, now: float | None = None) -> list[JobRecord]:
    """The records of our jobs in an answer (``jobs``), their elapsed time as of ``now``."""
    now = time.time() if now is None else now
    return [record for raw in raw_jobs(answer) if (record := version.job_record(raw, now)) is not None]
