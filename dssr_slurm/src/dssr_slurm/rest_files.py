"""The job's output for ``tail`` and for ``/exitstatus``, and removing the job's files after it.

slurmrestd has no call that reads a file, so the output is reached another way
(``JARVICE_SLURMRESTD_OUTPUT_ACCESS``):

- ``ssh``: over SSH to the cluster as the job's owner (the key from the users ID mapping, else
  the service account's), with the same commands as slurm-cli;
- ``shared``: the scratch directory is mounted on DSSR's host too
  (``JARVICE_SLURMRESTD_SHARED_SCRATCH_DIR``, default the same path), and DSSR may read and
  remove the users' files there;
- ``none`` (the default): no output; ``tail`` answers 404 with a sentence saying how to
  enable it, and the files stay where the job wrote them.
"""

import logging
import os

from dssr_core.errors import NotAvailable
from dssr_slurm import cli_commands
from dssr_slurm.jobscript import JobFiles
from dssr_slurm.ssh import SshPool
from dssr_slurm.users import ClusterAccount, UserMap

log = logging.getLogger(__name__)

HOW_TO_ENABLE = ("The slurmrestd connector cannot read job output: slurmrestd serves no files. Set "
                 "JARVICE_SLURMRESTD_OUTPUT_ACCESS=ssh (with JARVICE_SLURM_CLUSTER_ADDR, "
                 "JARVICE_SLURM_SSH_USER and JARVICE_SLURM_SSH_PKEY) or =shared (with the scratch "
                 "directory mounted on DSSR's host) to enable tail.")
_BLOCK = 64 * 1024


class NoOutputAccess:
    """No way to the files: tail is a 404 that says how to enable it."""

    name = "none"

    def tail(self, user: str, path: str, lines: int) -> str | None:
        raise NotAvailable(HOW_TO_ENABLE)

    def collect(self, user: str, files: JobFiles, lines: int) -> str:
        log.debug("exitstatus: no output access; the files of %s stay", files.base)
        return ""

    def describe(self) -> str:
        return "none (tail answers 404; set JARVICE_SLURMRESTD_OUTPUT_ACCESS=ssh or shared)"

    def close(self) -> None:
        pass


class SharedOutputAccess:
    """The cluster's scratch directory, mounted on DSSR's host (possibly at another path)."""

    name = "shared"

    def __init__(self, cluster_dir: str, local_dir: str):
        self.cluster_dir = cluster_dir.rstrip("/")
        self.local_dir = local_dir.rstrip("/")

    def local(self, path: str) -> str:
        if not path.startswith(self.cluster_dir + "/"):
            raise ValueError(f"{path} is outside {self.cluster_dir}")
        return self.local_dir + path[len(self.cluster_dir):]

    def tail(self, user: str, path: str, lines: int) -> str | None:
        try:
            return last_lines(self.local(path), lines)
        except FileNotFoundError:
            return None

    def collect(self, user: str, files: JobFiles, lines: int) -> str:
        output = self.tail(user, files.output, lines) or ""
        for path in files.all():
            try:
                os.remove(self.local(path))
            except FileNotFoundError:
                pass
            except OSError as error:
                log.warning("exitstatus: %s was not removed: %s", path, error.strerror)
        return output

    def describe(self) -> str:
        where = "" if self.local_dir == self.cluster_dir else f" mounted at {self.local_dir}"
        return f"shared ({self.cluster_dir}{where} on DSSR's host)"

    def close(self) -> None:
        pass


class SshOutputAccess:
    """Over SSH as the job's owner, with slurm-cli's tail and collect commands."""

    name = "ssh"

    def __init__(self, pool: SshPool, user_map: UserMap | None, service: ClusterAccount):
        self.pool = pool
        self.user_map = user_map
        self.service = service

    def account(self, user: str) -> ClusterAccount:
        entry = self.user_map.by_user(user) if self.user_map is not None else None
        if entry is not None and entry.account.private_key:
            return entry.account
        return self.service

    def tail(self, user: str, path: str, lines: int) -> str | None:
        result = self.pool.run(self.account(user), cli_commands.tail(path, lines))
        if result.exit_status == 3:
            return None
        if not result.ok:
            raise cli_commands.unreachable_or_failed("tail", result)
        return result.stdout

    def collect(self, user: str, files: JobFiles, lines: int) -> str:
        result = self.pool.run(self.account(user), cli_commands.collect(files.output, lines, files.all()))
        if not result.ok:
            log.warning("exitstatus: the files of %s were not all removed: %s",
                        files.base, cli_commands.slurm_message(result))
        return result.stdout

    def describe(self) -> str:
        settings = self.pool.settings
        return f"ssh (as the job's owner on {settings.host}:{settings.port})"

    def close(self) -> None:
        pass  # the pool is closed by the connector


def last_lines(path: str, lines: int) -> str:
    """The last ``lines`` lines of a file, reading backwards in blocks."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= lines:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    text = data.decode("utf-8", "replace")
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)
