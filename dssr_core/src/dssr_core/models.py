"""Value objects that cross the line between the HTTP layer, executors and connectors.

The HTTP layer turns these into the contract's JSON; connectors and executors never build
ad-hoc tuples.
"""

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from dssr_core.durations import format_hms
from dssr_core.errors import InvalidRequest

if TYPE_CHECKING:
    from dssr_core.connector import Connector
    from dssr_core.executor import Executor

# \Z, not $: $ also matches before a final newline, and "job\n" would pass.
JOB_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
JOB_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_job_name(name: object, field: str = "name") -> str:
    """Return ``name`` when it is a contract job name, else raise :class:`InvalidRequest`."""
    if not isinstance(name, str) or not JOB_NAME.match(name):
        raise InvalidRequest(
            f"{field} must be 1 to 200 letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit; got {_shown(name)}."
        )
    return name


def check_job_id(jobid: object, field: str = "jobid") -> str:
    """Return ``jobid`` when it is a plausible downstream id, else raise InvalidRequest."""
    if isinstance(jobid, int) and not isinstance(jobid, bool) and jobid >= 0:
        jobid = str(jobid)
    if not isinstance(jobid, str) or not JOB_ID.match(jobid):
        raise InvalidRequest(
            f"{field} must be 1 to 64 letters, digits, '-', '_' or '.'; got {_shown(jobid)}."
        )
    return jobid


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@attrs.frozen
class JobRef:
    """The triple upstream uses to name a job: its name, its number and our job id."""

    name: str
    number: int
    jobid: str

    def __str__(self) -> str:
        return f"{self.name}/{self.number}/{self.jobid}"


@attrs.frozen
class JobFacts:
    """What the scheduler needs to know about a job, read from upstream's script.

    ``cores`` and ``gpus`` are per node; ``memory_gb`` per node; ``walltime_s`` seconds.
    ``exclusive`` is True unless the job asked for ``exclusive=False`` (GPU and interactive
    jobs stay exclusive). ``scheduler_options`` are ``(option, value)`` pairs from
    ``sbatch_<option>=<value>`` devices, option names already validated.
    """

    nodes: int = 1
    cores: int = 1
    gpus: int = 0
    memory_gb: int | None = None
    walltime_s: int | None = None
    licenses: str | None = None
    partition: str | None = None
    exclusive: bool = True
    interactive: bool = False
    overlay_mb: int | None = None
    scheduler_options: tuple[tuple[str, str], ...] = ()
    arch: str | None = None


@attrs.frozen
class ScriptRequest:
    """What an executor gets: upstream's decoded script template and the job's identity."""

    name: str
    number: int
    nodes: int
    template: str


@attrs.frozen
class RenderedJob:
    """An executor's answer: the script to run and the job's facts.

    ``success_marker`` is a line that rank 0 prints when the job succeeded (JARVICE apps print
    ``JARVICE_CMD_SUCCESS``); ``None`` means the script's own exit code decides.
    ``service_port`` is the port on the job's first node where an interactive job's web
    service listens; ``None`` when the job has none. Connectors use it to answer the
    ``url`` of ``/request/.../info``.
    """

    script: str
    facts: JobFacts
    success_marker: str | None = None
    service_port: int | None = None


@attrs.frozen
class Submission:
    """Everything a connector needs to submit one job.

    ``success_marker`` and ``service_port`` come from the executor's :class:`RenderedJob`:
    ``service_port`` is where an interactive job's web service listens on its first node
    (``None``: no web service), for the connector to remember with the job. ``bearer`` is
    upstream's bearer (a JWT) and ``bearer_claims`` its claims, checked when DSSR checks
    bearers (:mod:`dssr_core.bearer`); ``user_email`` is its e-mail claim.
    """

    name: str
    number: int
    script: str
    facts: JobFacts
    held: bool = False
    success_marker: str | None = None
    service_port: int | None = None
    user_email: str | None = None
    bearer: str | None = attrs.field(default=None, repr=False)
    bearer_claims: Mapping = attrs.field(factory=dict, repr=False)

    @property
    def fingerprint(self) -> str:
        """:func:`script_fingerprint` of ``script``: a connector keeps it with the job, to tell a
        retried submit from another job of the same name. ``.. versionadded:: 0.2``"""
        return script_fingerprint(self.script)


def script_fingerprint(script: str) -> str:
    """16 hex digits of the SHA-256 of ``script``: equal for the same script, never a secret's
    text. ``.. versionadded:: 0.2``"""
    return hashlib.sha256(script.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]


@attrs.frozen
class SubmitResult:
    """The connector's job id and the script it actually submitted; ``existing`` when a live job
    of that name was answered instead of a new one (a retried submit; counted as ``retried`` in
    ``dssr_submits_total``).

    .. versionchanged:: 0.2.0 ``existing``.
    """

    jobid: str
    script: str
    existing: bool = False


@attrs.frozen
class JobListing:
    """One line of ``/running`` or ``/queued``."""

    name: str
    jobid: str


@attrs.frozen
class RunStatus:
    """Where a running job runs and for how long it has run; a waiting job has run 0 s."""

    nodes: tuple[str, ...]
    elapsed_s: int

    @classmethod
    def waiting(cls, nodes: tuple[str, ...] = ()) -> "RunStatus":
        """A job the scheduler lists that does not run yet (pending, held): ``nodes`` as the
        scheduler lists them (usually none), 0 s."""
        return cls(nodes=tuple(nodes), elapsed_s=0)

    def as_contract(self, job: JobRef) -> list:
        return [list(self.nodes), format_hms(self.elapsed_s), str(job), None]


RC_BY_STATE: Mapping[str, int] = {
    "COMPLETED": 0,
    "FAILED": 1,
    "NODE_FAIL": 1,
    "OUT_OF_MEMORY": 1,
    "CANCELLED": -15,
    "DEADLINE": -15,
    "PREEMPTED": -15,
}


@attrs.frozen
class ExitStatus:
    """How a job ended. ``state`` is a Slurm-style state name (COMPLETED, FAILED, ...)."""

    state: str
    exit_code: int | None
    elapsed_s: int
    output: str = ""

    @property
    def rc(self) -> int:
        """The contract's return code for the state: 0, 1, -15 or -9."""
        return RC_BY_STATE.get(self.state.split()[0].upper() if self.state else "", -9)

    def as_contract(self) -> list:
        banner = f"<< termination state: {self.state} -- see STDOUT for job errors >>"
        return [self.rc, format_hms(self.elapsed_s), [self.output, banner]]

    @classmethod
    def unknown(cls) -> "ExitStatus":
        """The answer for a job the scheduler never ran or has forgotten."""
        return cls(state="UNKNOWN", exit_code=None, elapsed_s=0)


@attrs.frozen
class JobInfo:
    """The ``/request/.../info`` answer. ``url`` reaches an interactive job's web service."""

    url: str = ""
    about: str = ""
    help: str = ""

    def as_contract(self) -> dict:
        return {"about": self.about, "help": self.help, "url": self.url, "actions": {}}


@attrs.frozen
class JobEndpoint:
    """Where a running interactive job's web service is reached now: ``port`` on ``node``.

    ``node`` is a name or address as the connector's way in sees it (the login node for the
    Slurm connectors, this machine for the dummy); ``via`` says which way that is, for logs.
    """

    job: JobRef
    node: str
    port: int
    via: str = "direct"


@attrs.frozen
class DirEntry:
    """One entry of a ``pvcls`` listing; ``path`` is relative to the data root, with '/'."""

    path: str
    is_dir: bool
    mtime: int = 0
    size: int = 0

    def as_line(self, details: bool) -> str:
        shown = "/data/" + self.path.strip("/") + ("/" if self.is_dir else "")
        if details:
            return f"{self.mtime} {self.size} {shown}"
        return shown


@attrs.frozen
class RequestAnswer:
    """What ``/request/<name>/<number>/<jobid>/<method>`` sends back."""

    status: int = 200
    body: str | bytes = ""
    content_type: str = "text/plain"


BACKEND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")


def _backend_name(spec, attribute, name) -> None:
    if not isinstance(name, str) or not BACKEND_NAME.match(name):
        raise ValueError(f"A backend's name must be 1 to 50 letters, digits, '.', '_' or '-', "
                         f"not {_shown(name)}.")


def _subclass_of(base_name: str):
    """A validator: the value is a subclass of ``dssr_core.<base_name>`` (imported late: the base
    classes import this module)."""

    def validate(spec, attribute, backend) -> None:
        import dssr_core

        base = getattr(dssr_core, base_name)
        if not (isinstance(backend, type) and issubclass(backend, base)):
            raise TypeError(f"The backend of {type(spec).__name__} {spec.name!r} must be a subclass "
                            f"of dssr_core.{base_name}, not {_shown(backend)}.")

    return validate


@attrs.frozen
class ConnectorSpec:
    """A connector registered by a plugin.

    ``name`` is the one place the connector's name is written: users select it
    (``JARVICE_BAREMETAL_CONNECTOR``). ``backend`` is the connector class; DSSR builds it with
    ``backend.from_settings(settings)``.
    """

    name: str = attrs.field(validator=_backend_name)
    backend: type["Connector"] = attrs.field(validator=_subclass_of("Connector"))
    description: str


@attrs.frozen
class ExecutorSpec:
    """An executor registered by a plugin; ``backend.from_settings(settings)`` builds it.

    ``name`` is the one place the executor's name is written: users select it
    (``JARVICE_BAREMETAL_EXECUTOR``) and it is the key of upstream's ``hpc_script``.
    """

    name: str = attrs.field(validator=_backend_name)
    backend: type["Executor"] = attrs.field(validator=_subclass_of("Executor"))
    description: str
