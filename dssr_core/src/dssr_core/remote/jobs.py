"""What every connector to a batch scheduler knows of a job: its name there, its id, one status record."""

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

import attrs

from dssr_core.errors import InvalidRequest
from dssr_core.models import JOB_NAME, JobRef

#: Jobs are named ``jarvice_<name>`` in the scheduler so that administrators can tell them apart.
JOB_NAME_PREFIX = "jarvice_"
_JOB_ID = re.compile(r"\A[0-9]{1,12}\Z")
#: How a job's comment (Slurm's ``--comment``, Grid Engine's job context) remembers its service
#: port and upstream's job number, so that any DSSR replica finds an interactive job by its
#: number (its URL's).
SERVICE_PORT_KEY = "dssr-service-port"
JOB_NUMBER_KEY = "dssr-job-number"
_SERVICE_PORT = re.compile(rf"(?:^|[\s,;]){SERVICE_PORT_KEY}=([0-9]{{1,5}})(?=$|[\s,;|])")
_JOB_NUMBER = re.compile(rf"(?:^|[\s,;]){JOB_NUMBER_KEY}=([0-9]{{1,12}})(?=$|[\s,;|])")


def scheduler_job_name(name: str) -> str:
    """The scheduler's job name of upstream's job ``name``."""
    return JOB_NAME_PREFIX + name


def upstream_name(scheduler_name: str) -> str | None:
    """Upstream's name of a scheduler's job, or None when the job is not one of ours."""
    if not scheduler_name.startswith(JOB_NAME_PREFIX):
        return None
    name = scheduler_name[len(JOB_NAME_PREFIX):]
    return name if JOB_NAME.match(name) else None


def service_port_comment(port: int, number: int | None = None) -> str:
    """The comment that remembers an interactive job's service port and job number."""
    text = f"{SERVICE_PORT_KEY}={int(port)}"
    return text if number is None else f"{text} {JOB_NUMBER_KEY}={int(number)}"


def job_number(comment: object) -> int | None:
    """Upstream's job number a job's comment remembers; None when it has none (never fails)."""
    match = _JOB_NUMBER.search(comment) if isinstance(comment, str) else None
    return int(match.group(1)) if match else None


def interactive_fields(comment: object) -> dict:
    """The :class:`JobRecord` fields a job's comment gives: service port and job number."""
    return {"service_port": service_port(comment), "number": job_number(comment)}


def service_port(comment: object) -> int | None:
    """The service port a job's comment remembers; None when it has none or it is malformed.

    Other text in the comment is ignored; this never fails.
    """
    if not isinstance(comment, str):
        return None
    match = _SERVICE_PORT.search(comment)
    if match is None:
        return None
    port = int(match.group(1))
    return port if 1 <= port <= 65535 else None


def check_job_id(jobid: str) -> str:
    """``jobid`` when it is a scheduler's job id (digits), else InvalidRequest."""
    if not isinstance(jobid, str) or not _JOB_ID.match(jobid):
        raise InvalidRequest(f"jobid must be a Slurm job id (digits only), not {jobid!r:.40}.")
    return jobid


@attrs.frozen
class JobRecord:
    """One of our jobs as the scheduler reports it (a line of ``squeue``, ``sacct``, a REST job).

    ``state`` is a long state name (``RUNNING``); ``user`` the job's owner on the cluster.
    ``exit_code`` is known only from accounting. ``service_port`` is where an interactive job's
    web service listens on its first node, and ``number`` upstream's job number, both read
    from the job's comment (None: none).
    """

    jobid: str
    name: str
    user: str
    state: str
    elapsed_s: int = 0
    nodes: tuple[str, ...] = ()
    exit_code: int | None = None
    service_port: int | None = None
    number: int | None = None

    def is_for(self, job: JobRef) -> bool:
        """Whether this record is ``job``: same id AND same name (schedulers reuse ids)."""
        return self.jobid == job.jobid and self.name == job.name


Entry = TypeVar("Entry")


def matching(job: JobRef, entries: Iterable[Entry],
             record_of: Callable[[Entry], JobRecord | None] = lambda record: record) -> Entry | None:
    """The last of ``entries`` whose record is ``job`` (same id and name: an id reused is not ours).

    ``entries`` are records, or raw answers that ``record_of`` reads (None: not one of ours).
    """
    found = [entry for entry in entries if (record := record_of(entry)) is not None and record.is_for(job)]
    return found[-1] if found else None
