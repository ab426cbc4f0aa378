"""Fixtures for the dummy connector's tests: connectors on a throw-away state dir."""

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dssr_core.models import JobFacts, JobRef, Submission
from dssr_core.settings import Settings
from dssr_core.testing import wait_until
from dssr_dummy import DummyConnector

#: Seconds a job may take to start or to end; generous for a loaded 2-core machine.
TIMEOUT = 20.0


def wait_for(predicate, timeout: float = TIMEOUT, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` seconds."""
    return wait_until(predicate, timeout, interval=0.05, what=what)


def live_processes(where) -> list[int]:
    """Pids of live (not zombie) processes for which ``where(pid, stat_fields)`` holds."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] not in (b"Z", b"X") and where(int(entry), fields):
            found.append(int(entry))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (field 5 of /proc/<pid>/stat is the group)."""
    return live_processes(lambda pid, fields: int(fields[2]) == pgid)


class Dummy:
    """Builds dummy connectors on one state dir and submits jobs as the HTTP layer does."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.state_dir = tmp_path / "state"
        self.connectors: list[DummyConnector] = []

    def connect(self, **settings: str) -> DummyConnector:
        env = {"JARVICE_DUMMY_STATE_DIR": str(self.state_dir), "JARVICE_DUMMY_KILL_GRACE": "2",
               **settings}
        connector = DummyConnector.from_settings(Settings.from_env(env))
        self.connectors.append(connector)
        return connector

    @staticmethod
    def submit(connector, script: str, *, name: str | None = None, **fields) -> JobRef:
        name = name or f"job-{uuid.uuid4().hex[:8]}"
        result = connector.submit(Submission(name=name, number=1, script=script,
                                             facts=JobFacts(), **fields))
        assert result.jobid.isdigit()
        return JobRef(name, 1, result.jobid)

    @staticmethod
    def listed(connector, job: JobRef, listing: str) -> bool:
        return any(row.jobid == job.jobid and row.name == job.name
                   for row in getattr(connector, listing)())

    def wait_running(self, connector, job: JobRef) -> None:
        wait_for(lambda: self.listed(connector, job, "running"), what=f"{job} to run")

    def wait_ended(self, connector, job: JobRef) -> None:
        wait_for(lambda: not (self.listed(connector, job, "running")
                              or self.listed(connector, job, "queued")), what=f"{job} to end")

    @staticmethod
    def pid(connector, job: JobRef) -> int:
        """The job's wrapper pid (its process group id), as ``events`` shows it."""
        return int(re.search(r"Pid=(\d+)", connector.events(job)).group(1))

    def submit_elsewhere(self, *scripts: str, **settings: str) -> list[JobRef]:
        """Submit from a connector in another process, which closes once the jobs run and
        exits: the jobs are no longer children of anyone here, as after a server restart."""
        env = {"JARVICE_DUMMY_STATE_DIR": str(self.state_dir), **settings}
        names = [f"job-{uuid.uuid4().hex[:8]}" for _ in scripts]
        done = subprocess.run([sys.executable, "-c", _SUBMIT_ELSEWHERE,
                               json.dumps([env, names, list(scripts)])],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [JobRef(name, 1, jobid) for name, jobid in zip(names, done.stdout.split(), strict=True)]

    def job_processes(self) -> list[int]:
        """Live processes that run in a job's folder."""
        jobs = str(self.state_dir / "jobs")
        return live_processes(lambda pid, fields: _cwd(pid).startswith(jobs))

    wait_for = staticmethod(wait_for)
    group_members = staticmethod(group_members)

    def cleanup(self) -> None:
        for connector in self.connectors:
            connector.close()
        self.kill_jobs()

    def kill_jobs(self) -> None:
        """SIGKILL the process groups of every job, even those no connector watches."""
        for pgid in {_group(pid) for pid in self.job_processes()} - {None}:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


_SUBMIT_ELSEWHERE = """
import json, sys, time
from dssr_core.models import JobFacts, Submission
from dssr_core.settings import Settings
from dssr_core.testing import wait_until
from dssr_dummy import DummyConnector

env, names, scripts = json.loads(sys.argv[1])
connector = DummyConnector.from_settings(Settings.from_env(env))
ids = [connector.submit(Submission(name=name, number=1, script=script, facts=JobFacts())).jobid
       for name, script in zip(names, scripts)]
deadline = time.monotonic() + 20
while {row.jobid for row in connector.running()} != set(ids):
    assert time.monotonic() < deadline, "the jobs did not start"
    time.sleep(0.05)
connector.close()
print(" ".join(ids))
"""


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


@pytest.fixture
def dummy(tmp_path):
    """A :class:`Dummy`; its connectors are closed and their jobs killed afterwards."""
    harness = Dummy(tmp_path)
    yield harness
    harness.cleanup()


@pytest.fixture
def connector(dummy):
    """A dummy connector on a fresh state dir, running at most 4 jobs at once."""
    return dummy.connect(JARVICE_DUMMY_MAX_RUNNING="4")
