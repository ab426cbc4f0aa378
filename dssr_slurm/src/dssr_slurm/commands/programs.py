"""Slurm's command-line tools: the command lines DSSR runs and how their answers are read.

Every value that reaches the remote shell goes through ``shlex.quote`` (``quote_command``);
job ids are checked to be digits before they get here.
"""

import logging

from dssr_core.durations import parse_slurm_duration
from dssr_core.remote.jobs import JobRecord, interactive_fields, scheduler_job_name, upstream_name
from dssr_core.remote.login import (  # noqa: F401 (LOCK_DIR, list_directory, ...: the tests' names)
    FIND_FAILED,
    LOCK_DIR,
    LOCK_NOT_TAKEN,
    list_directory,
    lock_failure,
    locked_submit,
    submit_answer,
    submit_lock,
)
from dssr_core.remote.ssh import CommandResult, quote_command
from dssr_core.remote.states import LIVE_STATE_NAMES, state_code, state_name
from dssr_slurm.failures import is_unreachable, unreachable_or_failed
from dssr_slurm.jobspec import JobSpec
from dssr_slurm.nodelist import expand_nodelist

log = logging.getLogger(__name__)

#: squeue's fields: job id, name, owner, long state, time used, node list, comment. Job names
#: of ours cannot hold ``|`` (dssr_core checks names), so it separates fields safely; the
#: comment, which may, comes last.
SQUEUE_FORMAT = "%i|%j|%u|%T|%M|%N|%k"
SQUEUE_FIELDS = 7
SACCT_FIELDS = "JobID,JobName,State,ExitCode,ElapsedRaw,User"
INVALID_JOB = "invalid job id specified"
#: squeue's words for a job id the controller does not know (any more).
INVALID_JOB_WORDS = "Invalid job id specified"


def squeue_all() -> str:
    """Every job of every user, finished ones included (for MinJobAge), one line each."""
    return quote_command("squeue", "--noheader", "--all", "--states=all", f"--format={SQUEUE_FORMAT}")


def squeue_job(jobid: str) -> str:
    return quote_command("squeue", "--noheader", "--all", "--states=all", f"--jobs={jobid}",
                         f"--format={SQUEUE_FORMAT}")


def sacct_job(jobid: str) -> str:
    return quote_command("sacct", "--allusers", f"--jobs={jobid}", "--allocations", "--noheader",
                         "--parsable2", f"--format={SACCT_FIELDS}")


def submit(name: str, sbatch_arguments: list[str], lock_wait: float, record: str) -> str:
    """One remote command: under the submit lock (:func:`dssr_core.remote.login.locked_submit`),
    answer the id of a live job of this name, else ``sbatch`` with the script on stdin.

    The name's ``record`` (:func:`dssr_core.remote.files.submit_record`) gives the job to ask
    about: ``squeue --jobs`` of that one job (its name and a live state; a job the controller
    forgot is none), which costs the same with 10 or 10,000 jobs queued. When the record says
    ``?`` (an sbatch whose answer was lost), a fresh ``squeue`` of every live job of the name
    (squeue lists a job as soon as sbatch has returned). squeue prints each live job's comment
    after its id: the script's fingerprint is there
    (:func:`dssr_core.remote.jobs.script_fingerprint_of`), to tell a retry from another job."""
    find_live = quote_command("squeue", "--noheader", "--all", f"--states={LIVE_STATE_NAMES}",
                              f"--name={scheduler_job_name(name)}", "--format=%i %k")
    find_job = (f'dssr_job=$({find_live} --jobs="$dssr_id" 2>&1) || case "$dssr_job" in '
                f'*"{INVALID_JOB_WORDS}"*) dssr_job= ;; *) echo "$dssr_job" >&2; exit 1 ;; esac; '
                'echo "$dssr_job"')
    return locked_submit(name, find_live, f"sbatch --parsable {quote_command(*sbatch_arguments)}", lock_wait,
                         record=record, find_job=find_job)


def sbatch_arguments(spec: JobSpec) -> list[str]:
    """sbatch's ``--option=value`` (or ``--flag``) arguments of ``spec``, unquoted (submit quotes them)."""
    options = [
        ("job-name", spec.name),
        ("output", spec.output),
        ("nodes", spec.nodes),
        ("ntasks", spec.tasks),
        ("partition", spec.partition),
        ("mem", f"{spec.memory_mb}M" if spec.memory_mb else None),
        ("gpus-per-node", spec.gpus_per_node),
        ("exclusive", spec.exclusive),
        ("time", slurm_time(spec.walltime_s) if spec.walltime_s else None),
        ("licenses", spec.licenses),
        ("hold", spec.held),
        ("comment", spec.comment),
        ("dependency", "singleton" if spec.singleton else None),
        *((device.option, device.value) for device in spec.devices),
    ]
    return [f"--{option}" if value is True else f"--{option}={value}"
            for option, value in options if value is not None and value is not False]


def slurm_time(seconds: int) -> str:
    """A walltime in Slurm's ``D-HH:MM:SS`` form."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def cluster_check() -> str:
    return "sinfo --version && sinfo --noheader --format='%D|%T'"


# Reading answers ------------------------------------------------------------------------


def parse_squeue(text: str) -> list[JobRecord]:
    """Our jobs (named ``jarvice_<name>``) in squeue's output; other lines are skipped."""
    records = []
    for line in text.splitlines():
        record = _squeue_record(line)
        if record is not None:
            records.append(record)
    return records


class SqueueReader:
    """Reads the snapshot's squeue listings, each distinct line once: a line the last listing had
    as it is keeps its record. A queued job's line does not change from one listing to the next
    (a running job's does, by its time used), so a refresh parses only what changed."""

    def __init__(self):
        self._last: dict[str, JobRecord | None] = {}

    def parse(self, text: str) -> list[JobRecord]:
        """:func:`parse_squeue` of ``text``."""
        last, seen = self._last, {}
        for line in text.splitlines():
            seen[line] = last[line] if line in last else _squeue_record(line)
        self._last = seen
        return [record for record in seen.values() if record is not None]


def _squeue_record(line: str) -> JobRecord | None:
    fields = line.split("|")
    if len(fields) > SQUEUE_FIELDS:
        # A '|' in the comment or in a job name (never one of ours): the line is ours only when
        # it reads as ours with the extra '|'s in the comment, the last field.
        fields = line.split("|", SQUEUE_FIELDS - 1)
        if state_code(fields[3]) is None:
            return None
    if len(fields) != SQUEUE_FIELDS or not fields[0].isdigit():
        return None
    jobid, slurm_name, user, state, elapsed, nodes, comment = fields
    name = upstream_name(slurm_name)
    if name is None:
        return None
    return JobRecord(jobid=jobid, name=name, user=user, state=state_name(state),
                     elapsed_s=_seconds(elapsed), nodes=expand_nodelist(nodes),
                     **interactive_fields(comment))


def parse_sacct(text: str) -> list[JobRecord]:
    """Our jobs in ``sacct --parsable2`` output of :data:`SACCT_FIELDS`."""
    records = []
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) != 6 or not fields[0].isdigit():
            continue
        jobid, slurm_name, state, exit_code, elapsed, user = fields
        name = upstream_name(slurm_name)
        if name is not None:
            records.append(JobRecord(jobid=jobid, name=name, user=user, state=state_name(state),
                                     elapsed_s=int(elapsed) if elapsed.isdigit() else 0,
                                     exit_code=_exit_code(exit_code)))
    return records


def parse_submit(result: CommandResult, name: str) -> tuple[str, bool]:
    """The job id from :func:`submit`'s answer for job ``name``, and whether it was an existing job."""
    return submit_answer(result, name, "Slurm", "sbatch", is_unreachable,
                         lambda failed: unreachable_or_failed("squeue", failed))


def is_invalid_job(result: CommandResult) -> bool:
    return not result.ok and INVALID_JOB in (result.stderr + result.stdout).lower()


def _seconds(text: str) -> int:
    try:
        return parse_slurm_duration(text)
    except ValueError:
        return 0


def _exit_code(text: str) -> int | None:
    code = text.split(":")[0]
    return int(code) if code.isdigit() else None
