"""The job's output for ``tail`` and for ``/exitstatus``, and removing the job's files after it.

slurmrestd has no call that reads a file, so the output is reached another way
(``JARVICE_SLURMRESTD_OUTPUT_ACCESS``):

- ``ssh``: over SSH to the cluster as the job's owner (the key from the users ID mapping, else
  the service account's), with slurm-cli's :class:`dssr_core.remote.files.SshFiles`;
- ``shared``: the scratch directory is mounted on DSSR's host too
  (``JARVICE_SLURMRESTD_SHARED_SCRATCH_DIR``, default the same path), and DSSR may read and
  remove the users' files there;
- ``none`` (the default): no output; ``tail`` answers 404 with a sentence saying how to
  enable it, and the files stay where the job wrote them.
"""

import logging
import os
from collections.abc import Callable

from dssr_core.errors import NotAvailable
from dssr_core.remote.files import JobFiles
from dssr_core.remote.users import ClusterAccount, UserMap
from dssr_core.textfiles import last_lines

log = logging.getLogger(__name__)

HOW_TO_ENABLE = ("The slurmrestd connector cannot read job output: slurmrestd serves no files. Set "
                 "JARVICE_SLURMRESTD_OUTPUT_ACCESS=ssh (with JARVICE_SLURM_CLUSTER_ADDR, "
                 "JARVICE_SLURM_SSH_USER and JARVICE_SLURM_SSH_PKEY) or =shared (with the scratch "
                 "directory mounted on DSSR's host) to enable tail.")


class NoOutputAccess:
    """No way to the files: tail is a 404 that says how to enable it."""

    def tail(self, user: str, path: str, lines: int) -> str | None:
        raise NotAvailable(HOW_TO_ENABLE)

    def collect(self, user: str, files: JobFiles, lines: int) -> str:
        log.debug("exitstatus: no output access; the files of %s stay", files.base)
        return ""

    def describe(self) -> str:
        return "none (tail answers 404; set JARVICE_SLURMRESTD_OUTPUT_ACCESS=ssh or shared)"


class SharedOutputAccess:
    """The cluster's scratch directory, mounted on DSSR's host (possibly at another path)."""

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


def ssh_account_for(user_map: UserMap | None, service: ClusterAccount) -> Callable[[str], ClusterAccount]:
    """Who reads a job's files over SSH: its owner when the mapping holds their key, else ``service``.

    slurmrestd's mapping needs no keys (tokens act for users), so an entry may have none.
    """
    def account_for(user: str) -> ClusterAccount:
        entry = user_map.by_user(user) if user_map is not None else None
        if entry is not None and entry.account.private_key:
            return entry.account
        return service

    return account_for
