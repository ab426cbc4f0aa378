"""sbatch options (from :mod:`dssr_slurm.options`, shared with slurm-cli) -> one version-free job spec.

The slurm-cli connector passes the options to ``sbatch``; slurmrestd takes JSON fields instead.
This module reads the same ``(option, value)`` pairs into :class:`JobSpec`, and each API
version's adapter (:mod:`dssr_slurm.rest.versions`) writes the spec in its own JSON.
"""

import re

import attrs

from dssr_core.errors import InvalidRequest
from dssr_slurm.options import Options

#: ``sbatch_<option>`` devices slurmrestd takes, option -> (JSON field, type). The fields have the
#: same name and type in v0.0.38 to v0.0.42.
DEVICE_FIELDS: dict[str, tuple[str, type]] = {
    "account": ("account", str),
    "qos": ("qos", str),
    "reservation": ("reservation", str),
    "constraint": ("constraints", str),
    "comment": ("comment", str),
    "dependency": ("dependency", str),
    "wckey": ("wckey", str),
    "cpus-per-task": ("cpus_per_task", int),
    "ntasks-per-node": ("tasks_per_node", int),
    "nice": ("nice", int),
}
_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{2}):(\d{2})$")
_MEMORY = re.compile(r"^(\d+)([KMGT]?)$")
_MEGABYTES = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


@attrs.frozen
class JobSpec:
    """What one submission asks of Slurm, independent of the API version."""

    name: str
    output: str
    nodes: int
    tasks: int
    working_directory: str
    environment: tuple[tuple[str, str], ...]
    partition: str | None = None
    memory_mb: int | None = None
    gpus_per_node: int | None = None
    exclusive: bool = False
    time_minutes: int | None = None
    licenses: str | None = None
    held: bool = False
    extra: tuple[tuple[str, str | int], ...] = ()


def job_spec(options: Options, *, working_directory: str, environment: dict[str, str]) -> JobSpec:
    """The spec of ``options`` (:func:`dssr_slurm.options.submission_options`)."""
    values: dict[str, object] = {"extra": []}
    for option, value in options:
        _read_option(values, option, value)
    return JobSpec(working_directory=working_directory, environment=tuple(sorted(environment.items())),
                   **{key: tuple(value) if key == "extra" else value for key, value in values.items()})


def _read_option(values: dict, option: str, value: str | None) -> None:
    simple = {"job-name": "name", "output": "output", "partition": "partition", "licenses": "licenses"}
    if option in simple:
        values[simple[option]] = value
    elif option in ("nodes", "ntasks", "gpus-per-node"):
        values[{"nodes": "nodes", "ntasks": "tasks", "gpus-per-node": "gpus_per_node"}[option]] = int(value)
    elif option == "mem":
        values["memory_mb"] = memory_mb(value)
    elif option == "time":
        values["time_minutes"] = minutes(value)
    elif option in ("exclusive", "hold"):
        values["exclusive" if option == "exclusive" else "held"] = True
    elif option in DEVICE_FIELDS:
        field, kind = DEVICE_FIELDS[option]
        values["extra"].append((field, _typed(option, value, kind)))
    else:
        supported = ", ".join(f"sbatch_{name}" for name in sorted(DEVICE_FIELDS))
        raise InvalidRequest(f"Device sbatch_{option} is not supported by the slurmrestd connector; "
                             f"it supports {supported}.")


def _typed(option: str, value: str, kind: type) -> str | int:
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise InvalidRequest(f"Device sbatch_{option} needs a whole number, not {value!r}.") from None
    return value


def minutes(text: str) -> int:
    """``D-HH:MM:SS`` (:func:`dssr_slurm.options.slurm_time`) -> whole minutes, rounded up."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not a Slurm time: {text!r}")
    days, hours, mins, secs = (int(part or 0) for part in match.groups())
    seconds = ((days * 24 + hours) * 60 + mins) * 60 + secs
    return max(1, -(-seconds // 60))


def memory_mb(text: str) -> int:
    """sbatch's ``--mem`` value (``8G``, ``512M``, ``100``) -> megabytes."""
    match = _MEMORY.match(text.upper())
    if match is None:
        raise ValueError(f"not a Slurm memory size: {text!r}")
    return max(1, int(int(match.group(1)) * _MEGABYTES[match.group(2)]))
