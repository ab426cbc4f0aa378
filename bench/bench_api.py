"""Requests/s and p50/p99 latency of /live and /runstatus on the dummy connector, side by
side with a bare Falcon + waitress app answering the same shapes (the floor), in one run:
``dssr`` served by waitress, ``dssr front`` by the front listener (the proxy of interactive
jobs, which production runs).

Run: ``nox -s bench`` (or ``python bench/bench_api.py [seconds]``). Prints figures only.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import cpu_seconds, post, run_load, wait_live  # noqa: E402

THREADS = 16
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
#: Rounds per figure, bare and dssr taking turns, so that a busy moment of the machine
#: does not fall on one side only; the median round is printed.
ROUNDS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]






def start_dssr(state_dir: str, log, front: bool = False) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "WAITRESS_PORT": str(port), "DSSR_THREADS": str(THREADS),
           "JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": state_dir,
           "DSSR_FRONT_LISTENER": "true" if front else "false", "DSSR_METRICS_PORT": "off"}
    process = subprocess.Popen([sys.executable, "-m", "dssr_core", "serve"], env=env,
                               stdout=log, stderr=log)
    wait_live(port)
    return process, port


def start_bare(log) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(Path(__file__).parent / "bare_app.py"),
                                str(port), str(THREADS)], stdout=log, stderr=log)
    wait_live(port)
    return process, port


def submit_sleeper(port: int) -> dict:
    template = "#!/bin/bash\n{DOWNSTREAM_PARAMETERS}\nsleep 600\n"
    import base64

    jobid, _ = post(port, "/submit", {"name": "bench-sleeper", "number": 1, "nodes": 1,
                                      "hpc_script": {"shell": base64.b64encode(template.encode()).decode()}})
    job = {"name": "bench-sleeper", "number": 1, "jobid": jobid}
    for _ in range(100):
        if post(port, "/runstatus", job)[0]:
            return job
        time.sleep(0.1)
    raise RuntimeError("the benchmark's job did not start")


def alternating_rounds(servers, method, path, args_by_port, clients) -> list[dict]:
    """The median round of each of ``servers`` ((process, port) pairs), taking turns."""
    rounds = [[] for _ in servers]
    for _ in range(ROUNDS):
        for taken, (process, port) in zip(rounds, servers, strict=True):
            taken.append(measured_round(process, port, method, path, args_by_port.get(port), clients))
    return [median_round(taken) for taken in rounds]


def measured_round(process, port, method, path, args, clients) -> dict:
    """run_load's figures and the server's CPU time per request, which a busy machine
    disturbs less than requests/s."""
    cpu_before = cpu_seconds(process.pid)
    figures = run_load(port, method, path, args, clients, SECONDS)
    requests = figures["rps"] * SECONDS
    figures["cpu_us"] = (cpu_seconds(process.pid) - cpu_before) / requests * 1e6 if requests else 0.0
    return figures


def median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda figures: figures["rps"])[len(rounds) // 2]


def main() -> None:
    with tempfile.TemporaryDirectory() as state_dir, open(Path(state_dir) / "servers.log", "wb") as log:
        dssr, dssr_port = start_dssr(state_dir + "/dummy", log)
        front, front_port = start_dssr(state_dir + "/front", log, front=True)
        bare, bare_port = start_bare(log)
        servers = [(bare, bare_port), (dssr, dssr_port), (front, front_port)]
        try:
            jobs = {port: submit_sleeper(port) for port in (dssr_port, front_port)}
            print(f"API benchmark: median of {ROUNDS} alternating rounds of {SECONDS:g} s, "
                  f"{THREADS} server threads, {os.cpu_count()} CPUs, closed-loop clients on "
                  f"kept-alive connections; load average {os.getloadavg()[0]:.1f} at the start")
            print(f"{'endpoint':<11} {'clients':>7} {'server':<10} {'req/s':>8} {'p50 ms':>8} "
                  f"{'p99 ms':>8} {'errors':>6}  vs floor  {'CPU us/req':>10}")
            for method, path in (("GET", "/live"), ("POST", "/runstatus")):
                args = {bare_port: jobs[dssr_port], **jobs} if method == "POST" else {}  # bare echoes any
                for clients in (1, 16):
                    floor, ours, fronted = alternating_rounds(servers, method, path, args, clients)
                    for label, figures in (("bare", floor), ("dssr", ours), ("dssr front", fronted)):
                        ratio = figures["rps"] / floor["rps"] * 100
                        print(f"{path:<11} {clients:>7} {label:<10} {figures['rps']:>8.0f} "
                              f"{figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f} "
                              f"{figures['errors']:>6}  {ratio:7.1f}%  {figures['cpu_us']:>10.0f}")
            print(f"load average {os.getloadavg()[0]:.1f} at the end")
            for port, job in jobs.items():
                post(port, "/terminate", job)
        finally:
            for process, _ in servers:
                process.terminate()
                process.wait(10)


if __name__ == "__main__":
    main()
