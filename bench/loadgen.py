"""A small closed-loop load generator: N clients, each on one kept-alive connection."""

import http.client
import statistics
import threading
import time
from urllib.parse import urlencode


def run_load(port: int, method: str, path: str, args: dict | None, clients: int,
             seconds: float, auth_header: str | None = None) -> dict:
    """Requests/s and latency percentiles (ms) of ``clients`` concurrent clients."""
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
