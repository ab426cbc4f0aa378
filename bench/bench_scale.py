"""DSSR's cost in the size of Slurm's queue: both Slurm connectors with N held jobs queued.

For each Slurm version (``--slurm``) and each N (``--n``), N held jobs of kirby are queued
(``jarvice_scale-<run>-<i>``, by shell loops over SSH as kirby), then for each connector a real
``dssr serve`` on the test cluster is measured through HTTP, as upstream drives it:

- submit p50: the median of ``--submits`` held ``/submit`` (and its ratio to N = 0), beside
  Slurm's own cost of a submission at the same N: ``sbatch`` timed in a shell on the login node
  (slurm-cli), a held job POSTed straight to slurmrestd, taking turns with DSSR's (slurmrestd);
- poll cycle per listed job: one cycle is ``/queued``, ``/running`` and ``/runstatus`` for every
  listed job, its time divided by the jobs listed (median of ``--cycles``), once the queue has
  stopped changing (a snapshot refresh then asks Slurm, but has nothing new to read);
- refresh CPU: the CPU time ``dssr serve`` spends on the ``/queued`` that refreshes its status
  snapshot, once when nothing has changed for an interval and once right after a submit (the
  queue changed);
- RSS: ``dssr serve``'s resident memory after the measures, and its peak (VmHWM).

Prints figures and a table; asserts nothing. Every job it queued is cancelled at the end (at
once, by id). Needs root on the cluster's host and the cluster up (``tests/cluster/cluster.sh
up``; it runs ``up`` itself for each version, which is idempotent). A private cluster is used
when its ``DSSR_CLUSTER_*`` settings are in the environment (see docs/cluster.md).

    python bench/bench_scale.py --n 0,1000,10000 --slurm 26.05,22.05
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import jwt

from dssr_core.testing import ApiClient, shell_template
from dssr_core.testing.plugin import DssrServer

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import thread_cpu_seconds  # noqa: E402
from slurm_bench_common import cluster_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "cluster" / "cluster.sh"
CONNECTORS = ("slurm-cli", "slurmrestd")
INTERVAL = 2.0
#: The test cluster's MinJobAge, plus a second: how long Slurm still lists a cancelled job.
MIN_JOB_AGE = 6
#: Shell loops queueing the held jobs at the same time (sbatch waits on slurmctld, not on CPU).
LOOPS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="0,1000,10000", help="queued jobs, comma-separated (ascending)")
    parser.add_argument("--slurm", default="26.05,22.05", help="Slurm versions of the test clusters")
    parser.add_argument("--connectors", default=",".join(CONNECTORS))
    parser.add_argument("--submits", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=2)
    options = parser.parse_args()
    sizes = sorted(int(n) for n in options.n.split(","))
    connectors = [name for name in options.connectors.split(",") if name]
    rows = []
    for version in [v for v in options.slurm.split(",") if v]:
        rows += bench_version(version, sizes, connectors, options)
    print_table(rows)


def bench_version(version: str, sizes: list[int], connectors: list[str], options) -> list[dict]:
    env = cluster_up(version)
    print(f"\nSlurm {version}: {env['JARVICE_SLURM_CLUSTER_ADDR']}:{env['JARVICE_SLURM_CLUSTER_PORT']}, "
          f"slurmrestd :{env['JARVICE_SLURMRESTD_PORT']} (load average {load()})", flush=True)
    run = uuid.uuid4().hex[:6]
    held: list[str] = []  # the N held jobs
    queued: list[str] = []  # every job this run made, cancelled at the end
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as logs:
        servers = {name: start_server(env, name, logs) for name in connectors}
        try:
            for size in sizes:
                started = time.perf_counter()
                more = queue_held(env, f"scale-{run}", len(held), size - len(held))
                held += more
                queued += more
                print(f"  {size} held jobs of ours queued ({time.perf_counter() - started:.0f} s to queue "
                      f"them; load average {load()})", flush=True)
                for name, server in servers.items():
                    row = measure(env, server, name, options, queued)
                    rows.append({"slurm": version, "connector": name, "n": size, **row})
                    figures = ", ".join(f"{key} {value}" for key, value in row.items())
                    print(f"    {name}: {figures}", flush=True)
        finally:
            for server in servers.values():
                server.stop()
            cancel(env, queued)
            print(f"  cancelled the {len(queued)} jobs of this run", flush=True)
    return rows


def cluster_up(version: str) -> dict[str, str]:
    """``cluster.sh up``, then its ``env``, for ``version`` (a private cluster's DSSR_CLUSTER_* kept)."""
    subprocess.run(["bash", str(CLUSTER), "up"], env={**os.environ, "DSSR_CLUSTER_SLURM": version},
                   check=True, capture_output=True)
    return cluster_env(version)


def start_server(env: dict[str, str], connector: str, logs: str) -> DssrServer:
    settings = {**env, "JARVICE_BAREMETAL_CONNECTOR": connector, "JARVICE_BAREMETAL_EXECUTOR": "shell",
                "JARVICE_SLURM_STATUS_INTERVAL": f"{INTERVAL:g}", "JARVICE_SCHED_LOGLEVEL": "WARNING"}
    return DssrServer(settings, Path(logs) / f"{connector}.log").start()


def queue_held(env: dict[str, str], prefix: str, first: int, count: int) -> list[str]:
    """``count`` held jobs of kirby named jarvice_<prefix>-<i>, by :data:`LOOPS` SSH loops at once."""
    if count <= 0:
        return []
    shares = [range(first + part, first + count, LOOPS) for part in range(LOOPS)]
    found: list[list[str]] = [[] for _ in shares]

    def loop(index: int) -> None:
        numbers = " ".join(str(i) for i in shares[index])
        command = (f"for i in {numbers}; do sbatch --parsable --hold --job-name=jarvice_{prefix}-$i "
                   "--output=/dev/null --wrap=true || exit 1; done")
        done = subprocess.run(ssh_as(env, "kirby") + [command], capture_output=True, text=True, timeout=1800)
        found[index] = [line.split(";")[0] for line in done.stdout.split()]
        if done.returncode != 0:
            print(f"  warning: queueing held jobs failed: {done.stderr.strip()[:300]}", flush=True)

    threads = [threading.Thread(target=loop, args=(index,)) for index in range(len(shares)) if shares[index]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [jobid for part in found for jobid in part]


def ssh_as(env: dict[str, str], user: str) -> list[str]:
    return ["ssh", "-i", f"{env['DSSR_CLUSTER_DIR']}/keys/{user}", "-p", env["JARVICE_SLURM_CLUSTER_PORT"],
            "-o", f"UserKnownHostsFile={env['JARVICE_SLURM_SSH_KNOWN_HOSTS']}", "-o", "BatchMode=yes",
            f"{user}@{env['JARVICE_SLURM_CLUSTER_ADDR']}"]


def cancel(env: dict[str, str], jobids: list[str]) -> None:
    scancel = str(Path(env["DSSR_CLUSTER_SLURM_BIN"]) / "scancel")
    for start in range(0, len(jobids), 2000):
        subprocess.run([scancel, *jobids[start:start + 2000]], capture_output=True, timeout=300)


def measure(env: dict[str, str], server: DssrServer, connector: str, options, queued: list[str]) -> dict:
    """The figures of one connector at the queue's size now; the jobs it submits join ``queued``
    (cancelled at the end whatever happens) and are cancelled before the poll cycles."""
    api = ApiClient.for_url(server.url, timeout=300, check_contract=False)
    pid = server.process.pid
    bearer = jwt.encode({"email": "kirby@example.org"}, "bench-key-dssr-does-not-check-it-at-all")
    time.sleep(MIN_JOB_AGE)  # what the last measure cancelled is purged
    api.get("/queued")  # connections open, the first list read
    time.sleep(INTERVAL + 0.2)
    before = thread_cpu_seconds(pid)
    api.get("/queued")  # nothing changed since the last list
    unchanged = thread_cpu_seconds(pid) - before
    times, submitted, slurm_times = [], [], []
    straight = StraightSubmit(env) if connector == "slurmrestd" else None
    for i in range(options.submits):
        started = time.perf_counter()
        answer = api.submit(f"scale-submit-{uuid.uuid4().hex[:6]}-{i}", shell_template("true"), hold=True,
                            bearer=bearer)
        times.append(time.perf_counter() - started)
        if answer.status != 200:
            sys.exit(f"{connector}: submit failed: {answer.status} {answer.text}")
        submitted.append(answer.json[0])
        queued.append(answer.json[0])
        if straight is not None:  # taking turns with DSSR's, so that a busy moment falls on both
            seconds, jobid = straight.submit(f"scale-straight-{i}")
            slurm_times.append(seconds)
            submitted.append(jobid)
            queued.append(jobid)
    if straight is None:
        slurm_times, jobids = sbatch_in_a_shell(env, options.submits)
        submitted += jobids
        queued += jobids
    # The last submit changed the queue and made the snapshot stale: this /queued refreshes it.
    before = thread_cpu_seconds(pid)
    api.get("/queued")
    changed = thread_cpu_seconds(pid) - before
    cancel(env, submitted)
    time.sleep(MIN_JOB_AGE)  # the cancelled jobs purged: the cycles see a queue that does not change
    cycles, listed = [], 0
    for _ in range(options.cycles):
        time.sleep(INTERVAL + 0.2)  # each cycle starts from a stale snapshot
        started = time.perf_counter()
        listed = poll_cycle(api)
        cycles.append((time.perf_counter() - started) / max(listed, 1))
    status = Path(f"/proc/{pid}/status").read_text()
    return {"listed": listed, "submit_p50_ms": round(statistics.median(times) * 1000, 1),
            "slurm_submit_p50_ms": round(statistics.median(slurm_times) * 1000, 1),
            "cycle_per_job_ms": round(statistics.median(cycles) * 1000, 2),
            "refresh_cpu_changed_ms": round(changed * 1000, 1),
            "refresh_cpu_unchanged_ms": round(unchanged * 1000, 1),
            "rss_mb": memory(status, "VmRSS"), "rss_peak_mb": memory(status, "VmHWM")}


class StraightSubmit:
    """Slurm's own cost of a submission through slurmrestd: a held job POSTed straight to it as
    kirby (a token minted with the cluster's key), one connection kept alive, as DSSR does."""

    def __init__(self, env: dict[str, str]):
        import requests

        key = Path(env["JARVICE_SLURMRESTD_JWT_KEY_FILE"]).read_bytes()
        now = int(time.time())
        token = jwt.encode({"sun": "kirby", "iat": now, "exp": now + 3600}, key, algorithm="HS256")
        self.url = f"http://{env['JARVICE_SLURMRESTD_ADDR']}:{env['JARVICE_SLURMRESTD_PORT']}"
        self.session = requests.Session()
        self.session.headers.update({"X-SLURM-USER-NAME": "kirby", "X-SLURM-USER-TOKEN": token})
        versions = self.session.get(self.url + "/openapi.json", timeout=30).json()["paths"]
        self.version = max((path.split("/")[2] for path in versions if path.startswith("/slurm/v0.0.")),
                           key=lambda name: tuple(int(part) for part in name[1:].split(".")))

    def submit(self, name: str) -> tuple[float, str]:
        job = {"name": f"jarvice_{name}", "hold": True, "current_working_directory": "/tmp",
               "standard_output": "/dev/null", "dependency": "singleton"}
        if self.version == "v0.0.38":
            body = {"script": "#!/bin/sh\ntrue\n", "job": {**job, "environment": {"PATH": "/bin"}}}
        else:
            body = {"job": {**job, "script": "#!/bin/sh\ntrue\n", "environment": ["PATH=/bin"]}}
            if self.version == "v0.0.40":
                del body["job"]["hold"]
                body["job"]["priority"] = 0
        started = time.perf_counter()
        answer = self.session.post(f"{self.url}/slurm/{self.version}/job/submit", json=body, timeout=60)
        seconds = time.perf_counter() - started
        jobid = answer.json().get("job_id") or answer.json().get("result", {}).get("job_id")
        if not jobid:
            sys.exit(f"straight submit to slurmrestd failed: {answer.status_code} {answer.text[:300]}")
        return seconds, str(jobid)


def sbatch_in_a_shell(env: dict[str, str], count: int) -> tuple[list[float], list[str]]:
    """Slurm's own cost of a submission on the login node: ``sbatch --hold`` timed in one shell as
    kirby (no SSH, no lock: what slurm-cli's submit command adds to it is DSSR's)."""
    loop = (f"for i in $(seq 1 {count}); do s=$(date +%s%N); j=$(sbatch --parsable --hold --exclusive "
            "--job-name=jarvice_scale-straight-$i --output=/dev/null --wrap=true) || exit 1; "
            'echo "$j $(( $(date +%s%N) - s ))"; done')
    done = subprocess.run(ssh_as(env, "kirby") + [loop], capture_output=True, text=True, timeout=600)
    pairs = [line.split() for line in done.stdout.splitlines() if len(line.split()) == 2]
    if done.returncode != 0 or not pairs:
        sys.exit(f"sbatch in a shell failed: {done.stderr.strip()[:300]}")
    return [int(ns) / 1e9 for _, ns in pairs], [jobid.split(";")[0] for jobid, _ in pairs]


def poll_cycle(api: ApiClient) -> int:
    jobs = api.get("/queued").json + api.get("/running").json
    for name, jobid in jobs:
        api.post("/runstatus", {"name": name, "number": 1, "jobid": jobid})
    return len(jobs)


def memory(status: str, field: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return round(int(line.split()[1]) / 1024)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def print_table(rows: list[dict]) -> None:
    print("\n| Slurm | connector | N | listed | submit p50 | x N=0 | Slurm's own submit p50 "
          "| poll cycle per listed job | refresh CPU: changed / unchanged | RSS (peak) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    empty = {(row["slurm"], row["connector"]): row["submit_p50_ms"] for row in rows if row["n"] == 0}
    for row in rows:
        base = empty.get((row["slurm"], row["connector"]))
        ratio = f"{row['submit_p50_ms'] / base:.1f}" if base else "-"
        cycle = f"{row['cycle_per_job_ms']:g} ms" if row["listed"] else "-"
        print(f"| {row['slurm']} | {row['connector']} | {row['n']:,} | {row['listed']:,} "
              f"| {row['submit_p50_ms']:g} ms | {ratio} | {row['slurm_submit_p50_ms']:g} ms | {cycle} "
              f"| {row['refresh_cpu_changed_ms']} / {row['refresh_cpu_unchanged_ms']} ms "
              f"| {row['rss_mb']} MB ({row['rss_peak_mb']} MB) |")
    print(f"(load average at the end {load()})")


if __name__ == "__main__":
    main()
