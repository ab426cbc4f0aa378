"""Closed-loop load generators: N clients, each on one kept-alive connection (or a new
connection per request) for HTTP requests, or a websocket's echoes; both report the same figures."""

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode


def run_load(port: int, method: str, path: str, args: dict | None, clients: int,
             seconds: float, auth_header: str | None = None, reconnect: bool = False) -> dict:
    """Requests/s and latency percentiles (ms) of ``clients`` concurrent clients; with
    ``reconnect``, each request on a new connection (its connect and close timed with it)."""
    import json

    body = urlencode({"args": json.dumps(args)}) if args is not None else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    if auth_header:
        headers["Authorization"] = auth_header
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = latencies[index]
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if reconnect:
                connection.close()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                errors[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {**latency_figures(latencies, elapsed), "errors": sum(errors)}


def run_echo_load(url: str, sessions: int, seconds: float, message_bytes: int = 64) -> dict:
    """Echoes/s and round-trip percentiles (ms) of ``sessions`` websockets, each sending a text
    message and waiting for its echo, over and over, all for the same ``seconds`` (they start
    together once every one is open). ``failures``: the sessions that broke, with why."""
    from websockets.sync.client import connect as websocket_connect

    round_trips: list[list[float]] = [[] for _ in range(sessions)]
    failures: list[str] = []
    ready = threading.Barrier(sessions + 1)

    def session(index: int) -> None:
        message = os.urandom(message_bytes // 2).hex()
        try:
            with websocket_connect(url, open_timeout=60) as ws:
                ready.wait()
                stop_at = time.perf_counter() + seconds
                mine = round_trips[index]
                while time.perf_counter() < stop_at:
                    started = time.perf_counter()
                    ws.send(message)
                    if ws.recv(timeout=30) != message:
                        raise RuntimeError("the echo differs from the message")
                    mine.append(time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - counted and reported
            failures.append(repr(error))
            ready.abort()

    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join()
    return {**latency_figures(round_trips, seconds), "failures": failures}


def latency_figures(latencies: list[list[float]], elapsed: float) -> dict:
    """What each client measured (seconds), as a count, a rate and p50/p99 in ms."""
    every = sorted(x for mine in latencies for x in mine)
    if not every:
        return {"requests": 0, "rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "requests": len(every),
        "rps": len(every) / elapsed,
        "p50_ms": statistics.median(every) * 1000,
        "p99_ms": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, in nanoseconds' precision (``/proc/<pid>/task/*/schedstat``;
    a thread that ended is missed, so measure across requests that end none). :func:`cpu_seconds`
    counts in clock ticks (10 ms)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def stop(process: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 10 s, of a server the benchmark started (if it still runs)."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_live(port: int, seconds: float = 10) -> None:
    """Wait until ``/live`` on 127.0.0.1:``port`` answers; exit with a sentence when it does not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/live", timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing answers on port {port}")


def post(port: int, path: str, args: dict, timeout: float = 10):
    """POST ``args`` as upstream's form to ``path``; the answer's JSON."""
    data = urlencode({"args": json.dumps(args)}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=timeout) as answer:
        return json.loads(answer.read())
