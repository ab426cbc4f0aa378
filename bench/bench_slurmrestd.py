"""Speed of the slurmrestd connector on the real test cluster, through the real HTTP app.

Prints figures; asserts nothing about time. Needs the cluster up (``tests/cluster/cluster.sh up``)
and root on the cluster's host (the held jobs are made with ``su - kirby -c 'sbatch ...'``).

The same measures as bench_slurm_cli.py:

- an upstream poll cycle: ``/queued``, ``/running``, then ``/runstatus`` for every job, with
  100 and 1,000 held jobs in Slurm, each cycle starting from a stale snapshot (as when upstream
  polls less often than the status interval), and the HTTP calls to slurmrestd one cycle costs;
- the latency of one ``/submit`` (median of 10), and its HTTP calls.
"""

import subprocess
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


def submit_held_in_bulk(user: str, prefix: str, count: int) -> list[str]:
    """``count`` held jobs named jarvice_<prefix>-<i>, made by one shell command as ``user``."""
    done = subprocess.run(["su", "-", user, "-c", held_jobs_loop(prefix, count)], capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        sys.exit(f"bulk sbatch failed: {done.stderr.strip()}")
    return [line.split(";")[0] for line in done.stdout.split()]


def cancel(jobids: list[str]) -> None:
    for start in range(0, len(jobids), 500):
        subprocess.run(["scancel", *jobids[start:start + 500]], capture_output=True, timeout=120)


def http_calls(connector) -> int:
    return connector.client.calls


def main() -> None:
    settings, connector, api, bearer = start_on_cluster("slurmrestd")
    print(f"slurmrestd at {connector.client.base_url}: {connector.check()}")
    print(f"  status interval {connector.config.status_interval:g} s, token mode {connector.tokens.mode}, "
          f"pool of {connector.rest.pool_size} connection(s)")

    median, calls = measure_submit(api, connector, bearer, "bench-rest-submit", http_calls, cancel)
    print(f"submit: median {median * 1000:.1f} ms of {SUBMITS}, {calls:g} HTTP call(s) each "
          "(the POST, and a GET of each id Slurm gave out since the last job list: a twin from "
          "another replica would have one)")

    run = uuid.uuid4().hex[:6]
    jobids: list[str] = []
    try:
        for total in (100, 1000):
            started = time.perf_counter()
            jobids += submit_held_in_bulk("kirby", f"bench-rest-{run}-{total}", total - len(jobids))
            print(f"{total} held jobs in Slurm (bulk sbatch took {time.perf_counter() - started:.1f} s)")
            median, worst, calls, seen = measure_cycles(api, connector, total, http_calls)
            print(f"  poll cycle ({seen} jobs listed): median {median:.3f} s, worst {worst:.3f} s "
                  f"of {CYCLES}; {calls} HTTP call(s) to slurmrestd per cycle")
            median, calls = measure_submit(api, connector, bearer, "bench-rest-submit", http_calls, cancel)
            print(f"  submit with {total} jobs in Slurm: median {median * 1000:.1f} ms, "
                  f"{calls:g} HTTP call(s) each")
    finally:
        cancel(jobids)
        connector.close()
    print(f"cleaned up {len(jobids)} held jobs")


if __name__ == "__main__":
    main()
