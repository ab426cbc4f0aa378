"""The job logic every connector to a batch scheduler shares, whichever scheduler and however asked.

``slurm-cli`` (Slurm's commands over SSH), ``slurmrestd`` (Slurm's REST API) and ``gridengine``
(Grid Engine's commands over SSH) answer the job endpoints the same way:

- listings and run status come from one shared snapshot (:mod:`dssr_core.remote.snapshot`);
- a job is looked up in the snapshot, then at the controller, then in accounting, and a record
  is the job's only when both id and name match (schedulers reuse ids);
- submissions of one name wait for each other in this process, so that a retried submission
  finds the first one's job instead of racing it to the scheduler;
- ``/exitstatus`` of an ended job returns the tail of its output and removes its files;
- terminating or releasing a job that has already ended is not an error.

How the scheduler is asked is the subclass's: the methods under "What the scheduler answers".
States are the legacy API's words, which are Slurm's (:mod:`dssr_core.remote.states`): a
connector to another scheduler maps its states to them.
"""

import abc
import contextlib
import logging
import threading
from collections.abc import Iterator

from dssr_core.connector import Connector
from dssr_core.errors import JobNotFound, NotAvailable
from dssr_core.models import (
    ExitStatus,
    JobEndpoint,
    JobInfo,
    JobListing,
    JobRef,
    RequestAnswer,
    RunStatus,
    Submission,
    SubmitResult,
)
from dssr_core.remote.config import RemoteConfig
from dssr_core.remote.files import OutputAccess, job_files
from dssr_core.remote.jobs import JobRecord, check_job_id
from dssr_core.remote.openssh import OpenSshForwarder
from dssr_core.remote.snapshot import StatusSnapshot
from dssr_core.remote.states import is_final, is_live, is_queued, is_running

log = logging.getLogger(__name__)

#: How much of a job's output ``/exitstatus`` returns.
EXIT_OUTPUT_LINES = 10_000


class RemoteConnector(Connector):
    """The job endpoints of a connector to a batch scheduler. Thread-safe when the subclass's steps are.

    ``scheduler`` names the scheduler in messages (``Slurm``, ``Grid Engine``).

    The subclass's ``__init__`` calls this one, then sets ``config``, ``snapshot`` (a
    :class:`StatusSnapshot` over :meth:`_list_jobs`) and ``files`` (how a job's output is reached).
    """

    scheduler = "the scheduler"
    bearer_decides_account = True  # dssr_core.remote.users maps upstream's user to a cluster account
    config: RemoteConfig
    snapshot: StatusSnapshot
    files: OutputAccess

    def __init__(self):
        self._submitting = NameLocks()
        self._forwarder: OpenSshForwarder | None = None
        self._forwarder_lock = threading.Lock()

    # Jobs -------------------------------------------------------------------------------

    def submit(self, submission: Submission) -> SubmitResult:
        """A live job of this name is answered as it is (the subclass checks, fresh from the scheduler);
        submissions of one name at the same time are made one after the other."""
        with self._submitting.held(submission.name):
            return self._submit(submission)

    def running(self) -> list[JobListing]:
        return list(self.snapshot.get().running)

    def queued(self) -> list[JobListing]:
        return list(self.snapshot.get().queued)

    def runstatus(self, job: JobRef) -> RunStatus:
        """A job the scheduler lists as waiting has its nodes as listed and 0 s, as the original."""
        check_job_id(job.jobid)
        record = self.snapshot.get().find(job)
        if record is not None and is_queued(record.state):
            return RunStatus.waiting(record.nodes)
        if record is None or not is_running(record.state):
            raise JobNotFound(f"Job {job} is not running.")
        return RunStatus(nodes=record.nodes, elapsed_s=record.elapsed_s)

    def exitstatus(self, job: JobRef) -> ExitStatus:
        check_job_id(job.jobid)
        record = self._ended_or_fresh(job)
        if record is None:
            return ExitStatus.unknown()
        if not is_final(record.state):
            log.info("exitstatus: job %s is still %s; its files stay", job, record.state)
            return ExitStatus(state=record.state, exit_code=None, elapsed_s=record.elapsed_s)
        files = job_files(self.config.scratch_dir, job.name, job.jobid)
        output = self.files.collect(record.user, files, EXIT_OUTPUT_LINES)
        return ExitStatus(state=record.state, exit_code=record.exit_code, elapsed_s=record.elapsed_s,
                          output=output)

    def terminate(self, job: JobRef) -> None:
        record = self._live_record(job, "terminate")
        if record is not None:
            self._cancel(record)
            self.snapshot.invalidate()

    def release(self, job: JobRef) -> None:
        record = self._live_record(job, "release")
        if record is not None:
            self._release(record)
            self.snapshot.invalidate()

    def events(self, job: JobRef) -> str:
        check_job_id(job.jobid)
        text = self._events_text(job)
        if text is None:
            raise self._not_found(job)
        return text

    def tail(self, job: JobRef, lines: int) -> str:
        check_job_id(job.jobid)
        record = self._lookup(job)
        if record is None:
            raise NotAvailable(f"Job {job} is not known to {self.scheduler}, so it has no output.")
        path = job_files(self.config.scratch_dir, job.name, job.jobid).output
        text = self.files.tail(record.user, path, lines)
        if text is None:
            raise NotAvailable(f"Job {job} has no output (yet, or any more).")
        return text

    def request(self, job: JobRef, method: str, query: dict[str, list[str]]) -> RequestAnswer:
        check_job_id(job.jobid)  # every method, ping included, gets a job id
        return super().request(job, method, query)

    def info(self, job: JobRef) -> JobInfo:
        record = self._find(job)
        where = ", ".join(record.nodes) or "no node yet"
        about = f"{self.scheduler} job {record.jobid} of {record.user}: {record.state} on {where}"
        if record.service_port is None or not is_running(record.state) or not record.nodes:
            return JobInfo(about=about)
        if not self.config.proxied:
            return JobInfo(url=self.config.service_url_of(record.nodes[0], record.service_port), about=about)
        missing = self._no_proxy_reason()
        if missing:
            return JobInfo(about=about, help=missing)
        return JobInfo(url=self.config.jobs_domain.url_for(job.number), about=about)

    # Interactive jobs -------------------------------------------------------------------

    def interactive_endpoint(self, number: int) -> JobEndpoint | None:
        """A running job of ours with this number and a service port: its first node, from the snapshot."""
        found = [record for record in self.snapshot.get().records
                 if record.number == number and record.service_port is not None
                 and is_running(record.state) and record.nodes]
        if not found:
            return None
        record = max(found, key=lambda record: int(record.jobid))
        return JobEndpoint(JobRef(record.name, number, record.jobid), record.nodes[0], record.service_port,
                           via=self._forward_connection().where)

    def connect_interactive(self, endpoint: JobEndpoint):
        """A stream to the node's service port through the login node: a stdio forward on an OpenSSH
        master connection (:mod:`dssr_core.remote.openssh`), or with ``DSSR_PROXY_SSH_CLIENT=paramiko``
        a ``direct-tcpip`` channel on the pooled SSH connection."""
        connection = self._forward_connection()
        timeout = connection.settings.connect_timeout
        if self.config.proxy_ssh_client == "paramiko":
            return connection.open_forward((endpoint.node, endpoint.port), ("127.0.0.1", 0), timeout)
        with self._forwarder_lock:
            if self._forwarder is None:
                self._forwarder = OpenSshForwarder(connection.settings, connection.host_key)
            forwarder = self._forwarder
        return forwarder.open(endpoint.node, endpoint.port, timeout)

    def close(self) -> None:
        """Stop the OpenSSH master of the proxy, if one runs (the subclass closes the rest)."""
        with self._forwarder_lock:
            forwarder, self._forwarder = self._forwarder, None
        if forwarder is not None:
            forwarder.close()

    def _forward_connection(self):
        """The SSH connection job services are reached through; NotAvailable when there is none."""
        raise NotAvailable(self._no_proxy_reason() or "This connector has no SSH connection to jobs.")

    def _no_proxy_reason(self) -> str:
        """Why the proxy cannot reach this connector's jobs (what to set), or empty when it can."""
        return ""

    # What the scheduler answers (each connector its own way) ----------------------------

    @abc.abstractmethod
    def _submit(self, submission: Submission) -> SubmitResult:
        """The live job of this name when the scheduler has one (asked fresh), else a new job."""

    @abc.abstractmethod
    def _list_jobs(self) -> list[JobRecord]:
        """Every job of ours that the scheduler lists, finished ones it still shows included."""

    @abc.abstractmethod
    def _controller_record(self, job: JobRef) -> JobRecord | None:
        """The controller's record of ``job`` (same id and name), or None when it has none."""

    @abc.abstractmethod
    def _accounting_record(self, job: JobRef) -> JobRecord | None:
        """Accounting's record of ``job`` (same id and name), or None when it has none."""

    @abc.abstractmethod
    def _cancel(self, record: JobRecord) -> None:
        """Cancel a live job as its owner; a job that ended meanwhile is not a failure."""

    @abc.abstractmethod
    def _release(self, record: JobRecord) -> None:
        """Release a held job as its owner."""

    @abc.abstractmethod
    def _events_text(self, job: JobRef) -> str | None:
        """The scheduler's full record of ``job`` as text, or None when it does not know the job."""

    # Finding a job ----------------------------------------------------------------------

    def _find(self, job: JobRef) -> JobRecord:
        """The job's record, or JobNotFound."""
        check_job_id(job.jobid)
        record = self._lookup(job)
        if record is None:
            raise self._not_found(job)
        return record

    def _lookup(self, job: JobRef) -> JobRecord | None:
        """The snapshot first, then the controller, then accounting."""
        return self.snapshot.get().find(job) or self._fresh(job)

    def _ended_or_fresh(self, job: JobRef) -> JobRecord | None:
        """An ended state from the snapshot as it is (states never leave an end), else fresh."""
        current = self.snapshot.peek()
        record = current.find(job) if current is not None else None
        if record is not None and is_final(record.state):
            return record
        return self._fresh(job)

    def _fresh(self, job: JobRef) -> JobRecord | None:
        return self._controller_record(job) or self._accounting_record(job)

    def _not_found(self, job: JobRef) -> JobNotFound:
        return JobNotFound(f"{self.scheduler} knows no job {job.jobid} named {job.name}.")

    def _live_record(self, job: JobRef, action: str) -> JobRecord | None:
        """The job's record while it is queued or running; None (and a log line) once it ended."""
        record = self._find(job)
        if is_live(record.state):
            return record
        log.info("%s: job %s has already ended (%s)", action, job, record.state)
        return None


class NameLocks:
    """One lock per name, kept only while someone holds or waits for it."""

    def __init__(self):
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def held(self, name: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(name, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._locks[name]

