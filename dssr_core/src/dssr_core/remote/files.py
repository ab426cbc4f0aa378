"""A job's files on the cluster: the tail of its output, and their removal at ``/exitstatus``
(only once the output has reached DSSR).

A connector reaches them through an :class:`OutputAccess`. slurm-cli and gridengine always use
:class:`SshFiles` (the SSH connections that also run the scheduler's commands); slurmrestd uses it when
``JARVICE_SLURMRESTD_OUTPUT_ACCESS=ssh``, else one of :mod:`dssr_slurm.rest.files`.
"""

import logging
from collections.abc import Callable
from typing import Protocol

import attrs

from dssr_core.errors import ClusterUnavailable
from dssr_core.remote.jobs import scheduler_job_name
from dssr_core.remote.ssh import SshPool, command_message, quote_command
from dssr_core.remote.users import ClusterAccount

log = logging.getLogger(__name__)

@attrs.frozen
class JobFiles:
    """The files of one job: ``<scratch>/jarvice_<name>.<jobid>`` plus a suffix each."""

    base: str

    @property
    def output(self) -> str:
        return self.base + ".out"

    @property
    def helpers(self) -> tuple[str, ...]:
        """The job script, the launcher and rank 0's output (removed by the batch script)."""
        return (self.base + ".sh", self.base + ".task", self.base + ".rank0")

    def all(self) -> tuple[str, ...]:
        return (self.output, *self.helpers)


def files_prefix(scratch_dir: str, name: str) -> str:
    """``<scratch>/jarvice_<name>``; relative to the home directory when ``scratch_dir`` is empty."""
    file_name = scheduler_job_name(name)
    return f"{scratch_dir.rstrip('/')}/{file_name}" if scratch_dir else file_name


def job_files(scratch_dir: str, name: str, jobid: str) -> JobFiles:
    return JobFiles(f"{files_prefix(scratch_dir, name)}.{jobid}")



#: The exit status of :func:`tail_command` when the file does not exist.
NO_SUCH_FILE = 3


class OutputAccess(Protocol):
    """How a connector reads a job's output and removes the job's files."""

    def tail(self, user: str, path: str, lines: int) -> str | None:
        """The last ``lines`` lines of ``path``, read as the job's owner ``user``; None: no such file."""

    def collect(self, user: str, files: JobFiles, lines: int) -> str:
        """The tail of the job's output; once it is read, every file of the job removed (what stays
        is logged). Raises, removing nothing, when the output cannot be fetched."""

    def describe(self) -> str:
        """How the files are reached, one line for the init report."""


def tail_command(path: str, lines: int) -> str:
    """The last lines of a file; exit status 3 when the file does not exist."""
    return (f"[ -f {quote_command(path)} ] || exit {NO_SUCH_FILE}; "
            f"exec tail -n {int(lines)} -- {quote_command(path)}")


class SshFiles:
    """Over SSH on the cluster, as the account ``account_for`` gives for the job's owner."""

    def __init__(self, pool: SshPool, account_for: Callable[[str], ClusterAccount]):
        self.pool = pool
        self.account_for = account_for

    def tail(self, user: str, path: str, lines: int) -> str | None:
        result = self.pool.run(self.account_for(user), tail_command(path, lines))
        if result.exit_status == NO_SUCH_FILE:
            return None
        if not result.ok:
            raise ClusterUnavailable(f"tail failed on the cluster: {command_message(result)}")
        return result.stdout

    def collect(self, user: str, files: JobFiles, lines: int) -> str:
        """The output is read first, and the files are removed only once it is in hand: a read
        whose answer is lost (a dropped connection, a timeout) raises and leaves them all for
        the next ``/exitstatus``; an output that cannot be read is answered empty, its files kept."""
        account = self.account_for(user)
        read = self.pool.run(account, tail_command(files.output, lines))
        if not read.ok and read.exit_status != NO_SUCH_FILE:
            log.warning("exitstatus: the output of %s could not be read, its files stay: %s", files.base,
                        command_message(read))
            return ""
        output = read.stdout if read.ok else ""
        try:
            removed = self.pool.run(account, quote_command("rm", "-f", "--", *files.all()))
        except ClusterUnavailable as error:  # the output is in hand: answer it
            log.warning("exitstatus: the files of %s may not be removed: %s", files.base, error.message)
            return output
        if not removed.ok:
            log.warning("exitstatus: the files of %s were not all removed: %s", files.base,
                        command_message(removed))
        return output

    def describe(self) -> str:
        settings = self.pool.settings
        return f"ssh (as the job's owner on {settings.host}:{settings.port})"
