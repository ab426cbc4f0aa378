"""Resident memory of ``dssr serve`` (dummy) under 16 concurrent 8 MB bodies of
``args={"a":[{},{},...]}``: at rest, at its peak, and once the answers are in.

Run: ``python bench/bench_body_memory.py [bodies]``. Prints figures only. The body is sent as
a client may send it, not percent-encoded, so that 8 MB are 2.7 million JSON values.
"""

import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_api import free_port, wait_live  # noqa: E402

BODIES = int(sys.argv[1]) if len(sys.argv) > 1 else 16
BODY_BYTES = 8 * 1000 * 1000


def body() -> bytes:
    head, tail = b'args={"a":[', b"]}"
    count = (BODY_BYTES - len(head) - len(tail) + 1) // 3
    return head + b",".join([b"{}"] * count) + tail


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def send(port: int, data: bytes, statuses: list) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("POST", "/runstatus", body=data,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        statuses.append(connection.getresponse().status)
    except OSError as error:
        statuses.append(type(error).__name__)
    finally:
        connection.close()


def main() -> None:
    data = body()
    port = free_port()
    with tempfile.TemporaryDirectory() as state, open(os.devnull, "w") as log:
        env = {**os.environ, "WAITRESS_PORT": str(port), "JARVICE_BAREMETAL_CONNECTOR": "dummy",
               "JARVICE_DUMMY_STATE_DIR": state, "DSSR_METRICS_PORT": "off"}
        server = subprocess.Popen([sys.executable, "-m", "dssr_core", "serve"], env=env,
                                  stdout=log, stderr=log)
        try:
            wait_live(port)
            at_rest = rss_mb(server.pid)
            statuses: list = []
            senders = [threading.Thread(target=send, args=(port, data, statuses))
                       for _ in range(BODIES)]
            peak = at_rest
            started = time.monotonic()
            for sender in senders:
                sender.start()
            while any(sender.is_alive() for sender in senders):
                peak = max(peak, rss_mb(server.pid))
                time.sleep(0.02)
            elapsed = time.monotonic() - started
            time.sleep(1.0)
            after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(10)
    print(f"{BODIES} x {len(data) / 1e6:.1f} MB bodies of {{}} values, answered "
          f"{sorted(map(str, set(statuses)))} in {elapsed:.1f} s")
    print(f"RSS at rest {at_rest:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB "
          f"(grown by {after - at_rest:.0f} MB)")


if __name__ == "__main__":
    main()
