"""The pytest plugin that ``dssr_core`` installs: fixtures for connector authors."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from dssr_core.testing.api import ApiClient, wait_until

#: A contract test skipped because its subclass did not opt in starts its reason with this.
OPT_OUT = "contract opt-out:"


def pytest_terminal_summary(terminalreporter):
    """List the contract tests that were not run because a connector did not opt in to them,
    so that a green run shows what it did not check."""
    opted_out = [report for report in terminalreporter.stats.get("skipped", [])
                 if isinstance(report.longrepr, tuple) and OPT_OUT in str(report.longrepr[2])]
    if not opted_out:
        return
    terminalreporter.section("connector contract: tests not opted in to")
    for report in opted_out:
        reason = str(report.longrepr[2]).split(OPT_OUT, 1)[1].strip()
        terminalreporter.line(f"{report.nodeid}: {reason}")


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return find_free_port()


def find_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` as it is to 127.0.0.1:``port``; everything the server sends until it closes
    (or 2 s of silence). For requests no HTTP client would send."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(2)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
        return answer


def wait_serving(url: str, timeout: float, request_timeout: float, **kwargs):
    """The first ``200`` answer of ``GET url`` (``kwargs`` go to ``requests.get``) within
    ``timeout`` s; a refused connection or another status counts as not yet."""
    import requests

    def answered():
        try:
            answer = requests.get(url, timeout=request_timeout, **kwargs)
        except requests.ConnectionError:
            return None
        return answer if answer.status_code == 200 else None

    return wait_until(answered, timeout, what=f"{url} to answer")


def wait_answering(process: subprocess.Popen, answers: Callable[[], bool], timeout: float, what: str,
                   log: Callable[[], str]) -> None:
    """Wait until ``answers()`` says the started ``process`` serves (an OSError counts as not yet);
    RuntimeError with its ``log()`` when it exits first or does not answer within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log()}")
        try:
            if answers():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {timeout} s:\n{log()}")


def stop_process(process: subprocess.Popen | None, grace: float = 10) -> None:
    """Terminate ``process`` if it still runs; kill it when it has not ended after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class DssrServer:
    """``dssr serve`` running as a subprocess, with an :class:`ApiClient` bound to it.

    Its metrics port (``DSSR_METRICS_PORT``) is a free port too, unless ``env`` names one:
    ``metrics_url`` is its ``/metrics`` (None when ``env`` turns it off).
    """

    def __init__(self, env: dict[str, str], log_path, auth=None):
        self.env = env
        self.log_path = log_path
        self.auth = auth
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        metrics_port = env.get("DSSR_METRICS_PORT") or str(find_free_port())
        self.metrics_port = None if metrics_port == "off" else int(metrics_port)
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else None
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "DssrServer":
        env = {**os.environ, **self.env, "WAITRESS_PORT": str(self.port),
               "WAITRESS_BIND_ADDRESS": "127.0.0.1",
               "DSSR_METRICS_PORT": str(self.metrics_port) if self.metrics_port else "off"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "dssr_core", "serve"],
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
        api = ApiClient.for_url(self.url, timeout=5)
        wait_answering(self.process, lambda: api.get("/live").status == 200, timeout, "dssr serve (/live)",
                       self.log)
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def restart(self) -> "DssrServer":
        self.stop()
        return self.start()

    def api(self, auth=None) -> ApiClient:
        return ApiClient.for_url(self.url, auth=auth or self.auth)

    def log(self) -> str:
        try:
            return open(self.log_path, encoding="utf-8", errors="replace").read()
        except OSError:
            return ""


@pytest.fixture
def dssr_server(tmp_path):
    """A factory: ``dssr_server(env)`` starts ``dssr serve`` with ``env`` on a free port."""
    servers = []

    def start(env: dict[str, str], auth=None) -> DssrServer:
        server = DssrServer(env, tmp_path / f"dssr-serve-{len(servers)}.log", auth=auth)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
