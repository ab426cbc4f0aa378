"""The ``slurm-cli`` connector: Slurm over SSH with sbatch, squeue, sacct, scancel and scontrol.

Jobs are submitted as the portal user's mapped cluster account; everything later on a job
(terminate, release, events, tail, collecting its files) runs as the job's owner as Slurm
reports it, with that owner's key from the mapping. Listings and run status come from one
shared snapshot (one ``squeue`` per interval); the job logic both Slurm connectors share is in
:mod:`dssr_core.remote.base`.
"""

import logging

from dssr_core import metrics
from dssr_core.audit import audit, portal_user_of
from dssr_core.connector import check_retried_submit
from dssr_core.errors import Forbidden, NotAvailable
from dssr_core.models import DirEntry, JobRef, Submission, SubmitResult
from dssr_core.remote.config import RemoteConfig
from dssr_core.remote.files import SshFiles, submit_record
from dssr_core.remote.jobs import JobRecord, matching, script_fingerprint_of
from dssr_core.remote.login import check_keys, dir_entries, list_directory
from dssr_core.remote.snapshot import StatusSnapshot
from dssr_core.remote.ssh import CommandResult, SshPool, SshSettings, command_message, quote_command
from dssr_core.remote.users import Accounts, ClusterAccount, load_user_map
from dssr_slurm.base import SlurmConnector
from dssr_slurm.commands import programs as commands
from dssr_slurm.failures import is_unreachable, unreachable_or_failed
from dssr_slurm.jobscript import batch_script
from dssr_slurm.jobspec import job_spec

log = logging.getLogger(__name__)


class SlurmCliConnector(SlurmConnector):
    """Slurm over SSH. Thread-safe: one SSH connection per cluster user, one shared snapshot."""

    def __init__(self, settings):
        super().__init__()
        self.config = RemoteConfig.from_settings(settings)
        self.ssh_settings = SshSettings.from_settings(settings)
        user_map = load_user_map(settings)
        check_keys(self.ssh_settings, user_map, "slurm-cli")
        self.accounts = Accounts(self.ssh_settings.service_account, user_map)
        self.ssh = SshPool(self.ssh_settings)
        self.files = SshFiles(self.ssh, self.accounts.for_owner)
        self.listings = commands.SqueueReader()
        self.snapshot = StatusSnapshot(self._list_jobs, self.config.status_interval)

    # Jobs -------------------------------------------------------------------------------

    def _submit(self, submission: Submission) -> SubmitResult:
        spec = job_spec(submission, self.config.scratch_dir)
        script = batch_script(submission.script, self.config.scratch_dir, submission.name,
                              submission.success_marker)
        account = self.accounts.for_submission(submission)
        command = commands.submit(submission.name, commands.sbatch_arguments(spec),
                                  lock_wait=self.ssh_settings.command_timeout / 2,
                                  record=submit_record(self.config.scratch_dir, submission.name))
        result = self._run(account, command, "sbatch", stdin=script)
        jobid, existing = commands.parse_submit(result, submission.name)
        if existing:  # the first live job's comment comes first in squeue's answer
            check_retried_submit(submission.name, jobid, script_fingerprint_of(result.stdout),
                                 submission.fingerprint)
            log.info("job %s/%s is already in Slurm as %s; not submitted again",
                     submission.name, submission.number, jobid)
        else:
            audit("submit", jobid, submission.name, account.user, portal_user_of(submission))
        self.snapshot.invalidate()
        return SubmitResult(jobid=jobid, script=submission.script, existing=existing)

    # Cluster ----------------------------------------------------------------------------

    def pvcls(self, path: str, details: bool) -> list[DirEntry]:
        listing = list_directory(self.config.data_root, path)
        result = self._run(self.accounts.service, listing, "find", expected=(3, 4))
        if result.exit_status == 3:
            raise NotAvailable(f"There is no directory /data/{path} to list.")
        if result.exit_status == 4:
            raise Forbidden(f"/data/{path} leads outside the data root; listings stay inside it.")
        if not result.ok:
            raise unreachable_or_failed("find", result)
        return dir_entries(path, result.stdout)

    def check(self) -> str:
        result = self._run(self.accounts.service, commands.cluster_check(), "sinfo")
        if not result.ok:
            raise unreachable_or_failed("sinfo", result)
        version, *nodes = [line for line in result.stdout.splitlines() if line.strip()]
        states = ", ".join(" ".join(line.split("|")) for line in nodes) or "no node"
        return f"{version.strip()} as {self.ssh_settings.service_user}; nodes: {states}"

    def report(self) -> list[tuple[str, str]]:
        ssh = self.ssh_settings
        return [
            ("cluster", f"{ssh.host}:{ssh.port} over SSH as {ssh.service_user}"),
            ("host key", ssh.host_key_check.describe()),
            ("users ID mapping", self.accounts.describe()),
            ("scratch dir", self.config.scratch_dir or "the job user's home directory"),
            ("data root", self.config.data_root or "the service account's home directory"),
            ("status interval", f"{self.config.status_interval:g} s"),
            ("command timeout", f"{ssh.command_timeout:g} s"),
            *self.config.chart_report(),
        ]

    def close(self) -> None:
        super().close()
        self.ssh.close()

    def _forward_connection(self):
        return self.ssh.connection(self.accounts.service)

    # What Slurm's commands answer -------------------------------------------------------

    def _list_jobs(self) -> list[JobRecord]:
        result = self._run(self.accounts.service, commands.squeue_all(), "squeue")
        if not result.ok:
            raise unreachable_or_failed("squeue", result)
        return self.listings.parse(result.stdout)

    def _controller_record(self, job: JobRef) -> JobRecord | None:
        result = self._run(self.accounts.service, commands.squeue_job(job.jobid), "squeue")
        if commands.is_invalid_job(result):
            return None
        if not result.ok:
            raise unreachable_or_failed("squeue", result)
        return matching(job, commands.parse_squeue(result.stdout))

    def _accounting_record(self, job: JobRef) -> JobRecord | None:
        result = self._run(self.accounts.service, commands.sacct_job(job.jobid), "sacct")
        if not result.ok:
            raise unreachable_or_failed("sacct", result)
        return matching(job, commands.parse_sacct(result.stdout))

    def _cancel(self, record: JobRecord) -> None:
        self._on_job(record, quote_command("scancel", record.jobid), "scancel", "terminate")

    def _release(self, record: JobRecord) -> None:
        command = quote_command("scontrol", "release", record.jobid)
        self._on_job(record, command, "scontrol release", "release")

    def _events_text(self, job: JobRef) -> str | None:
        record = self._lookup(job)
        if record is None:
            return None
        result = self._run(self.accounts.for_owner(record.user),
                           quote_command("scontrol", "show", "job", record.jobid), "scontrol")
        if result.ok:
            return result.stdout
        if commands.is_invalid_job(result):  # gone from the controller: accounting has the rest
            return _accounting_text(record)
        raise unreachable_or_failed("scontrol show job", result)

    # Helpers ----------------------------------------------------------------------------

    def _run(self, account: ClusterAccount, command: str, operation: str, stdin: str | None = None,
             expected: tuple[int, ...] = ()) -> CommandResult:
        """Run ``command`` as ``account``, counted as the Slurm command ``operation`` (metrics): an
        exit status that is not 0, one of ``expected``, or Slurm's "invalid job id" is an error."""
        with metrics.scheduler_call(operation) as call:
            result = self.ssh.run(account, command, stdin=stdin)
            if not (result.ok or result.exit_status in expected or commands.is_invalid_job(result)):
                call.failed(unreachable=is_unreachable(command_message(result)))
        return result

    def _on_job(self, record: JobRecord, command: str, program: str, action: str) -> None:
        """Run ``command`` as the job's owner; a job the controller no longer knows is not a failure."""
        account = self.accounts.for_owner(record.user)
        result = self._run(account, command, program.split(" ", 1)[0])
        if not result.ok and not commands.is_invalid_job(result):
            raise unreachable_or_failed(program, result)
        audit(action, record.jobid, record.name, account.user)


def _accounting_text(record: JobRecord) -> str:
    exit_code = "" if record.exit_code is None else f" ExitCode={record.exit_code}"
    return (f"JobId={record.jobid} JobName=jarvice_{record.name} UserId={record.user} "
            f"JobState={record.state}{exit_code} ElapsedSeconds={record.elapsed_s}\n")
