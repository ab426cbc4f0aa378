# The example connector of DSSR 0.1's docs/writing-a-connector.md (commit 0f5d253), copied as
# it was written there, for tests/dssr_core/test_plugin_api.py: a connector written for 0.1
# must load and run in 0.2, with DeprecationWarnings that name the new calls.
# ruff: noqa
"""dssr_local: runs each job as a local process (an example connector)."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import dssr_core
from dssr_core.errors import JobNotFound, NotAvailable
from dssr_core.models import ConnectorSpec, ExitStatus, JobListing, RunStatus, SubmitResult


class LocalConnector(dssr_core.Connector):
    name = "local"

    def __init__(self, settings):
        super().__init__(settings)
        self.root = settings.get("LOCAL_JOB_DIR") or tempfile.mkdtemp(prefix="dssr-local-")
        self.jobs = {}
        self.lock = threading.Lock()
        self.next_id = 1

    def submit(self, submission):
        with self.lock:
            for jobid, job in self.jobs.items():
                if job["name"] == submission.name and self._state(job) in ("PENDING", "RUNNING"):
                    return SubmitResult(jobid, job["script"])  # a retried submit
            jobid = str(self.next_id)
            self.next_id += 1
            workdir = os.path.join(self.root, jobid)
            os.makedirs(workdir)
            with open(os.path.join(workdir, "job.sh"), "w") as script:
                script.write(submission.script)
            job = {"name": submission.name, "script": submission.script, "dir": workdir,
                   "process": None, "started": 0.0, "ended": None, "cancelled": False}
            self.jobs[jobid] = job
            if not submission.held:
                self._start(job)
            return SubmitResult(jobid, submission.script)

    def _start(self, job):
        with open(os.path.join(job["dir"], "output"), "wb") as output:
            job["process"] = subprocess.Popen(
                ["bash", "job.sh"], cwd=job["dir"], stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True)
        job["started"] = time.monotonic()

    def _state(self, job):
        if job["process"] is None:
            return "CANCELLED" if job["cancelled"] else "PENDING"
        code = job["process"].poll()
        if code is None:
            return "RUNNING"
        job["ended"] = job["ended"] or time.monotonic()
        if job["cancelled"]:
            return "CANCELLED"
        return "COMPLETED" if code == 0 else "FAILED"

    def _job(self, ref):
        job = self.jobs.get(ref.jobid)
        if job is None or job["name"] != ref.name:
            raise JobNotFound(f"No job {ref} is known.")
        return job

    def _listing(self, state):
        with self.lock:
            return [JobListing(job["name"], jobid)
                    for jobid, job in self.jobs.items() if self._state(job) == state]

    def running(self):
        return self._listing("RUNNING")

    def queued(self):
        return self._listing("PENDING")

    def runstatus(self, ref):
        with self.lock:
            job = self._job(ref)
            if self._state(job) != "RUNNING":
                raise JobNotFound(f"Job {ref} is not running.")
            return RunStatus((socket.gethostname(),), int(time.monotonic() - job["started"]))

    def exitstatus(self, ref):
        with self.lock:
            job = self._job(ref)
            state = self._state(job)
            if state in ("PENDING", "RUNNING"):
                return ExitStatus(state, None, 0)
            output = self._read_output(job, 10_000)
            del self.jobs[ref.jobid]
            shutil.rmtree(job["dir"], ignore_errors=True)
        code = job["process"].returncode if job["process"] else None
        elapsed = (job["ended"] - job["started"]) if job["process"] else 0
        return ExitStatus(state, code, int(elapsed), output)

    def terminate(self, ref):
        with self.lock:
            job = self._job(ref)
            job["cancelled"] = True
            if job["process"] is not None and job["process"].poll() is None:
                os.killpg(job["process"].pid, signal.SIGTERM)

    def release(self, ref):
        with self.lock:
            job = self._job(ref)
            if job["process"] is None and not job["cancelled"]:
                self._start(job)

    def events(self, ref):
        with self.lock:
            return f"JobId={ref.jobid} JobState={self._state(self._job(ref))}"

    def tail(self, ref, lines):
        with self.lock:
            text = self._read_output(self._job(ref), lines)
        if not text:
            raise NotAvailable(f"Job {ref} has no output yet.")
        return text

    def _read_output(self, job, lines):
        try:
            with open(os.path.join(job["dir"], "output"), errors="replace") as output:
                return "".join(output.readlines()[-lines:])
        except FileNotFoundError:
            return ""

    def check(self):
        return f"jobs run as local processes under {self.root}"


@dssr_core.hookimpl
def dssr_register_connectors():
    return [ConnectorSpec("local", LocalConnector, "Runs jobs as local processes (example)")]
