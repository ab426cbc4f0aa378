"""Helpers of the Slurm tests that are not fixtures (imported by the test modules)."""

import subprocess
import time

import jwt


def bearer_for(email: str) -> str:
    """A JWT like upstream's bearer (DSSR reads its e-mail, it does not check the signature)."""
    claims = {"email": email, "iat": int(time.time())}
    return jwt.encode(claims, "any-key-will-do-dssr-does-not-check-it", algorithm="HS256")


def squeue_field(jobid: str, field: str) -> str:
    """One field of a job, as root sees it (independent of DSSR)."""
    done = subprocess.run(["squeue", "-h", "-a", "-t", "all", "-j", jobid, "-o", field],
                          capture_output=True, text=True)
    return done.stdout.strip()


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
