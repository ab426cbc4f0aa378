"""What record_v0_0_38.py and record_v0_0_4x.py share: slurmrestd of the cluster of
``cluster.sh env`` asked with plain ``requests``, tokens minted from the cluster's key (never
written), answers saved as ``{"source", "request", "status", "body"}`` (or ``"text"``), and root's
squeue of that cluster to wait for the jobs' states."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import requests

BASE = f"http://{os.environ['JARVICE_SLURMRESTD_ADDR']}:{os.environ.get('JARVICE_SLURMRESTD_PORT', '6820')}"
KEY = Path(os.environ["JARVICE_SLURMRESTD_JWT_KEY_FILE"]).read_bytes()
SCRATCH = os.environ["JARVICE_JOB_SCRATCH_DIR"]
SQUEUE = Path(os.environ.get("DSSR_CLUSTER_SLURM_BIN", "/usr/bin")) / "squeue"


def token(user: str, lifespan: int = 300, offset: int = 0, key: bytes = KEY) -> str:
    now = int(time.time()) + offset
    return jwt.encode({"iat": now, "exp": now + lifespan, "sun": user}, key, algorithm="HS256")


def call(source: str, method: str, path: str, user: str = "kirby", body=None, auth: str | None = "fresh"):
    """slurmrestd's answer; ``auth``: a fresh token, an ``expired`` one, one of a ``wrong-key``, or None."""
    headers = {}
    if auth == "fresh":
        headers = {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token(user)}
    elif auth == "expired":
        headers = {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token(user, 60, -600)}
    elif auth == "wrong-key":
        headers = {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token(user, key=os.urandom(32))}
    response = requests.request(method, BASE + path, headers=headers, json=body, timeout=60)
    try:
        payload = {"body": response.json()}
    except ValueError:
        payload = {"text": response.text}
    return {"source": source, "request": f"{method} {path}", "status": response.status_code, **payload}


def save(out: Path, name: str, answer: dict, note: str = "", label: str = "") -> dict:
    if note:
        answer = {**answer, "note": note}
    (out / f"{name}.json").write_text(json.dumps(answer, indent=2) + "\n")
    print(f"{label}{name}: HTTP {answer['status']}")
    return answer


def state(jobid: int) -> str:
    done = subprocess.run([str(SQUEUE), "-h", "-a", "-t", "all", "-j", str(jobid), "-o", "%T"],
                          capture_output=True, text=True)
    return done.stdout.strip()


def wait_state(jobid: int, wanted: set[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while state(jobid) not in wanted:
        if time.monotonic() > deadline:
            sys.exit(f"job {jobid} did not reach {wanted} (now {state(jobid)!r})")
        time.sleep(0.5)


def wait_purged(jobid: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while state(jobid):
        if time.monotonic() > deadline:
            sys.exit(f"job {jobid} still known to slurmctld")
        time.sleep(1)


def only_ours(answer: dict, ids: set[int]) -> dict:
    body = dict(answer["body"])
    body["jobs"] = [job for job in body.get("jobs", []) if job.get("job_id") in ids]
    return {**answer, "body": body}
