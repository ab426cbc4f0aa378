"""The base class of connectors: one method per legacy endpoint.

A connector is built once at start (``from_settings``) and then called from waitress's worker
threads at the same time: every method must be thread-safe.
"""

import abc
import logging
import warnings

from dssr_core.errors import InvalidRequest, JobConflict, NotAvailable
from dssr_core.models import (
    DirEntry,
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
from dssr_core.numbers import whole_number

log = logging.getLogger(__name__)

DEFAULT_TAIL_LINES = 100
MAX_TAIL_LINES = 100_000


class Connector(abc.ABC):
    """Talks to one scheduler. Subclasses implement the abstract methods; the others have
    defaults that answer what a connector without the feature should (a 404 with a sentence).

    Failures are raised as :mod:`dssr_core.errors` classes: ``ClusterUnavailable`` when the
    scheduler cannot be reached (never an empty answer), ``JobNotFound`` for a job it does
    not know, ``InvalidRequest`` / ``SchedulerRejected`` for what the caller must fix.
    The name users select the connector by is the one its plugin registers
    (:class:`dssr_core.models.ConnectorSpec`); the class does not repeat it.
    """

    #: Whether upstream's bearer (``Submission.bearer``) decides the cluster account a job runs
    #: as (the Slurm connectors map users from it); the init report warns about an unchecked
    #: bearer only then. ``.. versionadded:: 0.2``
    bearer_decides_account: bool = False

    @classmethod
    def from_settings(cls, settings):
        """Build the connector from :class:`dssr_core.settings.Settings`: ``cls(settings)``."""
        return cls(settings)

    def __init__(self, settings=None):
        """Takes nothing. A connector written for 0.1 passes ``settings``: it is kept as
        ``self.settings``, as 0.1 did, with a ``DeprecationWarning`` (removed in 0.3)."""
        if settings is not None:
            warnings.warn(
                f"{type(self).__name__}: Connector.__init__(settings) is deprecated since DSSR 0.2 and "
                "goes in 0.3; call super().__init__() and read settings in from_settings(settings) "
                "with settings.read(Setting(...)).", DeprecationWarning, stacklevel=2)
            self.settings = settings

    # Jobs: every connector implements these ---------------------------------------------

    @abc.abstractmethod
    def submit(self, submission: Submission) -> SubmitResult:
        """Submit the job; a live job of the same name is returned instead (a retried submit)
        when it has the same script, else :func:`check_retried_submit` raises ``JobConflict``."""

    @abc.abstractmethod
    def running(self) -> list[JobListing]:
        """The jobs of this downstream that run."""

    @abc.abstractmethod
    def queued(self) -> list[JobListing]:
        """The jobs of this downstream that wait (held jobs included)."""

    @abc.abstractmethod
    def runstatus(self, job: JobRef) -> RunStatus:
        """Where the job runs and for how long; ``RunStatus.waiting()`` while it waits.

        Raise ``JobNotFound`` when the job is not known or has ended (the contract answers
        nulls).
        """

    @abc.abstractmethod
    def exitstatus(self, job: JobRef) -> ExitStatus:
        """How the job ended, then remove its files; a job not known: ``ExitStatus.unknown()``."""

    @abc.abstractmethod
    def terminate(self, job: JobRef) -> None:
        """Cancel the job; it stays in ``running`` until its processes are gone."""

    @abc.abstractmethod
    def release(self, job: JobRef) -> None:
        """Let a held job start."""

    @abc.abstractmethod
    def check(self) -> str:
        """A live test of the cluster; return a one-line summary or raise ClusterUnavailable."""

    # Jobs: defaults ---------------------------------------------------------------------

    def ended(self) -> list[JobListing]:
        """The jobs of this downstream that ended and whose exit status was not collected
        (``/exitstatus`` removes a job's files), oldest first: ``GET /ended`` and ``dssr ended``.
        By default a 404 with a sentence. ``.. versionadded:: 0.2``"""
        raise NotAvailable("This connector cannot list the jobs that ended and were not collected.")

    def events(self, job: JobRef) -> str:
        """What the scheduler says of the job, as text; by default a 404 with a sentence."""
        raise NotAvailable(f"This connector cannot tell what the scheduler says of job {job}.")

    def tail(self, job: JobRef, lines: int) -> str:
        """The last ``lines`` lines of the job's output; ``NotAvailable`` when there is none."""
        raise NotAvailable(f"Job {job} has no output.")

    def info(self, job: JobRef) -> JobInfo:
        """What ``/request/.../info`` answers; by default no URL."""
        return JobInfo()

    def screenshot(self, job: JobRef) -> bytes:
        """A PNG of an interactive job's screen; by default a 404 with a sentence."""
        raise NotAvailable(f"Job {job} has no screenshot.")

    # Interactive jobs ---------------------------------------------------------------------

    def interactive_endpoint(self, number: int) -> JobEndpoint | None:
        """Where interactive job ``number`` (upstream's job number) is reachable now, or None.

        None unless the job is one of this DSSR's, running, and has a service port. The front
        listener asks this for every request to a job URL and again while connections stay
        open, so it must be cheap (answer from the status snapshot, not a fresh query).
        The default: no job is reachable.
        """
        return None

    def connect_interactive(self, endpoint: JobEndpoint):
        """A new stream to ``endpoint``: an object with ``recv``, ``sendall``, ``fileno``,
        ``settimeout`` and ``close`` (a socket or a paramiko channel).

        Raise ``NotAvailable`` with a sentence when this connector cannot reach job services,
        ``ClusterUnavailable`` when the way in is down, ``OSError`` when nothing listens.
        """
        raise NotAvailable("This connector cannot reach interactive jobs.")

    def request(self, job: JobRef, method: str, query: dict[str, list[str]]) -> RequestAnswer:
        """Answer ``/request/<name>/<number>/<jobid>/<method>`` from the methods above.

        No method, or one the contract does not list, answers 200 with an empty body, as the
        original does (upstream's portal shows a 4xx as an error).
        """
        if method in ("ping", "connect"):
            return RequestAnswer()
        if method in ("shutdown", "abort"):
            self.terminate(job)
            return RequestAnswer()
        if method == "info":
            return RequestAnswer(body=self.info(job).as_contract(), content_type="application/json")
        if method == "tail":
            return RequestAnswer(body=self.tail(job, _lines(query)))
        if method == "screenshot":
            return RequestAnswer(body=self.screenshot(job), content_type="image/png")
        if method:
            log.info("request %r for job %s: not a method DSSR knows; answered empty", method, job)
        else:
            log.info("request without a method for job %s; answered empty", job)
        return RequestAnswer()

    # Cluster: defaults ------------------------------------------------------------------

    def pvcls(self, path: str, details: bool) -> list[DirEntry]:
        """List one level of ``path`` under the data root (``Forbidden`` outside it)."""
        raise NotAvailable("This connector has no data listing.")

    def online(self, host: str, status: str) -> None:
        log.info("upstream reports host %s as %s", host, status)

    def gc(self) -> None:
        """Housekeeping and a live check; raise ``ClusterUnavailable`` when unreachable."""
        self.check()

    def report(self) -> list[tuple[str, str]]:
        """Connection settings for the init report, as (label, value); never a secret."""
        return []

    def close(self) -> None:  # noqa: B027 (a default that does nothing, not an abstract method)
        """Release connections and threads at shutdown; jobs keep running. May be called twice."""


def check_retried_submit(name: str, jobid: str, first: str | None, again: str) -> None:
    """A submit of ``name`` found its live job ``jobid``: return when it is a retried submit of
    that job, else raise ``JobConflict`` (409) with a sentence that names the job.

    ``first`` is the fingerprint (:func:`dssr_core.models.script_fingerprint`) the job was
    submitted with, None when the scheduler does not keep one (then the job is answered, as a
    retry); ``again`` is the new submission's. Every connector compares here, so that all answer
    the same. ``.. versionadded:: 0.2``
    """
    if first is not None and first != again:
        raise JobConflict(
            f"A job named {name} is live already (job id {jobid}) and was submitted with another "
            f"script; only a retry of the same script answers that job. Choose another name, or "
            f"terminate job {jobid} first.")


def _lines(query: dict[str, list[str]]) -> int:
    values = query.get("lines") or [str(DEFAULT_TAIL_LINES)]
    lines = whole_number(values[-1])
    if lines is None or not 0 < lines <= MAX_TAIL_LINES:
        raise InvalidRequest(f"qs.lines must be a whole number from 1 to {MAX_TAIL_LINES}.")
    return lines
