"""A job's facts -> Slurm's submission options, as ``(option, value)`` pairs.

Shared by every Slurm connector: the CLI turns the pairs into ``sbatch --option=value``
arguments (:func:`sbatch_arguments`); a REST connector maps the same pairs to its fields.
"""

import re

from dssr_core.errors import InvalidRequest
from dssr_core.models import JobFacts
from dssr_slurm.jobs import service_port_comment, slurm_job_name
from dssr_slurm.jobscript import output_pattern

#: What a ``sbatch_<option>`` device value may hold: no quote, space, ``$``, backtick, ``;``,
#: backslash or redirection, so that a value reads the same to Slurm, to a shell and to a log.
_OPTION_VALUE = re.compile(r"^[A-Za-z0-9._:,@+/=%*\[\]&|!()~^-]{1,256}$")

#: Options a device may not set on top of those dssr_core already refuses: they read files
#: or images of the caller's choosing, or send the job to another cluster than the one
#: DSSR watches.
REFUSED_OPTIONS = frozenset({"bb", "bbf", "container", "container-id", "clusters", "cluster-constraint",
                             "nodefile"})

Options = list[tuple[str, str | None]]


def submission_options(facts: JobFacts, *, name: str, scratch_dir: str, held: bool,
                       service_port: int | None = None) -> Options:
    """The options of one submission, in a stable order; ``None`` marks a flag.

    ``service_port`` (an interactive job's web service) is remembered in the job's comment,
    so that any DSSR replica can read it back from Slurm.
    """
    options: Options = [
        ("job-name", slurm_job_name(name)),
        ("output", output_pattern(scratch_dir, name)),
        ("nodes", str(facts.nodes)),
        ("ntasks", str(facts.cores * facts.nodes)),
    ]
    if facts.partition:
        options.append(("partition", facts.partition))
    if facts.memory_gb:
        options.append(("mem", f"{facts.memory_gb}G"))
    if facts.gpus:
        options.append(("gpus-per-node", str(facts.gpus)))
    if facts.exclusive:
        options.append(("exclusive", None))
    if facts.walltime_s:
        options.append(("time", slurm_time(facts.walltime_s)))
    if facts.licenses:
        options.append(("licenses", facts.licenses))
    if held:
        options.append(("hold", None))
    if service_port is not None:
        options.append(("comment", service_port_comment(service_port)))
    options.extend(device_option(option, value) for option, value in facts.scheduler_options)
    return options


def device_option(option: str, value: str) -> tuple[str, str]:
    """A ``sbatch_<option>=<value>`` device, checked; InvalidRequest when it is not allowed."""
    if option in REFUSED_OPTIONS:
        raise InvalidRequest(f"Device sbatch_{option} is not allowed: it would read files or images "
                             "of the job's choosing or leave the cluster DSSR watches.")
    if not _OPTION_VALUE.match(value) or value.startswith("-"):
        raise InvalidRequest(
            f"Device sbatch_{option} has a value that is not allowed: use letters, digits and "
            ". _ : , @ + / = % * [ ] & | ! ( ) ~ ^ - only (no space, quote, $, `, ; or \\), "
            "not starting with '-'."
        )
    return option, value


def slurm_time(seconds: int) -> str:
    """A walltime in Slurm's ``D-HH:MM:SS`` form."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def sbatch_arguments(options: Options) -> list[str]:
    """``--option=value`` (or ``--option``) for each pair, unquoted (``ssh.quote_command`` quotes them)."""
    return [f"--{option}" if value is None else f"--{option}={value}" for option, value in options]

