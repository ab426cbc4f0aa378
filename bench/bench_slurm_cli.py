"""Speed of the slurm-cli connector on the real test cluster, through the real HTTP app.

Prints figures; asserts nothing about time. Needs the cluster up (``tests/cluster/cluster.sh up``).

- an upstream poll cycle: ``/queued``, ``/running``, then ``/runstatus`` for every job, with
  100 and 1,000 held jobs in Slurm, each cycle starting from a stale snapshot (as when upstream
  polls less often than the status interval), and the SSH commands one cycle costs;
- the latency of one ``/submit`` (median of 10).

Goals: 100 jobs < 0.15 s and 1,000 jobs < 1 s per cycle, <= 2 SSH commands per cycle,
submit < 0.07 s.
"""

import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from slurm_bench_common import (  # noqa: E402
    CYCLES,
    SUBMITS,
    held_jobs_loop,
    measure_cycles,
    measure_submit,
    start_on_cluster,
)


def submit_held_in_bulk(connector, account, prefix: str, count: int) -> list[str]:
    """``count`` held jobs named jarvice_<prefix>-<i>, submitted by one SSH command."""
    result = connector.ssh.run(account, held_jobs_loop(prefix, count), timeout=600)
    if not result.ok:
        sys.exit(f"bulk sbatch failed: {result.stderr.strip()}")
    return [line.split(";")[0] for line in result.stdout.split()]


def cancel(connector, account, jobids: list[str]) -> None:
    for start in range(0, len(jobids), 500):
        connector.ssh.run(account, "scancel " + " ".join(jobids[start:start + 500]), timeout=120)


def ssh_commands(connector) -> int:
    return connector.ssh.commands_run


def main() -> None:
    settings, connector, api, bearer = start_on_cluster("slurm-cli")
    kirby = connector.accounts.for_email("kirby@example.org")
    address = f"{connector.ssh_settings.host}:{connector.ssh_settings.port}"
    print(f"slurm-cli on {address}"
          f" (status interval {connector.config.status_interval:g} s)")
    connector.check()  # the connection is open before anything is timed

    median, commands = measure_submit(api, connector, bearer, "bench-submit", ssh_commands,
                                      lambda jobids: cancel(connector, kirby, jobids))
    print(f"submit: median {median * 1000:.1f} ms of {SUBMITS} (goal < 70 ms), "
          f"{commands:g} SSH command(s) each")

    run = uuid.uuid4().hex[:6]
    jobids: list[str] = []
    try:
        for total, goal in ((100, 0.15), (1000, 1.0)):
            started = time.perf_counter()
            jobids += submit_held_in_bulk(connector, kirby, f"bench-{run}-{total}", total - len(jobids))
            print(f"{total} held jobs in Slurm (bulk sbatch took {time.perf_counter() - started:.1f} s)")
            median, worst, commands, _ = measure_cycles(api, connector, total, ssh_commands)
            print(f"  poll cycle: median {median:.3f} s, worst {worst:.3f} s of {CYCLES} "
                  f"(goal < {goal:g} s); "
                  f"{commands} SSH command(s) per cycle (goal <= 2)")
    finally:
        cancel(connector, kirby, jobids)
        connector.close()


if __name__ == "__main__":
    main()
