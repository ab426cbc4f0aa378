"""The ``slurm-cli`` connector: Slurm over SSH with sbatch, squeue, sacct, scancel and scontrol.

Jobs are submitted as the portal user's mapped cluster account; everything later on a job
(terminate, release, events, tail, collecting its files) runs as the job's owner as Slurm
reports it, with that owner's key from the mapping. Listings and run status come from one
shared snapshot (one ``squeue`` per interval).
"""

import logging

from dssr_core.connector import Connector
from dssr_core.errors import Forbidden, JobNotFound, NotAvailable, SettingsError
from dssr_core.models import (
    DirEntry,
    ExitStatus,
    JobInfo,
    JobListing,
    JobRef,
    RequestAnswer,
    RunStatus,
    Submission,
    SubmitResult,
)
from dssr_slurm import cli_commands as commands
from dssr_slurm.config import SlurmConfig
from dssr_slurm.jobs import JobRecord, check_slurm_job_id
from dssr_slurm.jobscript import batch_script, job_files
from dssr_slurm.options import sbatch_arguments, submission_options
from dssr_slurm.snapshot import StatusSnapshot
from dssr_slurm.ssh import CommandResult, SshPool, SshSettings, load_private_key, quote_command
from dssr_slurm.states import is_final, is_live, is_running
from dssr_slurm.users import Accounts, ClusterAccount, load_user_map

log = logging.getLogger(__name__)

#: How much of a job's output ``/exitstatus`` returns.
EXIT_OUTPUT_LINES = 10_000


class SlurmCliConnector(Connector):
    """Slurm over SSH. Thread-safe: one SSH connection per cluster user, one shared snapshot."""

    name = "slurm-cli"

    def __init__(self, settings):
        super().__init__(settings)
        self.config = SlurmConfig.from_settings(settings)
        self.ssh_settings = SshSettings.from_settings(settings)
        user_map = load_user_map(settings)
        _check_keys(self.ssh_settings, user_map)
        self.accounts = Accounts(self.ssh_settings.service_account, user_map)
        self.ssh = SshPool(self.ssh_settings)
        self.snapshot = StatusSnapshot(self._list_jobs, self.config.status_interval)

    # Jobs -------------------------------------------------------------------------------

    def submit(self, submission: Submission) -> SubmitResult:
        account = self.accounts.for_email(submission.user_email)
        options = submission_options(submission.facts, name=submission.name,
                                     scratch_dir=self.config.scratch_dir, held=submission.held)
        script = batch_script(submission.script, self.config.scratch_dir, submission.name,
                              submission.success_marker)
        command = commands.submit(submission.name, sbatch_arguments(options))
        jobid, existing = commands.parse_submit(self._run(account, command, stdin=script))
        if existing:
            log.info("job %s/%s is already in Slurm as %s; not submitted again",
                     submission.name, submission.number, jobid)
        self.snapshot.invalidate()
        return SubmitResult(jobid=jobid, script=submission.script)

    def running(self) -> list[JobListing]:
        return list(self.snapshot.get().running)

    def queued(self) -> list[JobListing]:
        return list(self.snapshot.get().queued)

    def runstatus(self, job: JobRef) -> RunStatus:
        check_slurm_job_id(job.jobid)
        record = self.snapshot.get().find(job)
        if record is None or not is_running(record.state):
            raise JobNotFound(f"Job {job} is not running.")
        return RunStatus(nodes=record.nodes, elapsed_s=record.elapsed_s)

    def exitstatus(self, job: JobRef) -> ExitStatus:
        check_slurm_job_id(job.jobid)
        record = self._ended_or_fresh(job)
        if record is None:
            return ExitStatus.unknown()
        if not is_final(record.state):
            log.info("exitstatus: job %s is still %s; its files stay", job, record.state)
            return ExitStatus(state=record.state, exit_code=None, elapsed_s=record.elapsed_s)
        output = self._collect(job, record)
        return ExitStatus(state=record.state, exit_code=record.exit_code, elapsed_s=record.elapsed_s,
                          output=output)

    def terminate(self, job: JobRef) -> None:
        record = self._find(job)
        if not is_live(record.state):
            log.info("terminate: job %s has already ended (%s)", job, record.state)
            return
        self._on_job(record, quote_command("scancel", record.jobid), "scancel")
        self.snapshot.invalidate()

    def release(self, job: JobRef) -> None:
        record = self._find(job)
        if not is_live(record.state):
            log.info("release: job %s has already ended (%s)", job, record.state)
            return
        self._on_job(record, quote_command("scontrol", "release", record.jobid), "scontrol release")
        self.snapshot.invalidate()

    def events(self, job: JobRef) -> str:
        record = self._find(job)
        result = self._run(self.accounts.for_owner(record.user),
                           quote_command("scontrol", "show", "job", record.jobid))
        if result.ok:
            return result.stdout
        if commands.is_invalid_job(result):  # gone from the controller: accounting has the rest
            return _accounting_text(record)
        raise commands.unreachable_or_failed("scontrol show job", result)

    def tail(self, job: JobRef, lines: int) -> str:
        check_slurm_job_id(job.jobid)
        record = self._lookup(job)
        if record is None:
            raise NotAvailable(f"Job {job} is not known to Slurm, so it has no output.")
        path = job_files(self.config.scratch_dir, job.name, job.jobid).output
        result = self._run(self.accounts.for_owner(record.user), commands.tail(path, lines))
        if result.exit_status == 3:
            raise NotAvailable(f"Job {job} has no output (yet, or any more).")
        if not result.ok:
            raise commands.unreachable_or_failed("tail", result)
        return result.stdout

    def request(self, job: JobRef, method: str, query: dict[str, list[str]]) -> RequestAnswer:
        check_slurm_job_id(job.jobid)  # every method, ping included, gets a Slurm job id
        return super().request(job, method, query)

    def info(self, job: JobRef) -> JobInfo:
        record = self._find(job)
        where = ", ".join(record.nodes) or "no node yet"
        return JobInfo(about=f"Slurm job {record.jobid} of {record.user}: {record.state} on {where}")

    # Cluster ----------------------------------------------------------------------------

    def pvcls(self, path: str, details: bool) -> list[DirEntry]:
        result = self._run(self.accounts.service, commands.list_directory(self.config.data_root, path))
        if result.exit_status == 3:
            raise NotAvailable(f"There is no directory /data/{path} to list.")
        if result.exit_status == 4:
            raise Forbidden(f"/data/{path} leads outside the data root; listings stay inside it.")
        if not result.ok:
            raise commands.unreachable_or_failed("find", result)
        return sorted(_dir_entries(path, result.stdout), key=lambda entry: entry.path)

    def check(self) -> str:
        result = self._run(self.accounts.service, commands.cluster_check())
        if not result.ok:
            raise commands.unreachable_or_failed("sinfo", result)
        version, *nodes = [line for line in result.stdout.splitlines() if line.strip()]
        states = ", ".join(" ".join(line.split("|")) for line in nodes) or "no node"
        return f"{version.strip()} as {self.ssh_settings.service_user}; nodes: {states}"

    def report(self) -> list[tuple[str, str]]:
        ssh = self.ssh_settings
        return [
            ("cluster", f"{ssh.host}:{ssh.port} over SSH as {ssh.service_user}"),
            ("known hosts", ssh.known_hosts + (" (trust on first use)" if ssh.trust_on_first_use else "")),
            ("users ID mapping", self.accounts.describe()),
            ("scratch dir", self.config.scratch_dir or "the job user's home directory"),
            ("data root", self.config.data_root or "the service account's home directory"),
            ("status interval", f"{self.config.status_interval:g} s"),
            ("command timeout", f"{ssh.command_timeout:g} s"),
        ]

    def close(self) -> None:
        self.ssh.close()

    # Helpers ----------------------------------------------------------------------------

    def _run(self, account: ClusterAccount, command: str, stdin: str | None = None) -> CommandResult:
        return self.ssh.run(account, command, stdin=stdin)

    def _list_jobs(self) -> list[JobRecord]:
        result = self._run(self.accounts.service, commands.squeue_all())
        if not result.ok:
            raise commands.unreachable_or_failed("squeue", result)
        return commands.parse_squeue(result.stdout)

    def _find(self, job: JobRef) -> JobRecord:
        """The job's record, or JobNotFound."""
        check_slurm_job_id(job.jobid)
        record = self._lookup(job)
        if record is None:
            raise JobNotFound(f"Slurm knows no job {job.jobid} named {job.name}.")
        return record

    def _lookup(self, job: JobRef) -> JobRecord | None:
        """The snapshot first, then the controller, then accounting."""
        return self.snapshot.get().find(job) or self._squeue(job) or self._sacct(job)

    def _ended_or_fresh(self, job: JobRef) -> JobRecord | None:
        """An ended state from the snapshot as it is (states never leave an end), else fresh."""
        current = self.snapshot.peek()
        record = current.find(job) if current is not None else None
        if record is not None and is_final(record.state):
            return record
        return self._squeue(job) or self._sacct(job)

    def _squeue(self, job: JobRef) -> JobRecord | None:
        result = self._run(self.accounts.service, commands.squeue_job(job.jobid))
        if commands.is_invalid_job(result):
            return None
        if not result.ok:
            raise commands.unreachable_or_failed("squeue", result)
        return _matching(job, commands.parse_squeue(result.stdout))

    def _sacct(self, job: JobRef) -> JobRecord | None:
        result = self._run(self.accounts.service, commands.sacct_job(job.jobid))
        if not result.ok:
            raise commands.unreachable_or_failed("sacct", result)
        return _matching(job, commands.parse_sacct(result.stdout))

    def _on_job(self, record: JobRecord, command: str, program: str) -> None:
        result = self._run(self.accounts.for_owner(record.user), command)
        if not result.ok and not commands.is_invalid_job(result):
            raise commands.unreachable_or_failed(program, result)

    def _collect(self, job: JobRef, record: JobRecord) -> str:
        """The tail of the job's output, then its files removed, as the job's owner."""
        files = job_files(self.config.scratch_dir, job.name, job.jobid)
        command = commands.collect(files.output, EXIT_OUTPUT_LINES, files.all())
        result = self._run(self.accounts.for_owner(record.user), command)
        if not result.ok:
            log.warning("exitstatus: the files of job %s were not all removed: %s",
                        job, commands.slurm_message(result))
        return result.stdout


def _matching(job: JobRef, records: list[JobRecord]) -> JobRecord | None:
    """The record of ``job`` (same id and name): an id Slurm reused for another job is not ours."""
    found = [record for record in records if record.is_for(job)]
    return found[-1] if found else None


def _accounting_text(record: JobRecord) -> str:
    exit_code = "" if record.exit_code is None else f" ExitCode={record.exit_code}"
    return (f"JobId={record.jobid} JobName=jarvice_{record.name} UserId={record.user} "
            f"JobState={record.state}{exit_code} ElapsedSeconds={record.elapsed_s}\n")


def _dir_entries(path: str, listing: str) -> list[DirEntry]:
    entries = []
    for item in listing.split("\0"):
        kind, _, rest = item.partition("|")
        mtime, _, rest = rest.partition("|")
        size, _, name = rest.partition("|")
        if not name:
            continue
        entries.append(DirEntry(path=f"{path}/{name}" if path else name, is_dir=kind == "d",
                                mtime=int(float(mtime or 0)), size=int(size or 0)))
    return entries


def _check_keys(ssh: SshSettings, user_map) -> None:
    """Every key must be usable at start, not at a user's first job."""
    load_private_key(ssh.service_key, "JARVICE_SLURM_SSH_PKEY")
    for entry in user_map.entries if user_map is not None else ():
        if entry.account.private_key is None:
            raise SettingsError(f"The users ID mapping entry of {entry.mail} has no ssh_private_key_b64; "
                                "the slurm-cli connector needs one for every user.")
        load_private_key(entry.account.private_key, f"The SSH key of {entry.mail} in the users ID mapping")

