"""Helpers of the Slurm tests that are not fixtures (imported by the test modules)."""

import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import attrs
import jwt

from dssr_core.app import create_app
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient


def bearer_for(email: str) -> str:
    """A JWT like upstream's bearer (DSSR reads its e-mail, it does not check the signature)."""
    claims = {"email": email, "iat": int(time.time())}
    return jwt.encode(claims, "any-key-will-do-dssr-does-not-check-it", algorithm="HS256")


#: The Slurm versions of the live tests (``cluster.sh`` brings up each with DSSR_CLUSTER_SLURM).
SLURM_VERSIONS = ("22.05", "24.11", "26.05")
#: The slurmrestd API versions each serves, oldest first (what its GET /openapi.json lists).
SERVED_API_VERSIONS = {
    "22.05": ("v0.0.38",),
    "24.11": ("v0.0.40", "v0.0.41", "v0.0.42"),
    "26.05": ("v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"),
}



def newest_api(env: dict) -> str:
    """The API version ``auto`` picks on the cluster of ``env``: the newest it serves."""
    return SERVED_API_VERSIONS[env["DSSR_CLUSTER_SLURM"]][-1]


KIRBY_MAIL, MARIO_MAIL = "kirby@example.org", "mario@example.org"
#: Upstream's bearers of kirby and mario.
KIRBY, MARIO = bearer_for(KIRBY_MAIL), bearer_for(MARIO_MAIL)
#: One node: lets the jobs of a test share it.
SHARED = ["exclusive=False"]


def exitstatus(api, job):
    answer = api.post("/exitstatus", job)
    assert answer.status == 200, answer.text
    return answer.json


def submit_as_each_user(api, body: str, unique) -> dict[str, dict]:
    """Submit ``body`` as kirby and mario (by their bearers) and as the service account (no
    bearer); check that Slurm runs each as that user under the name jarvice_<name>."""
    jobs = {}
    for user, bearer in (("kirby", KIRBY), ("mario", MARIO), ("jarvice", None)):
        name = unique(user)
        jobs[user] = job_of(name, api.submit(name, template(body, devices=SHARED), bearer=bearer))
    for user, job in jobs.items():
        assert squeue_field(job["jobid"], "%u") == user
        assert squeue_field(job["jobid"], "%j") == f"jarvice_{job['name']}"
    return jobs


#: Where root's Slurm commands of the cluster the tests run on are (set by ``cluster_env``).
_slurm_bin = ["/usr/bin"]


def use_cluster(env: dict) -> None:
    """Make :func:`slurm` ask the cluster of ``env`` (``cluster.sh env``)."""
    _slurm_bin[0] = env["DSSR_CLUSTER_SLURM_BIN"]


def slurm(command: str, *args: str) -> subprocess.CompletedProcess:
    """Run a Slurm command (squeue, scancel, ...) as root on the current cluster (independent of DSSR)."""
    return subprocess.run([f"{_slurm_bin[0]}/{command}", *args], capture_output=True, text=True)


def squeue_field(jobid: str, field: str) -> str:
    """One field of a job, as root sees it (independent of DSSR)."""
    return slurm("squeue", "-h", "-a", "-t", "all", "-j", jobid, "-o", field).stdout.strip()


def wait_gone_from_squeue(jobid: str, timeout: float = 120) -> None:
    """Wait until slurmctld forgot the job (MinJobAge), so that only sacct knows it."""
    deadline = time.monotonic() + timeout
    while squeue_field(jobid, "%i") == jobid:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {jobid} still in squeue after {timeout} s")
        time.sleep(1)


def template(body: str, *, cores: int = 1, devices: list[str] | None = None, extra: str = "") -> str:
    """A bash body in upstream's template form, with job facts (braces doubled)."""
    import json

    lines = ["#!/bin/bash", "{DOWNSTREAM_PARAMETERS}", f"JARVICE_CPU_CORES={cores}"]
    if devices is not None:
        lines.append("JOBOBJ_DEVICES=" + json.dumps(devices))
    if extra:
        lines.append(extra)
    lines.append(body.replace("{", "{{").replace("}", "}}"))
    return "\n".join(lines) + "\n"


def job_of(name: str, answer) -> dict:
    assert answer.status == 200, answer.text
    return {"name": name, "number": 1, "jobid": answer.json[0]}


def listed(api, job) -> bool:
    return any([job["name"], job["jobid"]] in api.get(f"/{kind}").json for kind in ("queued", "running"))


def wait_ended(api, job, timeout: float = 120) -> None:
    from dssr_core.testing import wait_until

    wait_until(lambda: not listed(api, job), timeout, what=f"{job['name']} to end")


def wait_running(api, job, timeout: float = 120) -> None:
    from dssr_core.testing import wait_until

    wait_until(lambda: [job["name"], job["jobid"]] in api.get("/running").json, timeout,
               what=f"{job['name']} to run")


#: The interactive jobs' web service of the proxy tests (standard library only).
WEB_SERVICE = Path(__file__).parents[1] / "services" / "web_service.py"


def web_service_for_jobs(env: dict) -> str:
    """The path of :data:`WEB_SERVICE` as a job reads it on the cluster of ``env``: a copy in the
    scratch directory, the one place at the same path on the host and in the 24.11/26.05 chroots
    (the checkout is not in them). Named by its content, so test runs of other checkouts keep theirs."""
    text = WEB_SERVICE.read_bytes()
    digest = hashlib.sha256(text).hexdigest()[:12]
    copy = Path(env["JARVICE_JOB_SCRATCH_DIR"]) / f"dssr-web-service-{digest}.py"
    if not copy.exists():
        partial = copy.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(text)
        partial.chmod(0o644)
        partial.replace(copy)
    return str(copy)


def wait_started(api, job, timeout: float) -> None:
    """Wait until the job runs, as wait_running; fail at once, with the tail of its output, when
    it ended first (a command that could not start), instead of waiting out ``timeout``."""
    deadline = time.monotonic() + timeout
    unlisted_since = None
    while [job["name"], job["jobid"]] not in api.get("/running").json:
        now = time.monotonic()
        unlisted_since = None if listed(api, job) else unlisted_since or now
        if unlisted_since is not None and now - unlisted_since > 5:  # not a stale status snapshot
            answer = api.post(f"/request/{job['name']}/{job['number']}/{job['jobid']}/tail", {"qs": {}})
            raise AssertionError(f"{job['name']} (Slurm job {job['jobid']}) ended before it was seen "
                                 f"running; its output ends: {answer.text[-1500:]!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {job['name']} to run")
        time.sleep(0.5)


def wait_output(api, job, text: str, timeout: float = 60) -> None:
    """Wait until the job's output (its tail) shows ``text``: a job Slurm calls RUNNING may not
    have run its first line yet on a busy machine."""
    from dssr_core.testing import wait_until

    def shown():
        answer = api.post(f"/request/{job['name']}/1/{job['jobid']}/tail", {"qs": {}})
        return answer.status == 200 and text in answer.text

    wait_until(shown, timeout, what=f"{text!r} in the output of {job['name']}")


class ServiceExecutor(ShellExecutor):
    """The shell executor, with a web service port as the singularity executor gives interactive jobs."""

    def render(self, request):
        return attrs.evolve(super().render(request), service_port=2228)


def assert_the_job_spec_reaches_slurm(api, name: str, bearer: str) -> None:
    """A held job's memory, walltime and numeric device as Slurm holds them (squeue as root).

    Slurm keeps time limits in whole minutes: sbatch's 0-00:02:30 and slurmrestd's 3 both read 3:00.
    """
    facts = "JOBOBJ_RAM=1\nJOBOBJ_WALLTIME=00:02:30"
    job = job_of(name, api.submit(name, template("true", devices=[*SHARED, "sbatch_nice=7"], extra=facts),
                                  hold=True, bearer=bearer))
    try:
        fields = squeue_field(job["jobid"], "%m|%l|%y|%D|%C")
        assert fields == "1G|3:00|7|1|1", fields
    finally:
        assert api.post("/terminate", job).status == 200


def assert_interactive_job_gets_its_url(connector, name: str, bearer: str, devices: list[str]) -> None:
    """Through the HTTP app: the port rides in the job's comment, info answers the node's URL."""
    settings = Settings.from_env({})
    api = ApiClient.for_app(create_app(settings, connector, ServiceExecutor(settings), executor_name="shell"))
    job = job_of(name, api.submit(name, template("sleep 30", devices=devices), bearer=bearer))
    try:
        comment = squeue_field(job["jobid"], "%k")
        expected = r"dssr-service-port=2228 dssr-job-number=1 dssr-script=[0-9a-f]{16}"
        assert re.fullmatch(expected, comment), comment
        wait_running(api, job)
        answer = api.post(f"/request/{name}/1/{job['jobid']}/info", {"qs": {}})
        assert answer.status == 200, answer.text
        assert answer.json["url"] == "http://localhost:2228/"
        assert set(answer.json) == {"about", "help", "url", "actions"}
    finally:
        assert api.post("/terminate", job).status == 200


def fill_the_node(submit) -> list[dict]:
    """The contract suite's ``fill_scheduler``: one exclusive job, so the suite's next job (not
    exclusive) waits for the node (reason Resources). It sleeps two minutes at most: the suite
    terminates it, but a test run killed before its teardown would leave the node taken."""
    return [submit("sleep 120", devices=["exclusive=True"])]
