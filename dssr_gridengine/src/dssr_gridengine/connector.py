"""The ``gridengine`` connector: Grid Engine over SSH with qsub, qstat, qacct, qdel and qrls.

Jobs are submitted as the portal user's mapped cluster account; everything later on a job
(terminate, release, events, tail, collecting its files) runs as the job's owner as qstat or
qacct report it, with that owner's key from the mapping. Listings and run status come from one
shared snapshot (one ``qstat -u '*' -xml`` per interval); a job qstat no longer shows is read
from ``qacct``. What is not Grid Engine's is :class:`dssr_core.remote.connector.SshConnector`'s
(shared with ``slurm-cli``).

An interactive job's service port and job number are its context (``qsub -ac``), which only
``qstat -j`` shows: it is asked once per job when the job is first seen running, and kept.
"""

import logging
import threading
import time

import attrs

from dssr_core.models import JobRef, Submission
from dssr_core.remote.connector import SshConnector
from dssr_core.remote.jobs import JobRecord, matching
from dssr_core.remote.ssh import CommandResult, quote_command
from dssr_core.remote.states import is_running
from dssr_gridengine import commands
from dssr_gridengine.jobscript import batch_script
from dssr_gridengine.jobspec import qsub_arguments
from dssr_gridengine.settings import GridEngineOptions

log = logging.getLogger(__name__)

#: qacct is asked this often, ACCOUNTING_WAIT seconds apart, for a job qmaster says has ended
#: (accounting_flush_time 0 writes the record within a few milliseconds).
ACCOUNTING_TRIES = 4
ACCOUNTING_WAIT = 0.5
#: How many job contexts are kept (the jobs seen running lately); older ones are asked again.
CONTEXTS_KEPT = 10_000


class GridEngineConnector(SshConnector):
    """Grid Engine over SSH. Thread-safe: one SSH connection per cluster user, one shared snapshot."""

    scheduler = "Grid Engine"
    connector_name = "gridengine"
    submit_program = "qsub"

    def __init__(self, settings):
        self.options = GridEngineOptions.from_settings(settings)
        self._contexts: dict[str, dict] = {}
        self._contexts_lock = threading.Lock()
        super().__init__(settings)

    # Jobs -------------------------------------------------------------------------------

    def _submit_command(self, submission: Submission) -> tuple[str, str]:
        arguments = qsub_arguments(submission, self.config.scratch_dir, self.options)
        script = batch_script(submission.script, self.config.scratch_dir, submission.name,
                              submission.success_marker)
        command = commands.submit(submission.name, arguments, lock_wait=self.ssh_settings.command_timeout / 2)
        return command, script

    def _submit_answer(self, result: CommandResult, name: str) -> tuple[str, bool]:
        return commands.parse_submit(result, name)

    # Cluster ----------------------------------------------------------------------------

    def check(self) -> str:
        result = self._run(self.accounts.service, commands.cluster_check(), "qstat")
        if not result.ok:
            raise commands.failed("qstat", result)
        version, *queues = [line for line in result.stdout.splitlines() if line.strip()]
        rows = [" ".join(line.split()) for line in queues if not line.startswith(("CLUSTER", "---"))]
        return f"{version.strip()} as {self.ssh_settings.service_user}; queues: {'; '.join(rows) or 'none'}"

    def _report_lines(self) -> list[tuple[str, str]]:
        return [("devices", self.options.report())]

    # What Grid Engine's commands answer -------------------------------------------------

    def _list_jobs(self) -> list[JobRecord]:
        result = self._run(self.accounts.service, commands.status(), "qstat")
        if not result.ok:
            raise commands.failed("qstat", result)
        records = commands.parse_status(result.stdout)
        return self._with_contexts(records)

    def _controller_record(self, job: JobRef) -> JobRecord | None:
        """qstat shows live jobs only: a fresh listing (one command for every job) has it or not."""
        return matching(job, self._list_jobs())

    def _accounting_record(self, job: JobRef) -> JobRecord | None:
        """qacct's record; a job qmaster remembers as ended (a zombie) without one was deleted while
        it waited (such a job never gets one), once accounting had a moment to catch up."""
        zombie = None
        for attempt in range(ACCOUNTING_TRIES):
            result = self._run(self.accounts.service, commands.accounting(job.jobid), "qacct")
            if result.ok:
                return matching(job, commands.parse_accounting(result.stdout))
            if "not found" not in (result.stderr + result.stdout).lower():
                raise commands.failed("qacct", result)
            if attempt == 0:
                listed = self._run(self.accounts.service, commands.zombies(), "qstat")
                if not listed.ok:
                    raise commands.failed("qstat -s z", listed)
                zombie = matching(job, commands.parse_status(listed.stdout))
                if zombie is None:
                    return None
            time.sleep(ACCOUNTING_WAIT)
        log.info("job %s ended without an accounting record: deleted while it waited", job)
        return attrs.evolve(zombie, state="CANCELLED", nodes=())

    def _cancel(self, record: JobRecord) -> None:
        self._on_job(record, quote_command("qdel", record.jobid), "qdel", "terminate")

    def _release(self, record: JobRecord) -> None:
        self._on_job(record, quote_command("qrls", record.jobid), "qrls", "release")

    def _events_text(self, job: JobRef) -> str | None:
        record = self._lookup(job)
        if record is None:
            return None
        result = self._run(self.accounts.for_owner(record.user), quote_command("qstat", "-j", record.jobid),
                           "qstat")
        if result.ok:
            return result.stdout
        if not commands.is_unknown_job(result):
            raise commands.failed("qstat -j", result)
        accounted = self._run(self.accounts.service, commands.accounting(record.jobid), "qacct")
        if accounted.ok:
            return accounted.stdout
        return (f"job_number: {record.jobid}\njob_name: jarvice_{record.name}\nowner: {record.user}\n"
                f"state: {record.state}\n")

    # Helpers ----------------------------------------------------------------------------

    def _with_contexts(self, records: list[JobRecord]) -> list[JobRecord]:
        """The records, running ones with the service port and job number of their context."""
        with self._contexts_lock:
            unknown = [record.jobid for record in records
                       if is_running(record.state) and record.jobid not in self._contexts]
        if unknown:
            result = self._run(self.accounts.service, commands.job_details(unknown), "qstat")
            found = commands.parse_contexts(result.stdout) if result.ok else {}
            with self._contexts_lock:
                if len(self._contexts) > CONTEXTS_KEPT:
                    self._contexts.clear()
                for jobid in unknown:
                    if jobid in found:
                        self._contexts[jobid] = found[jobid]
        with self._contexts_lock:
            contexts = dict(self._contexts)
        return [record if record.jobid not in contexts else attrs.evolve(record, **contexts[record.jobid])
                for record in records]

    def _failed(self, program: str, result: CommandResult) -> Exception:
        return commands.failed(program, result)

    def _is_gone(self, result: CommandResult) -> bool:
        return commands.is_unknown_job(result)
