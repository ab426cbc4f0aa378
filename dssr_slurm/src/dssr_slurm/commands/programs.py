"""Slurm's command-line tools: the command lines DSSR runs and how their answers are read.

Every value that reaches the remote shell goes through ``shlex.quote`` (``quote_command``);
job ids are checked to be digits before they get here.
"""

import hashlib
import logging

from dssr_core.durations import parse_slurm_duration
from dssr_core.errors import ClusterUnavailable, ConnectorError, DssrError, SchedulerRejected
from dssr_core.remote.ssh import CommandResult, quote_command
from dssr_slurm.failures import is_unreachable, slurm_message, unreachable_or_failed
from dssr_slurm.jobs import JobRecord, interactive_fields, slurm_job_name, upstream_name
from dssr_slurm.jobspec import JobSpec
from dssr_slurm.nodelist import expand_nodelist
from dssr_slurm.states import LIVE_STATE_NAMES, state_code, state_name

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
EXISTING = "existing"
#: Where the submit locks are, relative to the submitting user's home.
LOCK_DIR = ".dssr/locks"
#: Exit statuses of the submit command's own steps (sbatch exits 0 or 1).
NO_FLOCK = 93
NO_LOCK_FILE = 94
LOCK_NOT_TAKEN = 95
SQUEUE_FAILED = 97


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
    """One remote command: under a lock, answer the id of a live job of this name, else ``sbatch``.

    The script comes on stdin. The lock makes check and ``sbatch`` one step for every DSSR
    replica: ``flock(1)`` on :func:`submit_lock` in the submitting user's home (shared by the
    login nodes; the chart's documentation requires it to support flock). Two replicas given the
    same job submit it as the same user, so they take the same lock. The lock is waited for
    ``lock_wait`` seconds at most. The umask makes the lock, the record and the job's output
    readable by their owner only (sbatch passes it on to the job).

    The check reads the name's ``record`` (beside the job's output) under
    the lock, so a retried submission never runs twice, without listing the whole queue:

    - no record (:func:`dssr_slurm.jobscript.submit_record`): no submission of this name got as
      far as sbatch; nothing to ask;
    - a job id: ``squeue --jobs`` of that one job (its name and a live state), so a job that
      has ended is submitted again;
    - ``?``: an sbatch whose answer was lost (it failed, or the connection dropped while it ran)
      may have made a job: a fresh ``squeue`` of every live job of the name, as before records.

    The record says ``?`` before ``sbatch`` runs, and the new id once it has answered.
    """
    live = quote_command("squeue", "--noheader", "--all", f"--states={LIVE_STATE_NAMES}",
                         f"--name={slurm_job_name(name)}", "--format=%i")
    lock = f'"$HOME"/{quote_command(submit_lock(name))}'
    record = quote_command(record)
    by_name = f"dssr_found=$({live} </dev/null) || exit {SQUEUE_FAILED}"
    failed = f'echo "$dssr_found" >&2; exit {SQUEUE_FAILED}'
    by_id = (f'dssr_found=$({live} --jobs="$dssr_id" </dev/null 2>&1) || case "$dssr_found" in '
             f'*"{INVALID_JOB_WORDS}"*) dssr_found= ;; *) {failed} ;; esac')
    return (f"command -v flock >/dev/null 2>&1 || exit {NO_FLOCK}; umask 077; "
            f'mkdir -p "$HOME"/{LOCK_DIR} && touch {lock} || exit {NO_LOCK_FILE}; '
            f"{{ flock -w {lock_wait:g} 9 || exit {LOCK_NOT_TAKEN}; "
            f"dssr_id=$(cat {record} 2>/dev/null); "
            f"case \"$dssr_id\" in '') ;; *[!0-9]*) {by_name} ;; *) {by_id} ;; esac; "
            f'if [ -n "$dssr_found" ]; then echo {EXISTING} $dssr_found; exit 0; fi; '
            f"echo '?' >{record}; "
            f"dssr_out=$(sbatch --parsable {quote_command(*sbatch_arguments)}); dssr_status=$?; "
            f'[ $dssr_status -ne 0 ] || echo "${{dssr_out%%;*}}" >{record}; '
            f'[ -z "$dssr_out" ] || echo "$dssr_out"; exit $dssr_status; }} 9>>{lock}')


def submit_lock(name: str) -> str:
    """The lock file of a job name, relative to the home directory: one of 256, by a hash of the
    name (a file per name would pile up; removing lock files races with their users)."""
    return f"{LOCK_DIR}/submit-{hashlib.sha256(name.encode()).hexdigest()[:2]}.lock"


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


def list_directory(root: str, path: str) -> str:
    """One level of ``root/path`` as ``type|mtime|size|name`` records ending in NUL.

    Exit status 3: no such directory; 4: it resolves outside ``root`` (a symbolic link).
    ``root`` empty means the home directory.
    """
    root_arg = root or "."
    target = f"{root_arg.rstrip('/')}/{path}" if path else root_arg
    return (f"dssr_root=$(realpath -e -- {quote_command(root_arg)}) && "
            f"dssr_dir=$(realpath -e -- {quote_command(target)}) && [ -d \"$dssr_dir\" ] || exit 3; "
            'case "$dssr_dir/" in "${dssr_root%/}"/*) ;; *) exit 4 ;; esac; '
            "exec find \"$dssr_dir\" -mindepth 1 -maxdepth 1 -printf '%Y|%T@|%s|%P\\0'")


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
    if result.exit_status in (NO_FLOCK, NO_LOCK_FILE, LOCK_NOT_TAKEN):
        raise _lock_failure(result, f"~/{submit_lock(name)}")
    if result.exit_status == SQUEUE_FAILED:
        raise unreachable_or_failed("squeue", result)
    if not result.ok:
        message = slurm_message(result)
        if is_unreachable(message):
            raise ClusterUnavailable(f"Slurm could not take the job: {message}")
        raise SchedulerRejected(f"Slurm refused the job: {message}")
    words = result.stdout.split()
    existing = bool(words) and words[0] == EXISTING
    jobid = (words[1] if existing and len(words) > 1 else words[0] if words else "").split(";")[0]
    if not jobid.isdigit():
        raise ConnectorError("sbatch answered no job id; the DSSR log has its output.")
    if result.stderr.strip():
        log.info("sbatch said: %s", slurm_message(result))
    return jobid, existing


def _lock_failure(result: CommandResult, lock: str) -> DssrError:
    words = " ".join(result.stderr.split())
    if result.exit_status == NO_FLOCK:
        return ConnectorError("flock(1) is not installed on the login node (Debian and RHEL: util-linux); "
                              "DSSR takes a lock with it so that two replicas never submit one job twice.")
    if result.exit_status == NO_LOCK_FILE:
        return ConnectorError(f"Cannot create the submit lock {lock} on the login node: "
                              f"{words or 'no reason given'}.")
    if words:  # flock itself failed: the file system does not lock
        return ConnectorError(f"flock(1) cannot lock {lock} on the login node ({words}); the home directory "
                              "must support flock, as the JARVICE chart's documentation requires.")
    return ClusterUnavailable(f"Another submission held the submit lock {lock} on the login node for longer "
                              "than DSSR waits (half of JARVICE_SLURM_COMMAND_TIMEOUT); try again.")


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
