"""Speed of the proxy of interactive jobs (the front listener), printed as figures only.

- the legacy API through the front listener against waitress alone: ``/runstatus`` and
  ``/running`` (the shapes of upstream's poll cycle), req/s and p50/p99, alternating rounds;
- a 10 MB download from a job's web service (tests/services/web_service.py): time to first
  byte and MB/s through the proxy against the same download straight from the job's port;
- 50 concurrent websocket sessions echoing 64-byte messages for 30 s: round trip p50/p99,
  proxied against straight.

First on the dummy connector (a local job: the front listener's own cost), then, with
``--slurm``, on the test cluster's slurm-cli (the SSH direct-tcpip tunnel through sshd; the
node is this host, so "straight" is its port on 127.0.0.1). ``DSSR_CLUSTER_SLURM`` picks the
cluster, as for ``cluster.sh``.

Run: ``nox -s bench`` or ``python bench/bench_proxy.py [--seconds 3] [--ws-seconds 30] [--slurm]
[--rounds 7] [--api-only]``; a shorter ``--ws-seconds`` only for a quick smoke run.
"""

import argparse
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
from loadgen import cpu_seconds, post, run_echo_load, run_load, stop, wait_live  # noqa: E402
from slurm_bench_common import cluster_env  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "dssr_slurm"))
from slurm_helpers import web_service_for_jobs  # noqa: E402  (one copy for the tests and this)

from dssr_core.testing import ApiClient  # noqa: E402
from dssr_core.testing.plugin import find_free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "tests" / "services" / "web_service.py"
THREADS = 16
ROUNDS = 5
DOWNLOAD = 10 * 1024 * 1024
DOWNLOADS = 9
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
    """Time to the first byte of the body and MB/s of one download."""
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


def download_figures(straight: tuple[int, str], proxied: tuple[int, str], server: subprocess.Popen) -> None:
    """Straight and proxied downloads in turn (a busy moment of a shared machine falls on both),
    and the CPU time ``dssr serve`` spent per proxied download (what a busy machine disturbs least)."""
    runs: dict[str, list[tuple[float, float]]] = {"straight": [], "proxied": []}
    cpu = 0.0
    for _ in range(DOWNLOADS):
        runs["straight"].append(download(*straight, None))
        before = cpu_seconds(server.pid)
        runs["proxied"].append(download(*proxied, None))
        cpu += cpu_seconds(server.pid) - before
    for label, mine in runs.items():
        first_byte = statistics.median(r[0] for r in mine) * 1000
        extra = f", dssr serve {cpu / DOWNLOADS * 1000:5.1f} ms CPU each" if label == "proxied" else ""
        print(f"  10 MB download {label:<9} first byte median {first_byte:7.2f} ms, throughput median "
              f"{statistics.median(r[1] for r in mine):7.1f} MB/s ({DOWNLOADS} downloads{extra})")


def echo_figures(label: str, url: str, seconds: float) -> None:
    figures = run_echo_load(url, SESSIONS, seconds)
    failures = figures["failures"]
    if not figures["requests"]:
        sys.exit(f"no websocket echo on {url}: {failures[:3]}")
    print(f"  {SESSIONS} websockets {label:<9} {seconds:g} s: {figures['rps']:7.0f} echoes/s, "
          f"round trip p50 {figures['p50_ms']:6.2f} ms, p99 {figures['p99_ms']:6.2f} ms, "
          f"{len(failures)} sessions failed{': ' + failures[0] if failures else ''}")


def job_figures(title: str, env: dict, cluster: bool, ws_seconds: float, bearer: str | None) -> None:
    service_port = find_free_port()
    with tempfile.TemporaryDirectory() as state, open(Path(state) / "server.log", "wb") as log:
        env = {**env, "DSSR_SHELL_SERVICE_PORT": str(service_port),
               "JARVICE_JOBS_DOMAIN": "http://127.0.0.1:{port}/job$"}
        if not cluster:
            env["JARVICE_DUMMY_STATE_DIR"] = f"{state}/dummy"
        python, service = ("python3", web_service_for_jobs(env)) if cluster else (sys.executable, SERVICE)
        server, port = start_serve(env, log)
        try:
            template = interactive_template(f"exec {python} {service} $JARVICE_SERVICE_PORT")
            started = time.monotonic()
            job = start_job(port, "bench-proxy", template, bearer, 900 if cluster else 20)
            prefix = f"/job{job['number']}"
            wait_serving(port, f"{prefix}/headers")
            wait_serving(service_port, "/headers")
            print(f"{title} (the job started after {time.monotonic() - started:.0f} s)")
            download_figures((service_port, f"/big?bytes={DOWNLOAD}"),
                             (port, f"{prefix}/big?bytes={DOWNLOAD}"), server)
            echo_figures("straight", f"ws://127.0.0.1:{service_port}/echo", ws_seconds)
            echo_figures("proxied", f"ws://127.0.0.1:{port}{prefix}/echo", ws_seconds)
            post(port, "/terminate", job, 30)
        finally:
            stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per round of API load")
    parser.add_argument("--ws-seconds", type=float, default=30.0,
                        help="seconds the websockets echo (the issue's 30; less only for a smoke run)")
    parser.add_argument("--slurm", action="store_true", help="also through slurm-cli on the test cluster")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds per API figure")
    parser.add_argument("--api-only", action="store_true", help="only the legacy API's figures")
    options = parser.parse_args()
    api_figures(options.seconds, options.rounds)
    if options.api_only:
        return
    job_figures("dummy connector, a local job (the front listener's own cost):",
                {"JARVICE_BAREMETAL_CONNECTOR": "dummy"}, False, options.ws_seconds, None)
    if options.slurm:
        bearer = jwt.encode({"email": "kirby@example.org"}, "bench-key-dssr-does-not-check-it-at-all")
        job_figures("slurm-cli on the test cluster, through sshd (direct-tcpip):",
                    {**cluster_env(), "JARVICE_BAREMETAL_CONNECTOR": "slurm-cli",
                     "JARVICE_BAREMETAL_EXECUTOR": "shell", "JARVICE_SLURM_STATUS_INTERVAL": "0.5"},
                    True, options.ws_seconds, bearer)


if __name__ == "__main__":
    main()
