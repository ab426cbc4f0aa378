"""The proxy of interactive jobs on the dummy connector: ``dssr serve`` with its front listener,
a job whose command is a real web service (tests/services/web_service.py), real HTTP clients."""

import base64
import hashlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as websocket_connect

from dssr_core.testing import wait_until
from dssr_core.testing.plugin import DssrServer, find_free_port, raw_exchange, wait_serving

pytestmark = pytest.mark.slow
SERVICE = Path(__file__).parents[1] / "services" / "web_service.py"
KEY = ("slurm-downstream", "Pass1234")


def interactive_template(command: str) -> str:
    return ("#!/bin/bash\n{DOWNSTREAM_PARAMETERS}\nJARVICE_CPU_CORES=1\nJOBOBJ_INTERACTIVE=true\n"
            f"{command}\n")


def service_command() -> str:
    return f"exec {sys.executable} {SERVICE} $JARVICE_SERVICE_PORT"


class Proxy:
    """``dssr serve`` (dummy) with JARVICE_JOBS_DOMAIN pointing at itself."""

    def __init__(self, tmp_path: Path, domain: str = "http://127.0.0.1:{port}/job$", **env):
        self.service_port = find_free_port()
        self.server = DssrServer({"JARVICE_BAREMETAL_CONNECTOR": "dummy",
                                  "JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state"),
                                  "DSSR_SHELL_SERVICE_PORT": str(self.service_port),
                                  "DSSR_PROXY_CHECK_INTERVAL": "0.3",
                                  "JARVICE_SCHED_SERVER_KEY": ":".join(KEY), **env},
                                 tmp_path / f"dssr-{self.service_port}.log", auth=KEY)
        self.server.env["JARVICE_JOBS_DOMAIN"] = domain.format(port=self.server.port)
        self.server.start()
        self.api = self.server.api()
        self.port = self.server.port

    def submit(self, name: str, number: int, template: str) -> dict:
        answer = self.api.submit(name, template, number=number)
        assert answer.status == 200, answer.text
        job = {"name": name, "number": number, "jobid": answer.json[0]}
        wait_until(lambda: [name, job["jobid"]] in self.api.get("/running").json, 20, what=f"{name} to run")
        return job

    def info(self, job: dict) -> dict:
        answer = self.api.post(f"/request/{job['name']}/{job['number']}/{job['jobid']}/info", {})
        assert answer.status == 200, answer.text
        return answer.json

    def terminate(self, job: dict) -> None:
        answer = self.api.post("/terminate", {k: job[k] for k in ("name", "number", "jobid")})
        assert answer.status == 200, answer.text


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    proxy = Proxy(tmp_path_factory.mktemp("proxy"))
    proxy.job = proxy.submit("desk", 41, interactive_template(service_command()))
    proxy.url = proxy.info(proxy.job)["url"]
    wait_serving(proxy.url + "/headers", 20, 5)
    yield proxy
    proxy.server.stop()


def test_info_gives_the_path_based_url_while_the_job_runs(proxy):
    assert proxy.url == f"http://127.0.0.1:{proxy.port}/job41"


def test_a_kept_alive_connection_serves_the_job_and_the_api_in_turn(proxy):
    session = requests.Session()
    for _ in range(3):
        seen = session.get(proxy.url + "/headers?x=1", timeout=5).json()
        assert seen["path"] == "/headers?x=1"  # the prefix stripped, the query kept
        assert seen["port"] == proxy.service_port
        assert session.get(f"http://127.0.0.1:{proxy.port}/live", timeout=5).status_code == 200
        running = session.get(f"http://127.0.0.1:{proxy.port}/running", auth=KEY, timeout=5)
        assert [proxy.job["name"], proxy.job["jobid"]] in running.json()
    bare = session.get(proxy.url, timeout=5).json()
    assert bare["path"] == "/"


def test_the_api_keeps_its_basic_auth_and_job_urls_need_none(proxy):
    assert requests.get(f"http://127.0.0.1:{proxy.port}/running", timeout=5).status_code == 401
    assert requests.get(proxy.url + "/headers", timeout=5).status_code == 200


def test_the_apis_key_never_reaches_the_job_but_the_apps_own_credentials_do(proxy):
    api_key = "Basic " + base64.b64encode(":".join(KEY).encode()).decode()
    seen = requests.get(proxy.url + "/headers", headers={"Authorization": api_key}, timeout=5).json()
    names = {name.lower() for name, _ in seen["headers"]}
    assert "authorization" not in names
    assert not names & {"x-forwarded-for", "x-forwarded-host", "forwarded", "via"}  # nothing added
    own = requests.get(proxy.url + "/headers", headers={"Authorization": "token app-secret"},
                       cookies={"app": "c"}, timeout=5).json()
    headers = [[name.lower(), value] for name, value in own["headers"]]  # h11 sends names lowercase
    assert ["authorization", "token app-secret"] in headers
    assert ["cookie", "app=c"] in headers


def test_websocket_echo_through_the_proxy(proxy):
    with websocket_connect(f"ws://127.0.0.1:{proxy.port}/job41/echo", open_timeout=10) as ws:
        for message in ("hello", "x" * 100_000):
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"\x00\x01binary"


def test_a_large_download_through_the_proxy(proxy):
    size = 10 * 1024 * 1024
    answer = requests.get(proxy.url + f"/big?bytes={size}", timeout=60)
    direct = requests.get(f"http://127.0.0.1:{proxy.service_port}/big?bytes={size}", timeout=60)
    assert len(answer.content) == size
    assert hashlib.sha256(answer.content).digest() == hashlib.sha256(direct.content).digest()


def test_after_a_long_body_the_connection_to_the_job_carries_the_next_request(proxy):
    """A long body is relayed past h11 (front.py): the job's connection is then still reused."""
    session = requests.Session()
    before = session.get(proxy.url + "/headers", timeout=5).json()["peer"]
    for size in (64 * 1024, 3_000_001):
        answer = session.get(proxy.url + f"/big?bytes={size}", timeout=60)
        assert (answer.status_code, len(answer.content)) == (200, size)
        assert session.get(proxy.url + "/headers", timeout=5).json()["peer"] == before


def test_a_long_answer_that_closes_the_jobs_connection_opens_a_new_one_for_the_next(proxy):
    session = requests.Session()
    before = session.get(proxy.url + "/headers", timeout=5).json()["peer"]
    answer = session.get(proxy.url + "/big?bytes=1000000&close=1", timeout=60)
    assert len(answer.content) == 1_000_000
    assert "close" not in answer.headers.get("Connection", "")  # hop-by-hop: the job's, not ours
    after = session.get(proxy.url + "/headers", timeout=5).json()["peer"]
    assert after != before


def test_head_of_a_long_answer_has_its_length_and_no_body(proxy):
    session = requests.Session()
    head = session.head(proxy.url + "/big?bytes=5000000", timeout=5)
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "5000000", b"")
    assert session.get(proxy.url + "/headers", timeout=5).status_code == 200


def test_a_job_that_stops_in_the_middle_of_a_long_body_closes_the_client_connection(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"GET /job41/big?bytes=2000000&stop=700000 HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(1 << 20):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: 2000000" in head.lower()
    assert len(body) == 700_000  # what came, then the close: the client knows it is cut short
    assert requests.get(proxy.url + "/headers", timeout=5).status_code == 200


def error_document(answer: requests.Response, status: int) -> str:
    """The description of an answer that must be the contract's JSON error with ``status``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    document = answer.json()
    assert set(document) == {"title", "description", "request_id"}
    assert document["title"].startswith(f"{status} ")
    assert document["request_id"] == answer.headers["X-Request-Id"]
    assert document["description"].endswith(".")
    assert "127.0.0.1" not in document["description"] and "/tmp" not in document["description"]
    return document["description"]


def raw_error_document(answer: bytes, status: int) -> str:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert b"\r\ncontent-type: application/json" in head.lower()
    document = json.loads(body)
    assert set(document) == {"title", "description", "request_id"}
    assert document["title"].startswith(f"{status} ")
    assert f"\r\nx-request-id: {document['request_id']}\r\n".encode() in head.lower() + b"\r\n"
    assert "127.0.0.1" not in document["description"] and "/tmp" not in document["description"]
    return document["description"]


def test_unknown_and_batch_jobs_answer_404_with_a_sentence(proxy):
    session = requests.Session()
    unknown = session.get(f"http://127.0.0.1:{proxy.port}/job999999/", timeout=5)
    assert "No interactive job 999999 is running" in error_document(unknown, 404)
    head = session.head(f"http://127.0.0.1:{proxy.port}/job999999/", timeout=5)
    assert (head.status_code, head.content) == (404, b"")
    assert session.get(proxy.url + "/headers", timeout=5).status_code == 200  # the connection went on
    batch = proxy.submit("batch", 42, "#!/bin/bash\n{DOWNSTREAM_PARAMETERS}\nJARVICE_CPU_CORES=1\n"
                         f"{service_command()}\n".replace("$JARVICE_SERVICE_PORT", str(find_free_port())))
    assert proxy.info(batch)["url"] == ""
    error_document(requests.get(f"http://127.0.0.1:{proxy.port}/job42/", timeout=5), 404)
    proxy.terminate(batch)


def test_a_job_whose_service_does_not_listen_answers_502(tmp_path):
    proxy = Proxy(tmp_path)
    try:
        proxy.submit("silent", 45, interactive_template("sleep 600"))
        session = requests.Session()
        answer = session.post(f"http://127.0.0.1:{proxy.port}/job45/x", data=b"body", timeout=10)
        description = error_document(answer, 502)
        assert description.startswith("Interactive job 45 runs, but its web service (port ")
        assert session.get(f"http://127.0.0.1:{proxy.port}/live", timeout=5).status_code == 200
    finally:
        proxy.server.stop()


def test_a_body_to_a_job_waits_for_its_100_continue_and_is_relayed(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /job41/headers HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("request_line, host", [
    (b"GET http://127.0.0.1:22022/ HTTP/1.1", b"127.0.0.1:22022"),  # absolute form
    (b"GET http://127.0.0.1/job41/headers HTTP/1.1", b"127.0.0.1"),
    (b"CONNECT 127.0.0.1:22022 HTTP/1.1", b"127.0.0.1:22022"),
    (b"OPTIONS * HTTP/1.1", b"x"),
    (b"GET /job41/../job42/headers HTTP/1.1", b"x"),
    (b"GET /job41/%2e%2e/headers HTTP/1.1", b"x"),
    (b"GET /job41/a%2fb HTTP/1.1", b"x"),
    (b"GET /x/../job41/headers HTTP/1.1", b"x"),
])
def test_what_could_reach_elsewhere_is_refused_with_400(proxy, request_line, host):
    answer = raw_exchange(proxy.port, request_line + b"\r\nHost: " + host + b"\r\n\r\n")
    assert b'"port"' not in answer
    description = raw_error_document(answer, 400)
    assert "22022" not in description
    assert description.startswith(("The request target must be a path", "The request path has",
                                   "The request is not valid HTTP/1.1"))


def test_two_host_headers_are_refused(proxy):
    answer = raw_exchange(proxy.port, b"GET /job41/headers HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert raw_error_document(answer, 400) == ("The request is not valid HTTP/1.1 (Found multiple Host: "
                                               "headers); send a well-formed request.")


def test_a_host_header_of_another_place_still_reaches_only_the_job(proxy):
    answer = raw_exchange(proxy.port, b"GET /job41/headers HTTP/1.1\r\nHost: 127.0.0.1:22022\r\n"
                         b"Connection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["port"] == proxy.service_port


def test_terminating_a_job_closes_its_websocket_and_its_url_answers_404(tmp_path):
    """The service outlives its job here (setsid), so only the proxy can close the websocket."""
    proxy = Proxy(tmp_path)
    pid_file = tmp_path / "service.pid"
    command = (f"setsid {sys.executable} {SERVICE} $JARVICE_SERVICE_PORT & echo $! > {pid_file}; "
               "sleep 600")
    try:
        job = proxy.submit("ending", 43, interactive_template(command))
        url = proxy.info(job)["url"]
        wait_serving(url + "/headers", 20, 5)
        with websocket_connect(f"ws://127.0.0.1:{proxy.port}/job43/echo", open_timeout=10) as ws:
            ws.send("before")
            assert ws.recv(timeout=10) == "before"
            proxy.terminate(job)
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                while time.monotonic() - started < 20:
                    ws.send("still there?")
                    ws.recv(timeout=1)
        answer = requests.get(url + "/headers", timeout=5)
        assert "No interactive job 43" in error_document(answer, 404)
        direct = requests.get(f"http://127.0.0.1:{proxy.service_port}/headers", timeout=5)
        assert direct.status_code == 200  # the service still runs: the proxy closed the websocket
        wait_until(lambda: proxy.info(job)["url"] == "", 20, what="the url to go")
    finally:
        proxy.server.stop()
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_host_based_urls(tmp_path):
    proxy = Proxy(tmp_path, domain="http://jobs.example:{port}", JARVICE_JOBS_NAMESPACE="tenant-jobs")
    try:
        job = proxy.submit("hosted", 44, interactive_template(service_command()))
        url = proxy.info(job)["url"]
        assert url == f"http://tenant-jobs-44.jobs.example:{proxy.port}"
        host = {"Host": f"tenant-jobs-44.jobs.example:{proxy.port}"}
        seen = wait_serving(f"http://127.0.0.1:{proxy.port}/headers", 20, 5, headers=host).json()
        assert seen["path"] == "/headers" and seen["port"] == proxy.service_port
        big = requests.get(f"http://127.0.0.1:{proxy.port}/big?bytes=5000000", headers=host, timeout=60)
        assert len(big.content) == 5_000_000
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        with websocket_connect(f"ws://tenant-jobs-44.jobs.example:{proxy.port}/echo", sock=sock,
                               open_timeout=10) as ws:
            ws.send("hosted")
            assert ws.recv(timeout=10) == "hosted"
        other = requests.get(f"http://127.0.0.1:{proxy.port}/live",
                             headers={"Host": "tenant-jobs-44.elsewhere.example"}, timeout=5)
        assert other.status_code == 200  # not a job's host: the API's
        missing = requests.get(f"http://127.0.0.1:{proxy.port}/",
                               headers={"Host": "tenant-jobs-45.jobs.example"}, timeout=5)
        assert missing.status_code == 404
    finally:
        proxy.server.stop()
