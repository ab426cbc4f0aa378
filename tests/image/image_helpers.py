"""What the image test and the systemd unit test share: a container run by name, the port check,
and one Singularity job through a DSSR server on the test cluster."""

import os
import re
import socket
import subprocess
import time

import jwt
import pytest
import requests

from dssr_core.testing import wait_until
from dssr_singularity.executor import SingularityExecutor

APP = "nvcr.io/nvidia/pytorch:23.10-py3"
BEARER = jwt.encode({"email": "kirby@example.org", "preferred_username": "kirby"},
                    "upstream-signing-key-0123456789abcdef", algorithm="HS256")


def refuse_if_taken(port: int) -> None:
    """Host networking binds the host's own port: fail clearly when something holds it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            pytest.fail(f"port {port} is taken on this host ({error.strerror}); the container listens "
                        f"on {port} with --network=host: stop what holds it (ss -ltnp 'sport = :{port}')",
                        pytrace=False)


class Container:
    """A container started by the test, known by the name it was given."""

    def __init__(self, podman, name: str):
        self.podman = podman
        self.name = name

    def logs(self) -> str:
        done = self.podman.run("logs", self.name, check=False)
        return (done.stdout + done.stderr)[-6000:]

    def running(self) -> bool:
        done = self.podman.run("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return done.stdout.strip() == "true"

    def wait_until_it_answers(self, url: str, timeout: float = 60, logs=None) -> float:
        """Seconds until ``url``/live answered 200; fails with the logs when it does not."""
        logs = logs or self.logs
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.running():
                pytest.fail(f"the container {self.name} stopped:\n{logs()}", pytrace=False)
            try:
                if requests.get(f"{url}/live", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{url}/live did not answer within {timeout} s:\n{logs()}", pytrace=False)


def run_singularity_job(api, name: str, logs) -> tuple[int, str]:
    """Submit an upstream-like Singularity job, check Slurm has it, wait; (exit code, output)."""
    token = f"hello-from-{name}"
    template = SingularityExecutor.template_for(f"echo {token} rank $PROCESS_PROCID of $JOB_NNODES",
                                                image=APP, cores=1)
    answer = api.submit(name, template, executor="singularity", bearer=BEARER)
    assert answer.status == 200, f"{answer.status} {answer.text}\n{logs()}"
    jobid, _ = answer.json
    try:
        recorded = scheduler_job_name(jobid)
        assert recorded == f"jarvice_{name}", f"Slurm recorded job {jobid} as {recorded!r}"
        wait_until(lambda: all([name, jobid] not in api.get(p).json for p in ("/queued", "/running")),
                   120, interval=1, what=f"{name} to end")
        rc, _, (output, _) = api.post("/exitstatus", {"name": name, "number": 1, "jobid": jobid}).json
    finally:
        subprocess.run(["scancel", str(jobid)], capture_output=True)
    assert f"{token} rank 0 of 1" in output, output
    assert "JARVICE_CMD_SUCCESS" in output.splitlines(), output
    return rc, output


def scheduler_job_name(jobid) -> str:
    """The job's name as slurmctld knows it: the job is Slurm's, not a local process. (Not
    sacct: for a moment after the start, accounting names a new job "allocation".)"""
    done = subprocess.run(["scontrol", "--oneliner", "show", "job", str(jobid)], capture_output=True,
                          text=True, timeout=30)
    found = re.search(r"\bJobName=(\S+)", done.stdout)
    return found[1] if found else f"(no such job: {done.stdout.strip() or done.stderr.strip()})"


def unique_name(kind: str) -> str:
    return f"{kind}-{os.getpid()}-{int(time.time())}"
