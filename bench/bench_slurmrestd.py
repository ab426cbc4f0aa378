"""Speed of the slurmrestd connector on the real test cluster, through the real HTTP app.

Prints figures; asserts nothing about time. Needs the cluster up (``tests/cluster/cluster.sh up``)
and root on the cluster's host (the held jobs are made with ``su - kirby -c 'sbatch ...'``).

The same measures as bench_slurm_cli.py:

- an upstream poll cycle: ``/queued``, ``/running``, then ``/runstatus`` for every job, with
  100 and 1,000 held jobs in Slurm, each cycle starting from a stale snapshot (as when upstream
  polls less often than the status interval), and the HTTP calls to slurmrestd one cycle costs;
- the latency of one ``/submit`` (median of 10), and its HTTP calls.
"""

import shlex
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt

from dssr_core.app import create_app
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, shell_template
from dssr_slurm.rest_connector import SlurmRestConnector

ROOT = Path(__file__).resolve().parents[1]
CYCLES = 5
SUBMITS = 10


def cluster_env() -> dict[str, str]:
    text = subprocess.run(["bash", str(ROOT / "tests/cluster/cluster.sh"), "env"], check=True,
                          capture_output=True, text=True).stdout
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


def submit_held_in_bulk(user: str, prefix: str, count: int) -> list[str]:
    """``count`` held jobs named jarvice_<prefix>-<i>, made by one shell command as ``user``."""
    loop = (f"for i in $(seq 1 {count}); do sbatch --parsable --hold --job-name=jarvice_{prefix}-$i "
            "--output=/dev/null --wrap=true || exit 1; done")
    done = subprocess.run(["su", "-", user, "-c", loop], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        sys.exit(f"bulk sbatch failed: {done.stderr.strip()}")
    return [line.split(";")[0] for line in done.stdout.split()]


def cancel(jobids: list[str]) -> None:
    for start in range(0, len(jobids), 500):
        subprocess.run(["scancel", *jobids[start:start + 500]], capture_output=True, timeout=120)


def poll_cycle(api) -> int:
    """One upstream poll; returns how many jobs it saw."""
    jobs = api.get("/queued").json + api.get("/running").json
    for name, jobid in jobs:
        api.post("/runstatus", {"name": name, "number": 1, "jobid": jobid})
    return len(jobs)


def measure_cycles(api, connector, expected: int) -> tuple[float, float, int, int]:
    times, calls, seen = [], [], 0
    for _ in range(CYCLES):
        connector.snapshot.invalidate()  # every cycle pays for its own GET /jobs
        before = connector.client.calls
        started = time.perf_counter()
        seen = poll_cycle(api)
        times.append(time.perf_counter() - started)
        calls.append(connector.client.calls - before)
    if seen < expected:
        print(f"  warning: the cycle saw {seen} jobs, expected at least {expected}")
    return statistics.median(times), max(times), max(calls), seen


def measure_submit(api, connector, bearer) -> tuple[float, float]:
    times, jobids, before = [], [], connector.client.calls
    for i in range(SUBMITS):
        name = f"bench-rest-submit-{uuid.uuid4().hex[:6]}-{i}"
        started = time.perf_counter()
        answer = api.submit(name, shell_template("true"), hold=True, bearer=bearer)
        times.append(time.perf_counter() - started)
        if answer.status != 200:
            sys.exit(f"submit failed: {answer.status} {answer.text}")
        jobids.append(answer.json[0])
    calls = (connector.client.calls - before) / SUBMITS
    cancel(jobids)
    return statistics.median(times), calls


def main() -> None:
    env = cluster_env()
    settings = Settings.from_env({**env, "JARVICE_BAREMETAL_CONNECTOR": "slurmrestd"})
    connector = SlurmRestConnector.from_settings(settings)
    api = ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings)))
    bearer = jwt.encode({"email": "kirby@example.org"}, "bench-key-dssr-does-not-check-it-at-all")
    print(f"slurmrestd at {connector.client.base_url}: {connector.check()}")
    print(f"  status interval {connector.config.status_interval:g} s, token mode {connector.tokens.mode}, "
          f"pool of {connector.rest.pool_size} connection(s)")

    median, calls = measure_submit(api, connector, bearer)
    print(f"submit: median {median * 1000:.1f} ms of {SUBMITS}, {calls:g} HTTP call(s) each "
          "(a fresh GET /jobs for retried submissions, then the POST)")

    run = uuid.uuid4().hex[:6]
    jobids: list[str] = []
    try:
        for total in (100, 1000):
            started = time.perf_counter()
            jobids += submit_held_in_bulk("kirby", f"bench-rest-{run}-{total}", total - len(jobids))
            print(f"{total} held jobs in Slurm (bulk sbatch took {time.perf_counter() - started:.1f} s)")
            median, worst, calls, seen = measure_cycles(api, connector, total)
            print(f"  poll cycle ({seen} jobs listed): median {median:.3f} s, worst {worst:.3f} s "
                  f"of {CYCLES}; {calls} HTTP call(s) to slurmrestd per cycle")
            median, calls = measure_submit(api, connector, bearer)
            print(f"  submit with {total} jobs in Slurm: median {median * 1000:.1f} ms, "
                  f"{calls:g} HTTP call(s) each")
    finally:
        cancel(jobids)
        connector.close()
    print(f"cleaned up {len(jobids)} held jobs")


if __name__ == "__main__":
    main()
