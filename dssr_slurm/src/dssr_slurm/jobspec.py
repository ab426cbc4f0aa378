"""One submission as Slurm is asked to run it: a typed spec built once, and every rule of devices.

Both Slurm connectors build the same :class:`JobSpec` from a submission (:func:`job_spec`) and
render it in their own words: slurm-cli as sbatch arguments
(:func:`dssr_slurm.commands.programs.sbatch_arguments`), slurmrestd as each API version's JSON
(:mod:`dssr_slurm.rest.versions`). Numbers stay numbers on the way: nothing is written as text
and read back.

The ``sbatch_<option>=<value>`` devices (:mod:`dssr_core.facts` checks only their syntax) are
checked here, while the spec is built and so before anything reaches Slurm:

- the option is not one DSSR sets itself or one that acts outside the job (:data:`FORBIDDEN`,
  :data:`LEAVING`);
- the value reads the same to Slurm, a shell and a log (:data:`DEVICE_VALUE`);
- the value of a numeric option of :data:`REST_FIELDS` is a whole number;
- slurmrestd takes only the options of :data:`REST_FIELDS` (:func:`rest_device_fields`);
  slurm-cli passes any other allowed one as ``--<option>=<value>``.
"""

import re
from collections.abc import Mapping

import attrs

from dssr_core.errors import InvalidRequest
from dssr_core.models import Submission
from dssr_core.remote.jobs import scheduler_job_name, service_port_comment
from dssr_slurm.jobscript import output_pattern

#: sbatch options DSSR sets from the spec; ``comment`` holds an interactive job's service port.
SET_BY_DSSR = frozenset("job-name output nodes ntasks partition mem gpus-per-node exclusive time "
                        "licenses hold comment".split())
#: Options a device may not set: DSSR sets them itself, or they would run a command of the
#: caller's, change identity, or write outside the job's own files.
FORBIDDEN = SET_BY_DSSR | frozenset("wrap error input chdir uid gid parsable export export-file "
                                    "get-user-env wait test-only array dependency".split())
#: Options a device may not set because they read files or images of the caller's choosing, or
#: send the job to another cluster than the one DSSR watches.
LEAVING = frozenset({"bb", "bbf", "container", "container-id", "clusters", "cluster-constraint",
                     "nodefile"})
#: What a device's value may hold: no quote, space, ``$``, backtick, ``;``, backslash or
#: redirection (and, checked apart, no leading ``-``).
DEVICE_VALUE = re.compile(r"^[A-Za-z0-9._:,@+/=%*\[\]&|!()~^-]{1,256}$")
#: The devices slurmrestd takes: option -> (field of its job description, type of the value).
#: The fields have the same name and type in v0.0.38 to v0.0.45.
REST_FIELDS: dict[str, tuple[str, type]] = {
    "account": ("account", str),
    "qos": ("qos", str),
    "reservation": ("reservation", str),
    "constraint": ("constraints", str),
    "wckey": ("wckey", str),
    "cpus-per-task": ("cpus_per_task", int),
    "ntasks-per-node": ("tasks_per_node", int),
    "nice": ("nice", int),
}


@attrs.frozen
class Device:
    """One checked ``sbatch_<option>=<value>`` device; ``value`` has its option's type."""

    option: str
    value: str | int


@attrs.frozen
class JobSpec:
    """What one submission asks of Slurm, whichever way Slurm is reached.

    ``name`` is the Slurm job name (``jarvice_<name>``); ``output`` sbatch's output pattern
    (``%j`` for the job id); ``tasks`` counts every node's; ``memory_mb`` and ``gpus_per_node``
    are per node. None, False or empty means the job does not ask, and Slurm's default holds.
    ``comment`` remembers an interactive job's service port and job number. ``working_directory`` and
    ``environment`` are what slurmrestd must be told; sbatch takes both from the login.
    ``singleton``: Slurm's ``dependency=singleton``, the job cannot start while another job of
    its name and user runs or waits with a lower id (slurmrestd's guard against twins).
    """

    name: str
    output: str
    nodes: int
    tasks: int
    partition: str | None = None
    memory_mb: int | None = None
    gpus_per_node: int | None = None
    exclusive: bool = False
    walltime_s: int | None = None
    licenses: str | None = None
    held: bool = False
    comment: str | None = None
    devices: tuple[Device, ...] = ()
    working_directory: str | None = None
    environment: tuple[tuple[str, str], ...] = ()
    singleton: bool = False


def job_spec(submission: Submission, scratch_dir: str, *, working_directory: str | None = None,
             environment: Mapping[str, str] | None = None, singleton: bool = False) -> JobSpec:
    """The spec of ``submission``, its output in ``scratch_dir``; InvalidRequest for a device not allowed."""
    facts = submission.facts
    port = submission.service_port
    return JobSpec(
        name=scheduler_job_name(submission.name),
        output=output_pattern(scratch_dir, submission.name),
        nodes=facts.nodes,
        tasks=facts.cores * facts.nodes,
        partition=facts.partition,
        memory_mb=facts.memory_gb * 1024 if facts.memory_gb else None,
        gpus_per_node=facts.gpus or None,
        exclusive=facts.exclusive,
        walltime_s=facts.walltime_s or None,
        licenses=facts.licenses,
        held=submission.held,
        comment=service_port_comment(port, submission.number) if port is not None else None,
        devices=tuple(device(option, value) for option, value in facts.scheduler_options),
        working_directory=working_directory,
        environment=tuple(sorted((environment or {}).items())),
        singleton=singleton,
    )


def device(option: str, value: str) -> Device:
    """The ``sbatch_<option>=<value>`` device, checked and typed; InvalidRequest when it is not allowed."""
    if option in FORBIDDEN:
        raise InvalidRequest(f"Device sbatch_{option} is not allowed: DSSR sets --{option} itself "
                             "or it would act outside the job.")
    if option in LEAVING:
        raise InvalidRequest(f"Device sbatch_{option} is not allowed: it would read files or images "
                             "of the job's choosing or leave the cluster DSSR watches.")
    if not DEVICE_VALUE.match(value) or value.startswith("-"):
        raise InvalidRequest(
            f"Device sbatch_{option} has a value that is not allowed: use letters, digits and "
            ". _ : , @ + / = % * [ ] & | ! ( ) ~ ^ - only (no space, quote, $, `, ; or \\), "
            "not starting with '-'."
        )
    _, kind = REST_FIELDS.get(option, (option, str))
    if kind is int and not value.isdigit():
        raise InvalidRequest(f"Device sbatch_{option} needs a whole number, not {value!r}.")
    return Device(option, int(value) if kind is int else value)


def rest_device_fields(devices: tuple[Device, ...]) -> dict[str, str | int]:
    """The devices as fields of slurmrestd's job description; InvalidRequest for one it does not take."""
    fields = {}
    for item in devices:
        if item.option not in REST_FIELDS:
            supported = ", ".join(f"sbatch_{name}" for name in sorted(REST_FIELDS))
            raise InvalidRequest(f"Device sbatch_{item.option} is not supported by the slurmrestd "
                                 f"connector; it supports {supported}.")
        fields[REST_FIELDS[item.option][0]] = item.value
    return fields
