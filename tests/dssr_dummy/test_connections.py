"""``dssr serve`` under idle connections and oversized bodies, over real sockets.

The idle-connection test measures a bound because the bound is the behaviour under test: with
waitress's defaults (100 connections) 120 idle sockets made ``/live`` time out. The median of
a few probes is asserted, so that one slow moment of a loaded machine does not decide.
"""

import http.client
import socket
import statistics
import time

import pytest

from dssr_core.testing import wait_until

pytestmark = pytest.mark.slow

IDLE_CONNECTIONS = 500
PROBES = 5


@pytest.fixture
def env(tmp_path):
    return {"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state")}


def open_idle(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sockets.append(sock)
    return sockets


def time_live(port: int) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/live")
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (200, b'{"status": "OK"}')
    finally:
        connection.close()
    return time.perf_counter() - started


def test_500_idle_connections_leave_live_answering_within_a_second(dssr_server, env):
    server = dssr_server(env)
    idle = open_idle(server.port, IDLE_CONNECTIONS)
    try:
        time.sleep(0.5)  # let the server accept them all
        probes = []
        for _ in range(PROBES):
            try:
                probes.append(time_live(server.port))
            except TimeoutError:
                probes.append(float("inf"))
        median = statistics.median(probes)
        print(f"\n/live with {IDLE_CONNECTIONS} idle connections open: median {median * 1000:.1f} ms, "
              f"probes {', '.join(f'{p * 1000:.1f}' for p in probes)} ms")
        assert median < 1.0, probes
    finally:
        for sock in idle:
            sock.close()


def test_idle_connections_are_closed_after_the_channel_timeout(dssr_server, env):
    server = dssr_server({**env, "DSSR_CHANNEL_TIMEOUT": "2", "DSSR_CLEANUP_INTERVAL": "1"})
    idle = open_idle(server.port, 20)
    try:
        for sock in idle:
            sock.settimeout(15)
        started = time.monotonic()
        assert all(sock.recv(1) == b"" for sock in idle)  # the server closed each of them
        print(f"\n20 idle connections closed by the server after {time.monotonic() - started:.1f} s")
    finally:
        for sock in idle:
            sock.close()


def post_body(port: int, body: bytes, *, chunked: bool = False):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if chunked:
            connection.request("POST", "/runstatus", body=iter([body]), headers=headers,
                               encode_chunked=True)
        else:
            connection.request("POST", "/runstatus", body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type"), answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_too_large_body_gets_the_contracts_413(dssr_server, env, chunked):
    import json

    limit = 4096
    server = dssr_server({**env, "DSSR_MAX_BODY_BYTES": str(limit)})
    status, content_type, body = post_body(server.port, b"args=" + b"x" * (limit + 100), chunked=chunked)
    assert status == 413
    assert content_type.startswith("application/json")
    description = json.loads(body)["description"]
    assert "DSSR_MAX_BODY_BYTES" in description and str(limit) in description
    # The connection-level limit has not been touched: the server still answers.
    wait_until(lambda: server.api().get("/live").status == 200, 5, what="/live")
