"""Speed of the proxy of interactive jobs (the front listener), printed as figures only.

- the legacy API through the front listener against waitress alone: ``/runstatus`` and
  ``/running`` (the shapes of upstream's poll cycle), req/s and p50/p99, alternating rounds;
- a job's web service (tests/services/web_service.py), each path in turn over alternating
  rounds: 10 MB downloads (time to first byte, MB/s) and 50 concurrent websocket sessions
  echoing 64-byte messages (echoes/s, round trip p50/p99), with the CPU time per download and
  per echo of what carries them.

First on the dummy connector (a local job: the front listener's own cost, against the job's port
straight), then, with ``--slurm``, on the test cluster's slurm-cli, one job behind two ``dssr
serve`` (the proxy on OpenSSH, the default, and on paramiko) against ``ssh -N -L`` through the
same sshd with the same key, and the ratios to ``ssh -L`` (the node is this host, so "straight"
is its port on 127.0.0.1). ``DSSR_CLUSTER_SLURM`` picks the cluster, as for ``cluster.sh``.

Run: ``nox -s bench`` or ``python bench/bench_proxy.py [--seconds 3] [--ws-seconds 10] [--slurm]
[--rounds 7] [--job-rounds 5] [--api-only | --job-only]``.
"""

import argparse
import base64
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path

import jwt

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import cpu_seconds, post, run_echo_load, run_load, stop, thread_cpu_seconds, wait_live  # noqa: E402
from slurm_bench_common import cluster_env  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "dssr_slurm"))
from slurm_helpers import squeue_field, use_cluster, web_service_for_jobs  # noqa: E402  (one copy for the tests and this)

from dssr_core.testing import ApiClient  # noqa: E402
from dssr_core.testing.plugin import find_free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "tests" / "services" / "web_service.py"
THREADS = 16
ROUNDS = 5
DOWNLOAD = 10 * 1024 * 1024
SESSIONS = 50






def median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda figures: figures["rps"])[len(rounds) // 2]


def start_serve(env: dict, log) -> tuple[subprocess.Popen, int]:
    port = find_free_port()
    env = {**os.environ, **env, "WAITRESS_PORT": str(port), "WAITRESS_BIND_ADDRESS": "127.0.0.1",
           "DSSR_THREADS": str(THREADS), "DSSR_METRICS_PORT": "off"}
    env = {name: value.replace("{port}", str(port)) for name, value in env.items()}
    process = subprocess.Popen([sys.executable, "-m", "dssr_core", "serve"], env=env, stdout=log, stderr=log)
    wait_live(port, 15)
    return process, port


def interactive_template(command: str) -> str:
    return ("#!/bin/bash\n{DOWNSTREAM_PARAMETERS}\nJARVICE_CPU_CORES=1\nJOBOBJ_INTERACTIVE=true\n"
            + command + "\n")


def start_job(port: int, name: str, template: str, bearer: str | None, wait: float) -> dict:
    api = ApiClient.for_url(f"http://127.0.0.1:{port}", timeout=30)
    number = random.randint(100_000, 999_999)
    answer = api.submit(name, template, number=number, bearer=bearer)
    if answer.status != 200:
        sys.exit(f"submit failed: {answer.status} {answer.text}")
    job = {"name": name, "number": number, "jobid": answer.json[0]}
    deadline = time.monotonic() + wait
    unlisted_since = None
    while [name, job["jobid"]] not in api.get("/running").json:
        now = time.monotonic()
        queued = [name, job["jobid"]] in api.get("/queued").json
        unlisted_since = None if queued else unlisted_since or now
        if unlisted_since is not None and now - unlisted_since > 5:
            tail = api.post(f"/request/{name}/{number}/{job['jobid']}/tail", {"qs": {}}).text
            sys.exit(f"{name} ended before it ran; its output ends: {tail[-1500:]!r}")
        if now > deadline:
            post(port, "/terminate", job, 30)
            sys.exit(f"{name} did not start within {wait:.0f} s")
        time.sleep(0.5)
    return job


def wait_serving(port: int, path: str, host: str | None = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            connection = HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path, headers={"Host": host} if host else {})
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"nothing serves {path} on port {port}")
        time.sleep(0.3)


# The API's figures -----------------------------------------------------------------------

def api_figures(seconds: float, rounds: int = ROUNDS) -> None:
    """Each figure: ``rounds`` rounds, waitress and the front listener taking turns (in either
    order), so that a busy moment of the shared machine falls on both; the median round of
    each, the spread of the per-round ratios, the server's CPU time per request, and the load
    average around it."""
    with tempfile.TemporaryDirectory() as state, open(Path(state) / "servers.log", "wb") as log:
        plain, plain_port = start_serve({"JARVICE_BAREMETAL_CONNECTOR": "dummy",
                                         "DSSR_FRONT_LISTENER": "false",
                                         "JARVICE_DUMMY_STATE_DIR": f"{state}/plain"}, log)
        front, front_port = start_serve({"JARVICE_BAREMETAL_CONNECTOR": "dummy",
                                         "JARVICE_DUMMY_STATE_DIR": f"{state}/front",
                                         "JARVICE_JOBS_DOMAIN": "http://127.0.0.1:{port}/job$"}, log)
        servers = {plain_port: plain, front_port: front}
        try:
            sleeper = "#!/bin/bash\n{DOWNSTREAM_PARAMETERS}\nsleep 600\n"
            jobs = {port: start_job(port, "bench-sleeper", sleeper, None, 20) for port in servers}
            print(f"legacy API, waitress alone vs behind the front listener: median of {rounds} alternating "
                  f"rounds of {seconds:g} s, {THREADS} server threads, {os.cpu_count()} CPUs; kept-alive "
                  "connections, and a new connection per request")
            print(f"{'request':<11} {'clients':>7} {'conn':<5} {'server':<8} {'req/s':>7} {'p50 ms':>7} "
                  f"{'p99 ms':>7} {'errors':>6} {'CPU us/req':>10}  vs waitress (rounds' spread)  load 1 min")
            for method, path in (("POST", "/runstatus"), ("GET", "/running")):
                for clients in (1, 16):
                    for reconnect in (False, True):
                        load_before = os.getloadavg()[0]
                        taken = {port: [] for port in servers}
                        for index in range(rounds):
                            turns = list(servers.items())  # who goes first changes every round
                            for port, server in turns if index % 2 == 0 else turns[::-1]:
                                args = jobs[port] if method == "POST" else None
                                taken[port].append(measured_round(server, port, method, path, args, clients,
                                                                  seconds, reconnect))
                        load = f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}"
                        print_figures(path, clients, reconnect, taken[plain_port], taken[front_port], load)
            for port, job in jobs.items():
                post(port, "/terminate", job, 30)
        finally:
            stop(plain)
            stop(front)


def measured_round(process, port, method, path, args, clients, seconds, reconnect) -> dict:
    cpu_before = cpu_seconds(process.pid)
    figures = run_load(port, method, path, args, clients, seconds, reconnect=reconnect)
    figures["cpu_us"] = (cpu_seconds(process.pid) - cpu_before) / max(figures["requests"], 1) * 1e6
    return figures


def print_figures(path, clients, reconnect, alone_rounds, front_rounds, load) -> None:
    alone = median_round(alone_rounds)
    ratios = sorted(f["rps"] / a["rps"] * 100 for a, f in zip(alone_rounds, front_rounds, strict=True))
    connection = "new" if reconnect else "kept"
    for label, figures in (("waitress", alone), ("front", median_round(front_rounds))):
        versus = (f"{figures['rps'] / alone['rps'] * 100:5.1f}% ({ratios[0]:.0f}-{ratios[-1]:.0f}%)"
                  if label == "front" else "")
        print(f"{path:<11} {clients:>7} {connection:<5} {label:<8} {figures['rps']:>7.0f} "
              f"{figures['p50_ms']:>7.2f} {figures['p99_ms']:>7.2f} {figures['errors']:>6} "
              f"{figures['cpu_us']:>10.0f}  {versus:<26}  "
              f"{load if label == 'front' else ''}")


# A job's web service --------------------------------------------------------------------

def download(port: int, path: str, host: str | None) -> tuple[float, float]:
    """Time to the first byte of the body (s) and MB/s of one download."""
    connection = HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Host": host} if host else {})
    answer = connection.getresponse()
    got = len(answer.read(1))
    first = time.perf_counter() - started
    while chunk := answer.read(1 << 20):
        got += len(chunk)
    total = time.perf_counter() - started
    connection.close()
    if answer.status != 200 or got != DOWNLOAD:
        sys.exit(f"download {path} on port {port}: status {answer.status}, {got} bytes")
    return first, DOWNLOAD / total / 1e6


def path_figures(paths: dict[str, int], prefixes: dict[str, str], servers: dict[str, subprocess.Popen],
                 rounds: int, ws_seconds: float) -> dict[str, dict]:
    """Each path in turn, ``rounds`` times, the order reversed every other round (a busy moment of
    the shared machine falls on all): three 10 MB downloads and ``ws_seconds`` of the websocket
    echo per turn. The medians over the rounds, and the CPU time per download and per echo of
    the process in the path (``dssr serve`` with its OpenSSH master, or ``ssh -L``): what a
    busy machine disturbs least."""
    taken = {name: {"first": [], "mbs": [], "eps": [], "p50": [], "p99": [], "failed": [], "cpu_dl": [],
                    "cpu_echo": []} for name in paths}
    for index in range(rounds):
        turns = list(paths.items())
        for name, port in turns if index % 2 == 0 else turns[::-1]:
            mine, prefix, server = taken[name], prefixes.get(name, ""), servers.get(name)
            before = tree_cpu_seconds(server.pid) if server else 0.0
            for _ in range(3):
                first, mbs = download(port, f"{prefix}/big?bytes={DOWNLOAD}", None)
                mine["first"].append(first * 1000)
                mine["mbs"].append(mbs)
            middle = tree_cpu_seconds(server.pid) if server else 0.0
            figures = run_echo_load(f"ws://127.0.0.1:{port}{prefix}/echo", SESSIONS, ws_seconds)
            if not figures["requests"]:
                sys.exit(f"no websocket echo through {name}: {figures['failures'][:3]}")
            mine["eps"].append(figures["rps"])
            mine["p50"].append(figures["p50_ms"])
            mine["p99"].append(figures["p99_ms"])
            mine["failed"].append(len(figures["failures"]))
            if server:
                mine["cpu_dl"].append((middle - before) / 3 * 1000)
                echo_cpu = tree_cpu_seconds(server.pid) - middle
                mine["cpu_echo"].append(echo_cpu / max(figures["requests"], 1) * 1e6)
    return {name: {key: statistics.median(values) if values else None for key, values in mine.items()}
            for name, mine in taken.items()}


def print_path_figures(figures: dict[str, dict], rounds: int, ws_seconds: float, load: str,
                       reference: str | None) -> None:
    versus = f"  vs {reference}: echoes/s, MB/s" if reference else ""
    print(f"  {'path':<15} {'echoes/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'MB/s':>7} {'1st byte ms':>11} "
          f"{'CPU ms/DL':>9} {'CPU us/echo':>11}{versus}")
    for name, mine in figures.items():
        cpu = (f"{mine['cpu_dl']:>9.1f} {mine['cpu_echo']:>11.0f}" if mine["cpu_dl"] is not None
               else f"{'':>9} {'':>11}")
        versus = ""
        if reference and name.startswith("DSSR"):
            base = figures[reference]
            versus = f"  {mine['eps'] / base['eps'] * 100:5.0f}%  {mine['mbs'] / base['mbs'] * 100:5.0f}%"
        print(f"  {name:<15} {mine['eps']:>8.0f} {mine['p50']:>7.2f} {mine['p99']:>7.2f} {mine['mbs']:>7.1f} "
              f"{mine['first']:>11.2f} {cpu}{versus}")
    print(f"  (medians of {rounds} alternating rounds: {SESSIONS} websockets echoing 64-byte messages for "
          f"{ws_seconds:g} s, and three 10 MB downloads per round; load 1 min {load})")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children that still run (the OpenSSH master of the proxy),
    to the nanosecond: a download costs a few ms, finer than /proc's clock ticks."""
    total = thread_cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += tree_cpu_seconds(int(child))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return total


def ssh_forward(env: dict, node: str, remote_port: int, directory: str) -> tuple[subprocess.Popen, int]:
    """``ssh -N -L`` through the cluster's sshd to ``node:remote_port``, with the service account's key
    (a 0600 file in a private directory) and host keys checked against the test cluster's known_hosts."""
    key_file = Path(directory) / "forward-key"
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(base64.b64decode(env["JARVICE_SLURM_SSH_PKEY"]).decode().rstrip("\n") + "\n")
    port = find_free_port()
    process = subprocess.Popen(
        ["ssh", "-F", "/dev/null", "-N", "-i", str(key_file), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={env['JARVICE_SLURM_SSH_KNOWN_HOSTS']}",
         "-o", "StrictHostKeyChecking=yes", "-o", "ExitOnForwardFailure=yes",
         "-p", env["JARVICE_SLURM_CLUSTER_PORT"],
         "-L", f"127.0.0.1:{port}:{node}:{remote_port}", "-l", env["JARVICE_SLURM_SSH_USER"], "--",
         env["JARVICE_SLURM_CLUSTER_ADDR"]], stdin=subprocess.DEVNULL)
    wait_serving(port, "/headers")
    key_file.unlink()
    return process, port


def first_node(env: dict, jobid: str) -> str:
    """The job's first node as Slurm names it (root's commands of the cluster of ``env``)."""
    use_cluster(env)
    nodes = subprocess.run([f"{env['DSSR_CLUSTER_SLURM_BIN']}/scontrol", "show", "hostnames",
                            squeue_field(jobid, "%N")], capture_output=True, text=True).stdout.split()
    if not nodes:
        sys.exit(f"Slurm names no node for job {jobid}")
    return nodes[0]


def job_figures(title: str, env: dict, cluster: bool, ws_seconds: float, bearer: str | None,
                rounds: int) -> None:
    """On the cluster, one job behind two ``dssr serve`` (any replica serves any job): one carrying
    the proxy on OpenSSH (the default), one on paramiko; and ``ssh -L`` to the same port."""
    service_port = find_free_port()
    with tempfile.TemporaryDirectory() as state, open(Path(state) / "server.log", "wb") as log:
        env = {**env, "DSSR_SHELL_SERVICE_PORT": str(service_port),
               "JARVICE_JOBS_DOMAIN": "http://127.0.0.1:{port}/job$"}
        if not cluster:
            env["JARVICE_DUMMY_STATE_DIR"] = f"{state}/dummy"
        python, service = ("python3", web_service_for_jobs(env)) if cluster else (sys.executable, SERVICE)
        server, port = start_serve(env, log)
        started_processes = [server]
        job = None
        try:
            template = interactive_template(f"exec {python} {service} $JARVICE_SERVICE_PORT")
            started = time.monotonic()
            job = start_job(port, "bench-proxy", template, bearer, 900 if cluster else 20)
            prefix = f"/job{job['number']}"
            wait_serving(port, f"{prefix}/headers")
            wait_serving(service_port, "/headers")
            print(f"{title} (the job started after {time.monotonic() - started:.0f} s)")
            if cluster:
                forward, forward_port = ssh_forward(env, first_node(env, job["jobid"]), service_port, state)
                started_processes.append(forward)
                other, other_port = start_serve({**env, "DSSR_PROXY_SSH_CLIENT": "paramiko"}, log)
                started_processes.append(other)
                wait_serving(other_port, f"{prefix}/headers")
                paths = {"straight": service_port, "ssh -L": forward_port, "DSSR openssh": port,
                         "DSSR paramiko": other_port}
                servers = {"ssh -L": forward, "DSSR openssh": server, "DSSR paramiko": other}
            else:
                paths, servers = {"straight": service_port, "DSSR": port}, {"DSSR": server}
            prefixes = {name: prefix for name in servers if name.startswith("DSSR")}
            load_before = os.getloadavg()[0]
            figures = path_figures(paths, prefixes, servers, rounds, ws_seconds)
            print_path_figures(figures, rounds, ws_seconds, f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
                               "ssh -L" if cluster else None)
        finally:
            if job is not None:  # an interactive job holds its node alone
                post(port, "/terminate", job, 30)
            for process in started_processes:
                stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per round of API load")
    parser.add_argument("--ws-seconds", type=float, default=10.0,
                        help="seconds the websockets echo per turn")
    parser.add_argument("--slurm", action="store_true", help="also through slurm-cli on the test cluster")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds per API figure")
    parser.add_argument("--api-only", action="store_true", help="only the legacy API's figures")
    parser.add_argument("--job-rounds", type=int, default=3, help="alternating rounds per job path")
    parser.add_argument("--job-only", action="store_true", help="only the job figures (no API figures)")
    options = parser.parse_args()
    if not options.job_only:
        api_figures(options.seconds, options.rounds)
    if options.api_only:
        return
    job_figures("dummy connector, a local job (the front listener's own cost):",
                {"JARVICE_BAREMETAL_CONNECTOR": "dummy"}, False, options.ws_seconds, None, options.job_rounds)
    if options.slurm:
        bearer = jwt.encode({"email": "kirby@example.org"}, "bench-key-dssr-does-not-check-it-at-all")
        job_figures("slurm-cli on the test cluster, through the cluster's sshd:",
                    {**cluster_env(), "JARVICE_BAREMETAL_CONNECTOR": "slurm-cli",
                     "JARVICE_BAREMETAL_EXECUTOR": "shell", "JARVICE_SLURM_STATUS_INTERVAL": "0.5"},
                    True, options.ws_seconds, bearer, options.job_rounds)


if __name__ == "__main__":
    main()
