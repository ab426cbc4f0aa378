"""Grid Engine beside Slurm: the upstream poll cycle of the gridengine connector on the Grid Engine
test cluster and of slurm-cli on the Slurm 22.05 test cluster, in one run, through the real HTTP app.

Prints figures; asserts nothing about time. Brings the Grid Engine cluster up
(``DSSR_CLUSTER_SCHEDULER=gridengine tests/cluster/cluster.sh up``); needs the Slurm 22.05 cluster
up. A poll cycle is ``/queued``, ``/running``, then ``/runstatus`` for every job, with 100 and
1,000 held jobs in the scheduler, each cycle starting from a stale snapshot, and the SSH commands
one cycle costs. The held jobs are named ``jarvice_bench-ge-<run>-...`` and deleted at the end
(the Slurm cluster is shared: its jobs are cancelled as soon as they are measured).

Goals, as for slurm-cli: 100 jobs < 0.15 s and 1,000 jobs < 1 s per cycle, <= 2 SSH commands per cycle.
"""

import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from slurm_bench_common import CYCLES, ROOT, held_jobs_loop, measure_cycles  # noqa: E402

from dssr_core.app import create_app  # noqa: E402
from dssr_core.plugins import make_registry  # noqa: E402
from dssr_core.settings import Settings  # noqa: E402
from dssr_core.shell import ShellExecutor  # noqa: E402
from dssr_core.testing import ApiClient  # noqa: E402

CLUSTER_SH = ROOT / "tests/cluster/cluster.sh"
SIZES = ((100, 0.15), (1000, 1.0))


def cluster_env(scheduler: str) -> dict[str, str]:
    env = {**os.environ, "DSSR_CLUSTER_SCHEDULER": scheduler}
    if scheduler == "gridengine":
        subprocess.run(["bash", str(CLUSTER_SH), "up"], check=True, env=env, capture_output=True)
    text = subprocess.run(["bash", str(CLUSTER_SH), "env"], check=True, env=env, capture_output=True,
                          text=True).stdout
    exports = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            name, _, value = words[1].partition("=")
            exports[name] = value
    return exports


def connect(name: str, env: dict[str, str]):
    settings = Settings.from_env({**env, "JARVICE_BAREMETAL_CONNECTOR": name})
    connector = make_registry().select("connector", name).spec.backend.from_settings(settings)
    api = ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings), executor_name="shell"),
                            check_contract=False)
    return connector, api


def grid_engine_loop(prefix: str, count: int) -> str:
    """A shell loop that submits ``count`` held jobs named jarvice_<prefix>-<i>, printing their ids."""
    return (f"for i in $(seq 1 {count}); do echo true | qsub -terse -h -N jarvice_{prefix}-$i -o /dev/null "
            "-j y || exit 1; done")


SCHEDULERS = {
    # connector: (cluster, submit loop, delete command)
    "gridengine": ("gridengine", grid_engine_loop, "qdel"),
    "slurm-cli": ("slurm", held_jobs_loop, "scancel"),
}


def bench(name: str, run: str) -> list[str]:
    scheduler, loop, delete = SCHEDULERS[name]
    connector, api = connect(name, cluster_env(scheduler))
    kirby = connector.accounts.for_email("kirby@example.org")
    connector.check()  # the connection is open before anything is timed
    lines, jobids = [], []
    try:
        for total, goal in SIZES:
            command = loop(f"bench-ge-{run}-{total}", total - len(jobids))
            result = connector.ssh.run(kirby, command, timeout=900)
            if not result.ok:
                sys.exit(f"{name}: bulk submit failed: {result.stderr.strip()[:500]}")
            jobids += [line.split(";")[0].split(".")[0] for line in result.stdout.split()]
            median, worst, commands, seen = measure_cycles(api, connector, total,
                                                           lambda connector: connector.ssh.commands_run)
            lines.append(f"{name:<11} {total:>5} held ({seen:>5} listed)  median {median:.3f} s  "
                         f"worst {worst:.3f} s  (goal < {goal:g} s)  {commands} SSH command(s) per cycle")
            print(lines[-1], flush=True)
    finally:
        for start in range(0, len(jobids), 500):
            connector.ssh.run(kirby, f"{delete} " + " ".join(jobids[start:start + 500]), timeout=300)
        connector.close()
    return lines


def main() -> None:
    run = uuid.uuid4().hex[:6]
    print(f"poll cycle, {CYCLES} cycles each, load average {os.getloadavg()[0]:.1f}")
    lines = bench("gridengine", run) + bench("slurm-cli", run)
    print(f"summary (load average {os.getloadavg()[0]:.1f}):")
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    main()
