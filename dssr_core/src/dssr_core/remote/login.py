"""What a connector runs on the login node whatever its scheduler: the submit lock, the listing of
the data root, and the keys checked at start.

The submit lock (:func:`locked_submit`) makes "is there a live job of this name? else submit" one
step for every DSSR replica: ``flock(1)`` on one of 256 files in the submitting user's home
(shared by the login nodes; the chart's documentation requires it to support flock). The
scheduler's own commands fill in the two halves.
"""

import hashlib
import logging
from collections.abc import Callable

from dssr_core.errors import ClusterUnavailable, ConnectorError, DssrError, SchedulerRejected, SettingsError
from dssr_core.models import DirEntry
from dssr_core.remote.ssh import CommandResult, SshSettings, command_message, load_private_key, quote_command

log = logging.getLogger(__name__)

#: Where the submit locks are, relative to the submitting user's home.
LOCK_DIR = ".dssr/locks"
#: What :func:`locked_submit` answers first when a live job of the name exists.
EXISTING = "existing"
#: Exit statuses of the submit command's own steps (the schedulers' submit commands exit 0 to 2).
NO_FLOCK = 93
NO_LOCK_FILE = 94
LOCK_NOT_TAKEN = 95
FIND_FAILED = 97


def submit_lock(name: str) -> str:
    """The lock file of a job name, relative to the home directory: one of 256, by a hash of the
    name (a file per name would pile up; removing lock files races with their users)."""
    return f"{LOCK_DIR}/submit-{hashlib.sha256(name.encode()).hexdigest()[:2]}.lock"


def locked_submit(name: str, find_live: str, submit: str, lock_wait: float, *, record: str | None = None,
                  find_job: str | None = None) -> str:
    """One remote command: under the lock of ``name``, answer ``existing <id>`` when a live job of
    that name exists, else run ``submit`` (which reads the script on stdin).

    Without ``record``, ``find_live`` (a command or a pipeline, reading /dev/null) prints the id
    of a live job of the name, if any. With ``record`` (:func:`dssr_core.remote.files.submit_record`:
    a file the command keeps, holding the id of the name's last job), the check asks about that
    one job instead of the whole queue: no record, nothing to ask (no submission of the name got
    as far as ``submit``); an id, ``find_job`` (which reads it from ``$dssr_id``) prints it when
    that job is still live; ``?`` (written before ``submit`` runs, so left when its answer was
    lost), ``find_live``. ``submit`` must then print the new id first (``sbatch --parsable``;
    up to a ``;``), which the record keeps.

    ``find_live`` and ``find_job`` must fail (exit status not 0) when they cannot ask the scheduler;
    the whole command then exits :data:`FIND_FAILED`. The lock is waited for ``lock_wait`` seconds
    at most. The umask makes the lock, the record and the job's output readable by their owner only
    (the scheduler passes it on to the job).
    """
    lock = f'"$HOME"/{quote_command(submit_lock(name))}'
    by_name = f"dssr_found=$({{ {find_live}; }} </dev/null) || exit {FIND_FAILED}"
    if record is None:
        check, run = by_name, submit
    else:
        record = quote_command(record)
        by_id = f"dssr_found=$({{ {find_job}; }} </dev/null) || exit {FIND_FAILED}"
        check = (f"dssr_found=; dssr_id=$(cat {record} 2>/dev/null); "
                 f"case \"$dssr_id\" in '') ;; *[!0-9]*) {by_name} ;; *) {by_id} ;; esac")
        run = (f"echo '?' >{record}; dssr_out=$({submit}); dssr_status=$?; "
               f'[ $dssr_status -ne 0 ] || echo "${{dssr_out%%;*}}" >{record}; '
               f'[ -z "$dssr_out" ] || echo "$dssr_out"; exit $dssr_status')
    return (f"command -v flock >/dev/null 2>&1 || exit {NO_FLOCK}; umask 077; "
            f'mkdir -p "$HOME"/{LOCK_DIR} && touch {lock} || exit {NO_LOCK_FILE}; '
            f"{{ flock -w {lock_wait:g} 9 || exit {LOCK_NOT_TAKEN}; {check}; "
            f'if [ -n "$dssr_found" ]; then echo {EXISTING} $dssr_found; exit 0; fi; '
            f"{run}; }} 9>>{lock}")


def lock_failure(result: CommandResult, name: str) -> DssrError | None:
    """The error when :func:`locked_submit` failed at its lock, else None."""
    lock = f"~/{submit_lock(name)}"
    words = " ".join(result.stderr.split())
    if result.exit_status == NO_FLOCK:
        return ConnectorError("flock(1) is not installed on the login node (Debian and RHEL: util-linux); "
                              "DSSR takes a lock with it so that two replicas never submit one job twice.")
    if result.exit_status == NO_LOCK_FILE:
        return ConnectorError(f"Cannot create the submit lock {lock} on the login node: "
                              f"{words or 'no reason given'}.")
    if result.exit_status != LOCK_NOT_TAKEN:
        return None
    if words:  # flock itself failed: the file system does not lock
        return ConnectorError(f"flock(1) cannot lock {lock} on the login node ({words}); the home directory "
                              "must support flock, as the JARVICE chart's documentation requires.")
    return ClusterUnavailable(f"Another submission held the submit lock {lock} on the login node for longer "
                              "than DSSR waits (half of JARVICE_SLURM_COMMAND_TIMEOUT); try again.")


def submit_answer(result: CommandResult, name: str, scheduler: str, submitter: str,
                  unreachable: Callable[[str], bool], find_failed: Callable[[CommandResult], Exception],
                  ) -> tuple[str, bool]:
    """The job id :func:`locked_submit` answered for job ``name`` (the submit command's first word,
    up to a ``;`` or ``.``, or the existing job's), and whether it was an existing job.

    ``scheduler`` and ``submitter`` (``sbatch``, ``qsub``) name them in errors; ``unreachable``
    tells the scheduler's words for "not reached" (503) from a refusal (422); ``find_failed`` is
    the error of a failed look for a live job.
    """
    failure = lock_failure(result, name)
    if failure is not None:
        raise failure
    if result.exit_status == FIND_FAILED:
        raise find_failed(result)
    if not result.ok:
        message = command_message(result)
        if unreachable(message):
            raise ClusterUnavailable(f"{scheduler} could not take the job: {message}")
        raise SchedulerRejected(f"{scheduler} refused the job: {message}")
    words = result.stdout.split()
    existing = bool(words) and words[0] == EXISTING
    jobid = (words[1] if existing and len(words) > 1 else words[0] if words else "")
    jobid = jobid.split(";")[0].split(".")[0]  # sbatch --parsable: <id>;<cluster>; qsub: <id>.<tasks>
    if not jobid.isdigit():
        raise ConnectorError(f"{submitter} answered no job id; the DSSR log has its output.")
    if result.stderr.strip():
        log.info("%s said: %s", submitter, command_message(result))
    return jobid, existing


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


def dir_entries(path: str, listing: str) -> list[DirEntry]:
    """The entries of :func:`list_directory`'s answer for ``path``, sorted by path."""
    entries = []
    for item in listing.split("\0"):
        kind, _, rest = item.partition("|")
        mtime, _, rest = rest.partition("|")
        size, _, name = rest.partition("|")
        if not name:
            continue
        entries.append(DirEntry(path=f"{path}/{name}" if path else name, is_dir=kind == "d",
                                mtime=int(float(mtime or 0)), size=int(size or 0)))
    return sorted(entries, key=lambda entry: entry.path)


def check_keys(ssh: SshSettings, user_map, connector: str) -> None:
    """Every key must be usable at start, not at a user's first job."""
    load_private_key(ssh.service_key, "JARVICE_SLURM_SSH_PKEY")
    for entry in user_map.entries if user_map is not None else ():
        if entry.account.private_key is None:
            raise SettingsError(f"The users ID mapping entry of {entry.mail} has no ssh_private_key_b64; "
                                f"the {connector} connector needs one for every user.")
        load_private_key(entry.account.private_key, f"The SSH key of {entry.mail} in the users ID mapping")
