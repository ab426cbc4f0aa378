"""The base class of connectors: one method per legacy endpoint.

A connector is built once at start (``from_settings``) and then called from waitress's worker
threads at the same time: every method must be thread-safe.
"""

import logging

from dssr_core.errors import InvalidRequest, NotAvailable
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

log = logging.getLogger(__name__)

DEFAULT_TAIL_LINES = 100


class Connector:
    """Talks to one scheduler. Subclasses implement every method that raises here.

    Failures are raised as :mod:`dssr_core.errors` classes: ``ClusterUnavailable`` when the
    scheduler cannot be reached (never an empty answer), ``JobNotFound`` for a job it does
    not know, ``InvalidRequest`` / ``SchedulerRejected`` for what the caller must fix.
    """

    #: The name under which the connector is registered, set by the subclass.
    name = "connector"

    @classmethod
    def from_settings(cls, settings):
        """Build the connector from :class:`dssr_core.settings.Settings`."""
        return cls(settings)

    def __init__(self, settings):
        self.settings = settings

    # Jobs -------------------------------------------------------------------------------

    def submit(self, submission: Submission) -> SubmitResult:
        raise NotImplementedError

    def running(self) -> list[JobListing]:
        raise NotImplementedError

    def queued(self) -> list[JobListing]:
        raise NotImplementedError

    def runstatus(self, job: JobRef) -> RunStatus:
        """Raise ``JobNotFound`` when the job is not running (the contract answers nulls)."""
        raise NotImplementedError

    def exitstatus(self, job: JobRef) -> ExitStatus:
        """How the job ended, then remove its files. Unknown -> ``ExitStatus.unknown()``."""
        raise NotImplementedError

    def terminate(self, job: JobRef) -> None:
        raise NotImplementedError

    def release(self, job: JobRef) -> None:
        raise NotImplementedError

    def events(self, job: JobRef) -> str:
        raise NotImplementedError

    def tail(self, job: JobRef, lines: int) -> str:
        """The last ``lines`` lines of the job's output; ``NotAvailable`` when there is none."""
        raise NotAvailable(f"Job {job} has no output.")

    def info(self, job: JobRef) -> JobInfo:
        return JobInfo()

    def screenshot(self, job: JobRef) -> bytes:
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
        raise NotAvailable(f"The {self.name} connector cannot reach interactive jobs.")

    def request(self, job: JobRef, method: str, query: dict[str, list[str]]) -> RequestAnswer:
        """Answer ``/request/<name>/<number>/<jobid>/<method>`` from the methods above."""
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
        raise NotAvailable(
            f"Unknown request method {method!r}; use ping, connect, info, tail, "
            "screenshot, shutdown or abort."
        )

    # Cluster ----------------------------------------------------------------------------

    def pvcls(self, path: str, details: bool) -> list[DirEntry]:
        """List one level of ``path`` under the data root (``Forbidden`` outside it)."""
        raise NotAvailable("This connector has no data listing.")

    def online(self, host: str, status: str) -> None:
        log.info("upstream reports host %s as %s", host, status)

    def gc(self) -> None:
        """Housekeeping and a live check; raise ``ClusterUnavailable`` when unreachable."""
        self.check()

    def check(self) -> str:
        """A live test of the cluster; return a one-line summary or raise ClusterUnavailable."""
        raise NotImplementedError

    def report(self) -> list[tuple[str, str]]:
        """Connection settings for the init report, as (label, value); never a secret."""
        return []

    def close(self) -> None:
        """Release connections and threads at shutdown."""


def _lines(query: dict[str, list[str]]) -> int:
    values = query.get("lines") or [str(DEFAULT_TAIL_LINES)]
    text = str(values[-1])
    if not text.isdigit() or not 0 < int(text) <= 100_000:
        raise InvalidRequest(f"qs.lines must be a whole number from 1 to 100000, not {text!r}.")
    return int(text)
