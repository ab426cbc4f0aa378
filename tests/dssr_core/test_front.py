"""The front listener in this process, over real sockets: the answers it makes itself when the
app fails or the cluster does not answer, its framing of the app's answers, and its threads.

End-to-end behaviour (jobs, websockets, bounds under load) is in tests/dssr_dummy, against
``dssr serve``; here the app is a plain WSGI callable, so that it can fail in ways a Falcon app
never does.
"""

import json
import logging
import socket
import threading
import time

import falcon
import pytest

from dssr_core import answers
from dssr_core.errors import ClusterUnavailable
from dssr_core.front import Bounds, FrontListener
from dssr_core.joburls import JobsDomain
from dssr_core.settings import Settings
from dssr_core.testing import wait_until
from dssr_core.testing.plugin import raw_exchange


class UnreachableCluster:
    """A double of a connector whose cluster does not answer. The dummy connector is always
    reachable and the Slurm ones need a cluster; the front listener only asks this."""

    def interactive_endpoint(self, number):
        raise ClusterUnavailable("Cannot reach the cluster over SSH as dssr@login.internal:22: timed out.")


def answering_app(environ, start_response):
    body = json.dumps({"path": environ["PATH_INFO"], "query": environ["QUERY_STRING"],
                       "body": environ["wsgi.input"].read().decode()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def failing_app(environ, start_response):
    raise RuntimeError("a bug naming /var/lib/dssr/secret-path")


def splitting_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain\r\nSet-Cookie: injected=1")])
    return [b"x"]


@pytest.fixture
def front():
    started = []

    def start(app, connector=None, **bounds):
        listener = socket.create_server(("127.0.0.1", 0))
        listening = FrontListener([listener], app, JobsDomain.parse("http://localhost/job$"), connector,
                                  bounds=Bounds(**bounds)).start()
        started.append(listening)
        return listening

    yield start
    for listening in started:
        listening.close()


def split(answer: bytes) -> tuple[str, dict, bytes, bytes]:
    """Status line, headers (lower-case names), body, and what followed, of the first answer."""
    head, _, rest = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", 0))
    return status, headers, rest[:length], rest[length:]


GET = b"GET /live HTTP/1.1\r\nHost: dssr\r\n\r\n"


def test_an_app_that_fails_answers_the_contracts_500_and_the_connection_goes_on(front, caplog):
    listening = front(failing_app)
    with caplog.at_level(logging.ERROR, logger="dssr_core.front"):
        answer = raw_exchange(listening.port, GET + GET)
    status, headers, body, rest = split(answer)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"title": "500 Internal Server Error", "description": answers.FAILED,
                                "request_id": headers["x-request-id"]}
    assert b"secret-path" not in answer and b"Traceback" not in answer
    assert rest.startswith(b"HTTP/1.1 500 ")  # the second request was answered too
    assert "secret-path" in caplog.text  # the log says why


def test_an_app_header_with_a_line_break_is_a_500_not_a_second_header(front):
    status, _, body, _ = split(raw_exchange(front(splitting_app).port, GET))
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert json.loads(body)["description"] == answers.FAILED


def test_a_job_of_a_cluster_that_does_not_answer_gets_a_503_naming_no_host(front, caplog):
    listening = front(answering_app, UnreachableCluster())
    with caplog.at_level(logging.WARNING, logger="dssr_core.front"):
        answer = raw_exchange(listening.port, b"GET /job7/vnc.html HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, _ = split(answer)
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"title": "503 Service Unavailable",
                                "description": "The cluster cannot be asked about job 7 now; try again "
                                               "shortly.", "request_id": headers["x-request-id"]}
    assert "login.internal" in caplog.text


def test_pipelined_requests_are_answered_in_turn_with_their_bodies(front):
    first = b"POST /a?x=1 HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\none"
    second = b"POST /b HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
    answer = raw_exchange(front(answering_app).port, first + second)
    status, _, body, rest = split(answer)
    assert (status, json.loads(body)) == ("HTTP/1.1 200 OK", {"path": "/a", "query": "x=1", "body": "one"})
    status, _, body, _ = split(rest)
    assert (status, json.loads(body)) == ("HTTP/1.1 200 OK", {"path": "/b", "query": "", "body": "two"})


def test_head_has_the_length_of_get_and_no_body(front):
    port = front(answering_app).port
    _, get_headers, get_body, _ = split(raw_exchange(port, GET))
    answer = raw_exchange(port, b"HEAD /live HTTP/1.1\r\nHost: dssr\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert body == b""
    assert f"content-length: {len(get_body)}".encode() in head.lower()
    assert b"connection: close" in head.lower()


def test_an_http_1_0_request_is_answered_and_closed(front):
    answer = raw_exchange(front(answering_app).port, b"GET /live HTTP/1.0\r\n\r\n" + GET)
    status, headers, _, rest = split(answer)
    assert (status, headers["connection"], rest) == ("HTTP/1.1 200 OK", "close", b"")


def test_connection_threads_are_reused(front):
    port = front(answering_app).port
    for _ in range(20):
        answer = raw_exchange(port, b"GET /live HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ")
        time.sleep(0.05)  # the thread is free again a moment after it closed the connection
    threads = [thread for thread in threading.enumerate() if thread.name == f"dssr-front-{port}"]
    assert len(threads) == 1  # one connection after the other: the same thread each time


def test_past_the_limit_nothing_more_is_accepted(front):
    port = front(answering_app, connection_limit=2).port
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        assert raw_exchange(port, GET) == b""  # queued by the kernel, never answered within 2 s
        held.pop().close()
        wait_until(lambda: raw_exchange(port, GET).startswith(b"HTTP/1.1 200 "), 10, what="an answer")
    finally:
        for sock in held:
            sock.close()


def test_the_bounds_are_waitress_settings_and_the_old_proxy_names_still_count():
    bounds = Bounds.from_settings(Settings.from_env({"DSSR_PROXY_MAX_CONNECTIONS": "7",
                                                     "DSSR_PROXY_IDLE_TIMEOUT": "9", "DSSR_THREADS": "3",
                                                     "DSSR_MAX_HEADER_BYTES": "8192",
                                                     "DSSR_MAX_BODY_BYTES": "4096"}))
    assert bounds == Bounds(threads=3, connection_limit=7, channel_timeout=9, max_header_bytes=8192,
                            max_body_bytes=4096)
    newer = Settings.from_env({"DSSR_CONNECTION_LIMIT": "5", "DSSR_PROXY_MAX_CONNECTIONS": "7"})
    assert Bounds.from_settings(newer).connection_limit == 5
    assert Bounds.from_settings(Settings.from_env({})) == Bounds(channel_timeout=30)


@pytest.mark.parametrize("status", [400, 404, 408, 413, 431, 500, 501, 502, 503])
def test_titles_are_the_apps(status):
    assert answers.title(status) == falcon.code_to_http_status(status)


@pytest.mark.parametrize("reason, shown", [
    ("illegal header line: b'Bad Header: x'", "illegal header line"),
    ("illegal header line: bytearray(b'Bad Header: x')", "illegal header line"),
    ("Illegal header value b'\\x00'", "Illegal header value"),
    ('Malformed header line "Bad Header: x"', "Malformed header line"),
    ("Found multiple Host: headers", "Found multiple Host: headers"),
])
def test_a_malformed_request_is_named_without_quoting_it(reason, shown):
    expected = f"The request is not valid HTTP/1.1 ({shown}); send a well-formed request."
    assert answers.malformed(reason) == expected
