"""The ``slurm-cli`` connector: Slurm over SSH with sbatch, squeue, sacct, scancel and scontrol.

Jobs are submitted as the portal user's mapped cluster account; everything later on a job
(terminate, release, events, tail, collecting its files) runs as the job's owner as Slurm
reports it, with that owner's key from the mapping. Listings and run status come from one
shared snapshot (one ``squeue`` per interval). What is not Slurm's is
:class:`dssr_core.remote.connector.SshConnector`'s (shared with ``gridengine``).
"""

import logging

from dssr_core.models import JobRef, Submission
from dssr_core.remote.connector import SshConnector
from dssr_core.remote.files import submit_record
from dssr_core.remote.jobs import JobRecord, matching, script_fingerprint_of
from dssr_core.remote.ssh import CommandResult, quote_command
from dssr_slurm.commands import programs as commands
from dssr_slurm.failures import unreachable_or_failed
from dssr_slurm.jobscript import batch_script
from dssr_slurm.jobspec import job_spec

log = logging.getLogger(__name__)


class SlurmCliConnector(SshConnector):
    """Slurm over SSH. Thread-safe: one SSH connection per cluster user, one shared snapshot."""

    scheduler = "Slurm"
    connector_name = "slurm-cli"
    submit_program = "sbatch"

    def __init__(self, settings):
        self.listings = commands.SqueueReader()  # before the snapshot can ask for a listing
        super().__init__(settings)

    # Jobs -------------------------------------------------------------------------------

    def _submit_command(self, submission: Submission) -> tuple[str, str]:
        spec = job_spec(submission, self.config.scratch_dir)
        script = batch_script(submission.script, self.config.scratch_dir, submission.name,
                              submission.success_marker)
        command = commands.submit(submission.name, commands.sbatch_arguments(spec),
                                  lock_wait=self.ssh_settings.command_timeout / 2,
                                  record=submit_record(self.config.scratch_dir, submission.name))
        return command, script

    def _submit_answer(self, result: CommandResult, name: str) -> tuple[str, bool]:
        return commands.parse_submit(result, name)

    def _submitted_fingerprint(self, result: CommandResult) -> str | None:
        return script_fingerprint_of(result.stdout)  # the first live job's comment comes first

    # Cluster ----------------------------------------------------------------------------

    def check(self) -> str:
        result = self._run(self.accounts.service, commands.cluster_check(), "sinfo")
        if not result.ok:
            raise unreachable_or_failed("sinfo", result)
        version, *nodes = [line for line in result.stdout.splitlines() if line.strip()]
        states = ", ".join(" ".join(line.split("|")) for line in nodes) or "no node"
        return f"{version.strip()} as {self.ssh_settings.service_user}; nodes: {states}"

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

    def _failed(self, program: str, result: CommandResult) -> Exception:
        return unreachable_or_failed(program, result)

    def _is_gone(self, result: CommandResult) -> bool:
        return commands.is_invalid_job(result)


def _accounting_text(record: JobRecord) -> str:
    exit_code = "" if record.exit_code is None else f" ExitCode={record.exit_code}"
    return (f"JobId={record.jobid} JobName=jarvice_{record.name} UserId={record.user} "
            f"JobState={record.state}{exit_code} ElapsedSeconds={record.elapsed_s}\n")
