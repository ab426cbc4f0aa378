"""A small closed-loop load generator: N clients, each on one kept-alive connection (or a new
connection per request)."""

import http.client
import os
import statistics
import threading
import time
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
    every = sorted(x for mine in latencies for x in mine)
    return {
        "requests": len(every),
        "errors": sum(errors),
        "rps": len(every) / elapsed,
        "p50_ms": statistics.median(every) * 1000,
        "p99_ms": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
