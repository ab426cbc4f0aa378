"""Speed of the slurm-cli connector on the real test cluster, through the real HTTP app.

Prints figures; asserts nothing about time. Needs the cluster up (``tests/cluster/cluster.sh up``).

- an upstream poll cycle: ``/queued``, ``/running``, then ``/runstatus`` for every job, with
  100 and 1,000 held jobs in Slurm, each cycle starting from a stale snapshot (as when upstream
  polls less often than the status interval), and the SSH commands one cycle costs;
- the latency of one ``/submit`` (median of 10).

Goals: 100 jobs < 0.15 s and 1,000 jobs < 1 s per cycle, <= 2 SSH commands per cycle,
submit < 0.07 s.
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
from dssr_slurm.cli_connector import SlurmCliConnector

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


def submit_held_in_bulk(connector, account, prefix: str, count: int) -> list[str]:
    """``count`` held jobs named jarvice_<prefix>-<i>, submitted by one SSH command."""
    script = (f"for i in $(seq 1 {count}); do sbatch --parsable --hold --job-name=jarvice_{prefix}-$i "
              "--output=/dev/null --wrap=true || exit 1; done")
    result = connector.ssh.run(account, script, timeout=600)
    if not result.ok:
        sys.exit(f"bulk sbatch failed: {result.stderr.strip()}")
    return [line.split(";")[0] for line in result.stdout.split()]


def cancel(connector, account, jobids: list[str]) -> None:
    for start in range(0, len(jobids), 500):
        connector.ssh.run(account, "scancel " + " ".join(jobids[start:start + 500]), timeout=120)


def poll_cycle(api) -> int:
    """One upstream poll; returns how many jobs it saw."""
    jobs = api.get("/queued").json + api.get("/running").json
    for name, jobid in jobs:
        api.post("/runstatus", {"name": name, "number": 1, "jobid": jobid})
    return len(jobs)


def measure_cycles(api, connector, expected: int) -> tuple[float, float, int]:
    times, commands, seen = [], [], 0
    for _ in range(CYCLES):
        connector.snapshot.invalidate()  # every cycle pays for its own squeue
        before = connector.ssh.commands_run
        started = time.perf_counter()
        seen = poll_cycle(api)
        times.append(time.perf_counter() - started)
        commands.append(connector.ssh.commands_run - before)
    if seen < expected:
        print(f"  warning: the cycle saw {seen} jobs, expected at least {expected}")
    return statistics.median(times), max(times), max(commands)


def measure_submit(api, connector, account, bearer) -> tuple[float, int]:
    times, jobids, before = [], [], connector.ssh.commands_run
    for i in range(SUBMITS):
        name = f"bench-submit-{uuid.uuid4().hex[:6]}-{i}"
        started = time.perf_counter()
        answer = api.submit(name, shell_template("true"), hold=True, bearer=bearer)
        times.append(time.perf_counter() - started)
        if answer.status != 200:
            sys.exit(f"submit failed: {answer.status} {answer.text}")
        jobids.append(answer.json[0])
    commands = (connector.ssh.commands_run - before) / SUBMITS
    cancel(connector, account, jobids)
    return statistics.median(times), commands


def main() -> None:
    env = cluster_env()
    settings = Settings.from_env({**env, "JARVICE_BAREMETAL_CONNECTOR": "slurm-cli"})
    connector = SlurmCliConnector.from_settings(settings)
    api = ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings)))
    bearer = jwt.encode({"email": "kirby@example.org"}, "bench-key-dssr-does-not-check-it-at-all")
    kirby = connector.accounts.for_email("kirby@example.org")
    address = f"{settings.get('JARVICE_SLURM_CLUSTER_ADDR')}:{settings.get('JARVICE_SLURM_CLUSTER_PORT')}"
    print(f"slurm-cli on {address}"
          f" (status interval {connector.config.status_interval:g} s)")
    connector.check()  # the connection is open before anything is timed

    median, commands = measure_submit(api, connector, kirby, bearer)
    print(f"submit: median {median * 1000:.1f} ms of {SUBMITS} (goal < 70 ms), "
          f"{commands:g} SSH command(s) each")

    run = uuid.uuid4().hex[:6]
    jobids: list[str] = []
    try:
        for total, goal in ((100, 0.15), (1000, 1.0)):
            started = time.perf_counter()
            jobids += submit_held_in_bulk(connector, kirby, f"bench-{run}-{total}", total - len(jobids))
            print(f"{total} held jobs in Slurm (bulk sbatch took {time.perf_counter() - started:.1f} s)")
            median, worst, commands = measure_cycles(api, connector, total)
            print(f"  poll cycle: median {median:.3f} s, worst {worst:.3f} s of {CYCLES} "
                  f"(goal < {goal:g} s); "
                  f"{commands} SSH command(s) per cycle (goal <= 2)")
    finally:
        cancel(connector, kirby, jobids)
        connector.close()


if __name__ == "__main__":
    main()
