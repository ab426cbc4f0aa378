"""The proxy of interactive jobs on the real cluster: slurm-cli, a job whose command is a web
service on its node, reached only through DSSR (an SSH channel via the login node).

Two ``dssr serve`` processes: A submits and serves path-based URLs, B (which never saw the
submission) serves host-based ones; both proxy the same job, found from Slurm's comment alone.
A carries its channels on OpenSSH (the default), B on paramiko (``DSSR_PROXY_SSH_CLIENT``).
"""

import contextlib
import hashlib
import random
import socket
import time

import pytest
import requests
from slurm_helpers import KIRBY_MAIL, SHARED, bearer_for, job_of, template, wait_started, web_service_for_jobs
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as websocket_connect

from dssr_core.testing import wait_until
from dssr_core.testing.plugin import DssrServer, find_free_port, wait_serving

pytestmark = pytest.mark.slow
#: Interactive jobs hold their node alone, so they start once the shared cluster's other jobs end.
INTERACTIVE_START = 480
KIRBY = bearer_for(KIRBY_MAIL)


def proxy_server(slurm_env, tmp_path, name: str, domain: str, **env) -> DssrServer:
    server = DssrServer({**slurm_env, "DSSR_PROXY_CHECK_INTERVAL": "0.5", **env}, tmp_path / f"{name}.log")
    server.env["JARVICE_JOBS_DOMAIN"] = domain.format(port=server.port)
    return server.start()


def info(api, job) -> dict:
    answer = api.post(f"/request/{job['name']}/{job['number']}/{job['jobid']}/info", {"qs": {}})
    assert answer.status == 200, answer.text
    return answer.json


def submit_interactive(api, name: str, number: int, body: str, interactive: bool = True) -> dict:
    extra = "JOBOBJ_INTERACTIVE=true" if interactive else ""
    answer = api.submit(name, template(body, devices=SHARED, extra=extra), number=number, bearer=KIRBY)
    job = job_of(name, answer)
    job["number"] = number
    if interactive:
        wait_started(api, job, timeout=INTERACTIVE_START)
    return job


#: How long a job's service may take to answer through the proxy, and each try.
SERVING = (60, 10)


@pytest.fixture(scope="module")
def two_proxies(slurm_env, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("proxy-cluster")
    service_port = find_free_port()
    a = proxy_server(slurm_env, tmp_path, "a", "http://127.0.0.1:{port}/job$",
                     DSSR_SHELL_SERVICE_PORT=str(service_port))
    b = proxy_server(slurm_env, tmp_path, "b", "http://jobs.test:{port}", JARVICE_JOBS_NAMESPACE="ns",
                     DSSR_PROXY_SSH_CLIENT="paramiko")
    number = random.randint(100_000, 999_999)
    name = f"cli-proxy-{number}"
    service = web_service_for_jobs(slurm_env)
    job = submit_interactive(a.api(), name, number, f"exec python3 {service} $JARVICE_SERVICE_PORT")
    yield a, b, job, service_port
    a.api().post("/terminate", {k: job[k] for k in ("name", "number", "jobid")})
    a.stop()
    b.stop()


def test_info_gives_each_replica_its_url_and_both_proxy_the_job(two_proxies):
    a, b, job, service_port = two_proxies
    n = job["number"]
    assert info(a.api(), job)["url"] == f"http://127.0.0.1:{a.port}/job{n}"
    assert info(b.api(), job)["url"] == f"http://ns-{n}.jobs.test:{b.port}"
    seen = wait_serving(f"http://127.0.0.1:{a.port}/job{n}/headers", *SERVING).json()
    assert seen["path"] == "/headers" and seen["port"] == service_port
    host = {"Host": f"ns-{n}.jobs.test:{b.port}"}
    seen = wait_serving(f"http://127.0.0.1:{b.port}/headers?b=1", *SERVING, headers=host).json()
    assert seen["path"] == "/headers?b=1" and seen["port"] == service_port


def test_websocket_echo_and_large_download_path_and_host_based(two_proxies):
    a, b, job, _ = two_proxies
    n = job["number"]
    wait_serving(f"http://127.0.0.1:{a.port}/job{n}/headers", *SERVING)
    size = 10 * 1024 * 1024
    expected = hashlib.sha256(requests.get(f"http://127.0.0.1:{a.port}/job{n}/big?bytes={size}",
                                           timeout=120).content).hexdigest()
    host = {"Host": f"ns-{n}.jobs.test:{b.port}"}
    through_b = requests.get(f"http://127.0.0.1:{b.port}/big?bytes={size}", headers=host, timeout=120).content
    assert len(through_b) == size and hashlib.sha256(through_b).hexdigest() == expected
    with websocket_connect(f"ws://127.0.0.1:{a.port}/job{n}/echo", open_timeout=20) as ws:
        ws.send("path-based")
        assert ws.recv(timeout=20) == "path-based"
    sock = socket.create_connection(("127.0.0.1", b.port), timeout=20)
    with websocket_connect(f"ws://ns-{n}.jobs.test:{b.port}/echo", sock=sock, open_timeout=20) as ws:
        ws.send(b"host-based" * 1000)
        assert ws.recv(timeout=20) == b"host-based" * 1000


def test_a_batch_job_and_an_unknown_number_answer_404(two_proxies):
    a, _, _, _ = two_proxies
    number = random.randint(100_000, 999_999)
    # Interactive jobs hold their node (exclusive), so the batch job may wait: queued or
    # running, it is no interactive job.
    batch = submit_interactive(a.api(), f"cli-batch-{number}", number, "sleep 60", interactive=False)
    try:
        assert info(a.api(), batch)["url"] == ""
        answer = requests.get(f"http://127.0.0.1:{a.port}/job{number}/", timeout=10)
        assert answer.status_code == 404 and f"No interactive job {number}" in answer.text
    finally:
        a.api().post("/terminate", {k: batch[k] for k in ("name", "number", "jobid")})
    assert requests.get(f"http://127.0.0.1:{a.port}/job1/", timeout=10).status_code == 404


def test_absolute_form_and_dot_segments_reach_nothing(two_proxies):
    a, _, job, _ = two_proxies
    for line in (b"GET http://127.0.0.1:22022/ HTTP/1.1", f"GET /job{job['number']}/../x HTTP/1.1".encode()):
        with socket.create_connection(("127.0.0.1", a.port), timeout=10) as sock:
            sock.sendall(line + b"\r\nHost: 127.0.0.1:22022\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")


def test_the_proxy_recovers_when_sshd_restarts(two_proxies, daemons):
    """Stops the cluster's sshd (with its sessions, as a crash would), as test_failures.py does."""
    a, _, job, _ = two_proxies
    url = f"http://127.0.0.1:{a.port}/job{job['number']}/headers"
    wait_serving(url, *SERVING)
    daemons.stop("sshd")
    try:
        answer = requests.get(url, timeout=60)
        assert answer.status_code in (502, 503), answer.text
    finally:
        daemons.start("sshd")
    assert wait_serving(url, *SERVING).json()["path"] == "/headers"
    with websocket_connect(f"ws://127.0.0.1:{a.port}/job{job['number']}/echo", open_timeout=20) as ws:
        ws.send("after sshd came back")
        assert ws.recv(timeout=20) == "after sshd came back"


def test_terminating_the_job_closes_its_websocket_on_both_replicas(two_proxies):
    """Last in this module: it ends the module's job (interactive jobs hold the one node alone,
    so a second one would wait for the first to end)."""
    a, b, job, _ = two_proxies
    n = job["number"]
    wait_serving(f"http://127.0.0.1:{a.port}/job{n}/headers", *SERVING)
    with contextlib.ExitStack() as stack:
        through_b = socket.create_connection(("127.0.0.1", b.port), timeout=20)
        sockets = [stack.enter_context(websocket_connect(f"ws://127.0.0.1:{a.port}/job{n}/echo",
                                                         open_timeout=20)),
                   stack.enter_context(websocket_connect(f"ws://ns-{n}.jobs.test:{b.port}/echo",
                                                         sock=through_b, open_timeout=20))]
        for ws in sockets:
            ws.send("before")
            assert ws.recv(timeout=20) == "before"
        assert a.api().post("/terminate", {k: job[k] for k in ("name", "number", "jobid")}).status == 200
        for ws in sockets:
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                while time.monotonic() - started < 60:
                    ws.send("still there?")
                    with contextlib.suppress(TimeoutError):  # a slow echo is no closed websocket
                        ws.recv(timeout=1)
    host = {"Host": f"ns-{n}.jobs.test:{b.port}"}
    for url, headers in ((f"http://127.0.0.1:{a.port}/job{n}/", {}), (f"http://127.0.0.1:{b.port}/", host)):
        wait_until(lambda url=url, headers=headers: requests.get(url, headers=headers, timeout=10).status_code
                   == 404, 60, what="the ended job's URL to answer 404")
