"""``dssr serve`` under idle, slow and too many connections, malformed requests and oversized
bodies, over real sockets, with each of its two listeners: waitress, and the front listener
that production runs (the chart sets ``JARVICE_JOBS_DOMAIN``; ``DSSR_FRONT_LISTENER=true``
here). One set of settings bounds both.

The idle-connection test measures a bound because the bound is the behaviour under test: with
waitress's defaults (100 connections) 120 idle sockets made ``/live`` time out. The median of
a few probes is asserted, so that one slow moment of a loaded machine does not decide.
"""

import http.client
import json
import select
import socket
import statistics
import threading
import time

import pytest

from dssr_core.testing import wait_until

pytestmark = pytest.mark.slow

IDLE_CONNECTIONS = 500
SLOW_CONNECTIONS = 20
PROBES = 5
LISTENERS = {"waitress": {}, "front": {"DSSR_FRONT_LISTENER": "true"}}


@pytest.fixture(params=list(LISTENERS))
def env(request, tmp_path):
    return {"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state"),
            **LISTENERS[request.param]}


def is_front(env) -> bool:
    return env.get("DSSR_FRONT_LISTENER") == "true"


def open_idle(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


class SlowDrip:
    """Connections that send a request's head one byte every ``interval`` seconds (slowloris)."""

    HEAD = b"GET /live HTTP/1.1\r\nHost: dssr\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\n"

    def __init__(self, port: int, count: int, interval: float):
        self.sockets = open_idle(port, count)
        self.interval = interval
        self.cut: list[float] = []  # seconds after which the server closed each
        self.answers: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def _drip(self) -> None:
        open_ones = list(self.sockets)
        for byte in self.HEAD:
            answered, _, _ = select.select(open_ones, [], [], 0)
            for sock in answered:  # the server answered (and closed): read what it said
                self._read_answer(sock)
                open_ones.remove(sock)
            if self._stop.is_set() or not open_ones:
                return
            for sock in open_ones:
                sock.sendall(bytes([byte]))
            self._stop.wait(self.interval)

    def _read_answer(self, sock: socket.socket) -> None:
        self.cut.append(time.monotonic() - self._started)
        answer = b""
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        self.answers.append(answer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()


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


def test_500_idle_and_slow_connections_leave_live_answering_within_a_second(dssr_server, env):
    server = dssr_server(env)
    idle = open_idle(server.port, IDLE_CONNECTIONS)
    slow = SlowDrip(server.port, SLOW_CONNECTIONS, interval=2.0)
    try:
        time.sleep(0.5)  # let the server accept them all
        probes = []
        for _ in range(PROBES):
            try:
                probes.append(time_live(server.port))
            except TimeoutError:
                probes.append(float("inf"))
        median = statistics.median(probes)
        listener = "front listener" if is_front(env) else "waitress"
        shown = ", ".join(f"{probe * 1000:.1f}" for probe in probes)
        print(f"\n{listener}: /live with {IDLE_CONNECTIONS} idle and {SLOW_CONNECTIONS} slow-drip "
              f"connections open: median {median * 1000:.1f} ms, probes {shown} ms")
        assert median < 1.0, probes
    finally:
        slow.close()
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


def test_a_head_dripped_byte_by_byte_is_cut_at_the_channel_timeout(dssr_server, tmp_path):
    """The front listener's bound. Waitress's channel timeout counts silence only, so a drip
    keeps its connection there (docs/reliability.md); its connection limit bounds how many."""
    server = dssr_server({"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": str(tmp_path),
                          **LISTENERS["front"], "DSSR_CHANNEL_TIMEOUT": "2"})
    slow = SlowDrip(server.port, 5, interval=0.3)  # the head alone would take 70 s
    try:
        wait_until(lambda: len(slow.cut) == 5, 15, what="the server to cut the slow connections")
        print(f"\n5 slow-drip connections cut after {', '.join(f'{cut:.1f}' for cut in slow.cut)} s")
        assert max(slow.cut) < 6
        for answer in slow.answers:
            status, document = split_answer(answer)
            assert status == 408
            assert document["description"] == ("The request line and headers did not arrive within 2 s "
                                                "(DSSR_CHANNEL_TIMEOUT).")
    finally:
        slow.close()


def test_past_the_connection_limit_connections_wait_in_the_backlog(dssr_server, env):
    server = dssr_server({**env, "DSSR_CONNECTION_LIMIT": "5"})
    idle = open_idle(server.port, 5)
    waiting = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # the kernel queues it
    try:
        waiting.sendall(b"GET /live HTTP/1.1\r\nHost: dssr\r\n\r\n")
        waiting.settimeout(1.5)
        with pytest.raises(TimeoutError):
            waiting.recv(65536)  # neither answered nor closed: not accepted yet
        for sock in idle:
            sock.close()
        waiting.settimeout(10)
        assert waiting.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        waiting.close()
        for sock in idle:
            sock.close()


def raw_answer(port: int, data: bytes) -> bytes:
    """Send ``data`` as it is and read until the server closes (or 5 s of silence)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except OSError:  # the server refused before it had all (a body past the limit)
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def split_answer(answer: bytes) -> tuple[int, dict]:
    """The status and the JSON error document of a raw answer, checked for its shape."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"].startswith("application/json"), headers
    document = json.loads(body[:int(headers["content-length"])])
    assert set(document) == {"title", "description", "request_id"}, document
    assert document["request_id"] == headers["x-request-id"]
    assert document["title"].startswith(f"{status} ")
    assert document["description"].endswith("."), document
    return status, document


@pytest.mark.parametrize("request_bytes, status, words", [
    (b"GET / HTTP/1.1 extra\r\nHost: dssr\r\n\r\n", 400, "not valid HTTP/1.1"),
    (b"GET /live HTTP/1.1\r\nHost: dssr\r\nBad Header: x\r\n\r\n", 400, "not valid HTTP/1.1"),
    (b"POST /runstatus HTTP/1.1\r\nHost: dssr\r\nContent-Length: 5x\r\n\r\n", 400, "not valid HTTP/1.1"),
    (b"GET /live HTTP/1.1\r\nHost: dssr\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n", 431,
     "larger than 8192 bytes (DSSR_MAX_HEADER_BYTES)"),
    (b"POST /runstatus HTTP/1.1\r\nHost: dssr\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"),
])
def test_the_listeners_own_refusals_are_the_contracts_json(dssr_server, env, request_bytes, status, words):
    server = dssr_server({**env, "DSSR_MAX_HEADER_BYTES": "8192"})
    got, document = split_answer(raw_answer(server.port, request_bytes))
    assert got == status and words in document["description"], document
    assert "Bad Header" not in document["description"] and "x" * 100 not in document["description"]
    assert server.api().get("/live").status == 200


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


@pytest.mark.parametrize("size", [100, 3 * 4096], ids=["over the limit", "over twice the limit"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_too_large_body_gets_the_contracts_413(dssr_server, env, chunked, size):
    limit = 4096
    server = dssr_server({**env, "DSSR_MAX_BODY_BYTES": str(limit)})
    status, content_type, body = post_body(server.port, b"args=" + b"x" * (limit + size), chunked=chunked)
    assert status == 413
    assert content_type.startswith("application/json")
    description = json.loads(body)["description"]
    assert "DSSR_MAX_BODY_BYTES" in description and str(limit) in description
    # The connection-level limit has not been touched: the server still answers.
    wait_until(lambda: server.api().get("/live").status == 200, 5, what="/live")
