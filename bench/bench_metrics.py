"""What the metrics cost: upstream's poll cycle and the /runstatus load with the
instrumentation on and off, side by side in one run.

Two ``dssr serve``s on the dummy connector behind the front listener (as production runs):
``on`` as shipped (its metrics port scraped once a second, as Prometheus would), ``off`` started
through a launcher that turns prometheus-client's counters, gauges and histograms into no-ops
before DSSR is imported (``--serve-without-metrics``), so that only the instrumentation differs.
The poll cycle is upstream's: ``/queued``, ``/running``, then ``/runstatus`` of each of
:data:`JOBS` running jobs, by one client; the load is 16 clients on ``/runstatus``. Rounds
alternate between the two servers; the median round is printed.

Run: ``nox -s bench`` (or ``python bench/bench_metrics.py [seconds]``). Prints figures only.
"""

import base64
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import cpu_seconds, post, run_load, wait_live  # noqa: E402

THREADS = 16
JOBS = 20
ROUNDS = 5


def serve_without_metrics() -> None:
    """``dssr serve`` with every metric a no-op (the "off" side)."""
    from prometheus_client import metrics

    def nothing(self, *args, **kwargs):
        return None

    def same(self, *args, **kwargs):
        return self

    for cls, methods in ((metrics.Counter, ("inc",)), (metrics.Gauge, ("inc", "dec", "set")),
                         (metrics.Histogram, ("observe",))):
        for name in methods:
            setattr(cls, name, nothing)
    metrics.MetricWrapperBase.labels = same  # a child costs nothing to find, and does nothing
    from dssr_core.cli import main

    sys.exit(main(["serve"]))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(state_dir: str, log, instrumented: bool) -> tuple[subprocess.Popen, int, int]:
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "WAITRESS_PORT": str(port), "DSSR_THREADS": str(THREADS),
           "JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": state_dir,
           "DSSR_FRONT_LISTENER": "true", "DSSR_METRICS_PORT": str(metrics_port) if instrumented else "off",
           # Timer mode: the jobs run without processes, so that the machine serves only DSSR.
           "JARVICE_DUMMY_MAX_RUNNING": "0", "JARVICE_DUMMY_JOB_RUNNING_TIME": "3600",
           "JARVICE_DUMMY_JOB_QUEUED_TIME": "0"}
    command = ([sys.executable, "-m", "dssr_core", "serve"] if instrumented
               else [sys.executable, __file__, "--serve-without-metrics"])
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    wait_live(port)
    return process, port, metrics_port


def submit_sleepers(port: int) -> list[dict]:
    template = base64.b64encode(b"#!/bin/bash\n{DOWNSTREAM_PARAMETERS}\ntrue\n").decode()
    jobs = []
    for number in range(JOBS):
        name = f"bench-poll-{number}"
        jobid, _ = post(port, "/submit", {"name": name, "number": number, "nodes": 1,
                                          "hpc_script": {"shell": template}})
        jobs.append({"name": name, "number": number, "jobid": jobid})
    for _ in range(200):
        if all(post(port, "/runstatus", job)[0] for job in jobs):
            return jobs
        time.sleep(0.1)
    raise RuntimeError("the benchmark's jobs did not start")


def poll_cycles(port: int, jobs: list[dict], seconds: float) -> list[float]:
    """Seconds of each of upstream's poll cycles, one after the other, for ``seconds``."""
    import http.client
    import json
    from urllib.parse import urlencode

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    bodies = [urlencode({"args": json.dumps(job)}) for job in jobs]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cycles = []
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        for path in ("/queued", "/running"):
            connection.request("GET", path)
            connection.getresponse().read()
        for body in bodies:
            connection.request("POST", "/runstatus", body=body, headers=form)
            connection.getresponse().read()
        cycles.append(time.perf_counter() - started)
    connection.close()
    return cycles


def scraping(metrics_port: int, stop: threading.Event) -> None:
    """Scrape /metrics once a second, as Prometheus would, until ``stop``."""
    while not stop.wait(1.0):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
        except OSError:
            pass


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    with tempfile.TemporaryDirectory() as state, open(Path(state) / "servers.log", "wb") as log:
        servers = {"on": start(state + "/on", log, True), "off": start(state + "/off", log, False)}
        stop = threading.Event()
        threading.Thread(target=scraping, args=(servers["on"][2], stop), daemon=True).start()
        try:
            jobs = {side: submit_sleepers(port) for side, (_, port, _) in servers.items()}
            print(f"Metrics benchmark: dummy connector behind the front listener, {JOBS} running jobs, "
                  f"median of {ROUNDS} alternating rounds of {seconds:g} s, {os.cpu_count()} CPUs; "
                  f"load average {os.getloadavg()[0]:.1f} at the start")
            cycles: dict[str, list[dict]] = {"on": [], "off": []}
            loads: dict[str, list[dict]] = {"on": [], "off": []}
            for _ in range(ROUNDS):
                for side, (process, port, _) in servers.items():
                    cpu = cpu_seconds(process.pid)
                    taken = poll_cycles(port, jobs[side], seconds)
                    cycles[side].append({"ms": statistics.median(taken) * 1000,
                                         "cpu_ms": (cpu_seconds(process.pid) - cpu) / len(taken) * 1000})
                    cpu = cpu_seconds(process.pid)
                    figures = run_load(port, "POST", "/runstatus", jobs[side][0], 16, seconds)
                    requests = figures["rps"] * seconds
                    figures["cpu_us"] = (cpu_seconds(process.pid) - cpu) / requests * 1e6 if requests else 0.0
                    loads[side].append(figures)
            print(f"poll cycle (/queued, /running, {JOBS} x /runstatus), one client:")
            print(f"  {'metrics':<8} {'cycle ms':>9} {'server CPU ms/cycle':>19}")
            for side in ("off", "on"):
                middle = sorted(cycles[side], key=lambda figures: figures["ms"])[ROUNDS // 2]
                print(f"  {side:<8} {middle['ms']:>9.2f} {middle['cpu_ms']:>19.2f}")
            print("/runstatus, 16 clients on kept-alive connections:")
            print(f"  {'metrics':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
                  f"{'CPU us/req':>10}")
            for side in ("off", "on"):
                middle = sorted(loads[side], key=lambda figures: figures["rps"])[ROUNDS // 2]
                print(f"  {side:<8} {middle['rps']:>8.0f} {middle['p50_ms']:>8.2f} {middle['p99_ms']:>8.2f} "
                      f"{middle['errors']:>6} {middle['cpu_us']:>10.0f}")
            print(f"load average {os.getloadavg()[0]:.1f} at the end")
            for side, (_, port, _) in servers.items():
                for job in jobs[side]:
                    post(port, "/terminate", job)
        finally:
            stop.set()
            for process, _, _ in servers.values():
                process.terminate()
                process.wait(10)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve-without-metrics"]:
        serve_without_metrics()
    else:
        main()
