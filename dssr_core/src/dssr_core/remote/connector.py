"""A connector that runs its scheduler's commands on a login node over SSH (``slurm-cli``,
``gridengine``): everything but the scheduler's words.

Jobs are submitted as the portal user's mapped cluster account; everything later on a job
(terminate, release, events, tail, collecting its files) runs as the job's owner as the
scheduler reports it, with that owner's key from the mapping. The subclass supplies the command
lines and how their answers read (:class:`RemoteConnector`'s steps, plus
:meth:`SshConnector._submit_command`, :meth:`SshConnector._submit_answer`,
:meth:`SshConnector._failed` and :meth:`SshConnector._is_gone`).
"""

import abc
import logging

from dssr_core import metrics
from dssr_core.audit import audit, portal_user_of
from dssr_core.connector import check_retried_submit
from dssr_core.errors import ClusterUnavailable, Forbidden, NotAvailable
from dssr_core.models import DirEntry, Submission, SubmitResult
from dssr_core.remote.base import RemoteConnector
from dssr_core.remote.config import RemoteConfig
from dssr_core.remote.files import SshFiles
from dssr_core.remote.jobs import JobRecord
from dssr_core.remote.login import check_keys, dir_entries, list_directory
from dssr_core.remote.snapshot import StatusSnapshot
from dssr_core.remote.ssh import CommandResult, SshPool, SshSettings
from dssr_core.remote.users import Accounts, ClusterAccount, load_user_map

log = logging.getLogger(__name__)


class SshConnector(RemoteConnector):
    """Thread-safe: one SSH connection per cluster user, one shared snapshot.

    ``connector_name`` names the connector in messages about its settings; ``submit_program``
    is the operation a submission is counted as in the metrics (``sbatch``, ``qsub``).
    """

    connector_name = "this"
    submit_program = "submit"

    def __init__(self, settings):
        super().__init__()
        self.config = RemoteConfig.from_settings(settings)
        self.ssh_settings = SshSettings.from_settings(settings)
        user_map = load_user_map(settings)
        check_keys(self.ssh_settings, user_map, self.connector_name)
        self.accounts = Accounts(self.ssh_settings.service_account, user_map)
        self.ssh = SshPool(self.ssh_settings)
        self.files = SshFiles(self.ssh, self.accounts.for_owner)
        self.snapshot = StatusSnapshot(self._list_jobs, self.config.status_interval)

    def _submit(self, submission: Submission) -> SubmitResult:
        account = self.accounts.for_submission(submission)
        command, script = self._submit_command(submission)
        result = self._run(account, command, self.submit_program, stdin=script)
        jobid, existing = self._submit_answer(result, submission.name)
        if existing:
            check_retried_submit(submission.name, jobid, self._submitted_fingerprint(result),
                                 submission.fingerprint)
            log.info("job %s/%s is already in %s as %s; not submitted again",
                     submission.name, submission.number, self.scheduler, jobid)
        else:
            audit("submit", jobid, submission.name, account.user, portal_user_of(submission))
        self.snapshot.invalidate()
        return SubmitResult(jobid=jobid, script=submission.script, existing=existing)

    def pvcls(self, path: str, details: bool) -> list[DirEntry]:
        result = self._run(self.accounts.service, list_directory(self.config.data_root, path), "find",
                           expected=(3, 4))
        if result.exit_status == 3:
            raise NotAvailable(f"There is no directory /data/{path} to list.")
        if result.exit_status == 4:
            raise Forbidden(f"/data/{path} leads outside the data root; listings stay inside it.")
        if not result.ok:
            raise self._failed("find", result)
        return dir_entries(path, result.stdout)

    def report(self) -> list[tuple[str, str]]:
        ssh = self.ssh_settings
        return [
            ("cluster", f"{ssh.host}:{ssh.port} over SSH as {ssh.service_user} ({self.scheduler})"),
            ("host key", ssh.host_key_check.describe()),
            ("users ID mapping", self.accounts.describe()),
            ("scratch dir", self.config.scratch_dir or "the job user's home directory"),
            ("data root", self.config.data_root or "the service account's home directory"),
            ("status interval", f"{self.config.status_interval:g} s"),
            ("command timeout", f"{ssh.command_timeout:g} s"),
            *self._report_lines(),
            *self.config.chart_report(),
        ]

    def close(self) -> None:
        super().close()
        self.ssh.close()

    def _forward_connection(self):
        return self.ssh.connection(self.accounts.service)

    def _run(self, account: ClusterAccount, command: str, operation: str, stdin: str | None = None,
             expected: tuple[int, ...] = ()) -> CommandResult:
        """Run ``command`` as ``account``, counted as the scheduler's command ``operation`` (metrics):
        an exit status that is not 0, nor one of ``expected``, nor a job the scheduler no longer
        knows, is a failure, and one the scheduler could not be reached for makes it down."""
        with metrics.scheduler_call(operation) as call:
            result = self.ssh.run(account, command, stdin=stdin)
            if not (result.ok or result.exit_status in expected or self._is_gone(result)):
                call.failed(unreachable=isinstance(self._failed(operation, result), ClusterUnavailable))
        return result

    def _on_job(self, record: JobRecord, command: str, program: str, action: str) -> None:
        """Run ``command`` as the job's owner; a job the scheduler no longer knows is not a failure."""
        account = self.accounts.for_owner(record.user)
        result = self._run(account, command, program.split(" ", 1)[0])
        if not result.ok and not self._is_gone(result):
            raise self._failed(program, result)
        audit(action, record.jobid, record.name, account.user)

    # The scheduler's words --------------------------------------------------------------

    @abc.abstractmethod
    def _submit_command(self, submission: Submission) -> tuple[str, str]:
        """The command that submits (under :func:`dssr_core.remote.login.locked_submit`) and the
        batch script it reads on stdin; InvalidRequest for what the scheduler cannot do."""

    @abc.abstractmethod
    def _submit_answer(self, result: CommandResult, name: str) -> tuple[str, bool]:
        """The job id the submit command answered, and whether it was a live job of the name."""

    @abc.abstractmethod
    def _failed(self, program: str, result: CommandResult) -> Exception:
        """The error (503 with the scheduler's words) for a command that failed where it should not."""

    @abc.abstractmethod
    def _is_gone(self, result: CommandResult) -> bool:
        """Whether a failed command on a job failed because the scheduler no longer knows it."""

    def _submitted_fingerprint(self, result: CommandResult) -> str | None:
        """The script fingerprint the live job of the name was submitted with, from the submit
        command's answer; None when the scheduler keeps none (the job is then answered as a retry)."""
        return None

    def _report_lines(self) -> list[tuple[str, str]]:
        """The init report's lines of the scheduler's own settings."""
        return []
