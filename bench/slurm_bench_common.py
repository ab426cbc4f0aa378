"""What bench_slurm_cli.py and bench_slurmrestd.py share: the connector on the test cluster behind
the real HTTP app, the held jobs' shell loop, one upstream poll cycle and the two measures (poll
cycles and ``/submit``).

``calls(connector)`` is how a benchmark counts its trips to Slurm: the SSH commands run for
slurm-cli, the HTTP calls to slurmrestd for slurmrestd.
"""

import os
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jwt

from dssr_core.app import create_app
from dssr_core.plugins import make_registry
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, shell_template

ROOT = Path(__file__).resolve().parents[1]
CYCLES = 5
SUBMITS = 10


def cluster_env(version: str | None = None) -> dict[str, str]:
    """``cluster.sh env`` (of the Slurm ``version``, else of ``DSSR_CLUSTER_SLURM``) as a dict."""
    shell_env = {**os.environ, "DSSR_CLUSTER_SLURM": version} if version else None
    text = subprocess.run(["bash", str(ROOT / "tests/cluster/cluster.sh"), "env"], check=True,
                          capture_output=True, text=True, env=shell_env).stdout
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


def wait_until_slurm_forgets_old_jobs(timeout: float = 300) -> None:
    """Wait until the controller lists no job: ended and cancelled jobs stay in every answer
    (squeue's and GET /jobs') until Slurm purges them, and would be timed as ours."""
    started = time.perf_counter()
    while True:
        listed = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True,
                                text=True).stdout.split()
        if not listed or time.perf_counter() - started > timeout:
            break
        time.sleep(2)
    waited = time.perf_counter() - started
    if waited > 1:
        print(f"(waited {waited:.0f} s for Slurm to purge {len(listed) or 'its'} old jobs)")


def start_on_cluster(connector_name: str):
    """The settings, the connector (selected by name, as ``dssr serve`` does) and the HTTP app on the
    test cluster, and a bearer for kirby@example.org (DSSR reads its e-mail; the signature is
    upstream's to check)."""
    wait_until_slurm_forgets_old_jobs()
    settings = Settings.from_env({**cluster_env(), "JARVICE_BAREMETAL_CONNECTOR": connector_name})
    connector = make_registry().select("connector", connector_name).spec.backend.from_settings(settings)
    api = ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings), executor_name="shell"),
                            check_contract=False)
    bearer = jwt.encode({"email": "kirby@example.org"}, "bench-key-dssr-does-not-check-it-at-all")
    return settings, connector, api, bearer


def held_jobs_loop(prefix: str, count: int) -> str:
    """A shell loop that submits ``count`` held jobs named jarvice_<prefix>-<i>, printing their ids."""
    return (f"for i in $(seq 1 {count}); do sbatch --parsable --hold --job-name=jarvice_{prefix}-$i "
            "--output=/dev/null --wrap=true || exit 1; done")


def poll_cycle(api) -> int:
    """One upstream poll; returns how many jobs it saw."""
    jobs = api.get("/queued").json + api.get("/running").json
    for name, jobid in jobs:
        api.post("/runstatus", {"name": name, "number": 1, "jobid": jobid})
    return len(jobs)


def measure_cycles(api, connector, expected: int,
                   calls: Callable[[object], int]) -> tuple[float, float, int, int]:
    """Median and worst time of a poll cycle, the most calls one cost, and the jobs it saw."""
    times, counts, seen = [], [], 0
    for _ in range(CYCLES):
        connector.snapshot.invalidate()  # every cycle pays for its own job list
        before = calls(connector)
        started = time.perf_counter()
        seen = poll_cycle(api)
        times.append(time.perf_counter() - started)
        counts.append(calls(connector) - before)
    if seen < expected:
        print(f"  warning: the cycle saw {seen} jobs, expected at least {expected}")
    return statistics.median(times), max(times), max(counts), seen


def measure_submit(api, connector, bearer: str, prefix: str, calls: Callable[[object], int],
                   cancel: Callable[[list[str]], None]) -> tuple[float, float]:
    """Median time of a held ``/submit`` and the calls each cost; the jobs are cancelled after."""
    times, jobids, before = [], [], calls(connector)
    for i in range(SUBMITS):
        name = f"{prefix}-{uuid.uuid4().hex[:6]}-{i}"
        started = time.perf_counter()
        answer = api.submit(name, shell_template("true"), hold=True, bearer=bearer)
        times.append(time.perf_counter() - started)
        if answer.status != 200:
            sys.exit(f"submit failed: {answer.status} {answer.text}")
        jobids.append(answer.json[0])
    per_submit = (calls(connector) - before) / SUBMITS
    cancel(jobids)
    return statistics.median(times), per_submit
