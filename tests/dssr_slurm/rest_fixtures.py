"""Fixtures and helpers of the slurmrestd connector's tests.

Test modules load the fixtures with ``pytest_plugins = ["rest_fixtures"]`` and import the
helpers. (PYTEST_DONT_REWRITE: the helpers are imported before pytest loads the plugin.)

- ``recorded(version, name)``: one answer file of tests/dssr_slurm/recorded/.
- ``FakeSlurmrestd``: a small HTTP server that answers with recorded answers and keeps the
  requests it got (with their headers), for the tests of recorded versions, retries and pools.
- ``rest_env`` / ``make_rest_connector``: the real cluster's slurmrestd, jobs as the mapped
  users, ``DSSR_CLUSTER_BIN`` first on the jobs' PATH; ``api_for``, DSSR's API over such a
  connector (``api_of`` for a connector made otherwise).
"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from slurm_helpers import slurm

from dssr_core.app import create_app
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient
from dssr_slurm.rest.connector import SlurmRestConnector

RECORDED = Path(__file__).parent / "recorded"
REST_JOB_PREFIX = "jarvice_rest-"
#: The clock of the hand-built answers (recorded/README.md).
RECORDED_NOW = 1795260000
#: The versions whose answers were recorded from 26.05's slurmrestd (record_v0_0_4x.py).
LIVE_RECORDED = ("v0.0.43", "v0.0.44", "v0.0.45")


def recorded(version: str, name: str) -> dict:
    return json.loads((RECORDED / version / f"{name}.json").read_text())


class FakeSlurmrestd:
    """Answers ``(method, path)`` with recorded answers; 404 text for anything else, like slurmrestd."""

    def __init__(self):
        self.routes: dict[tuple[str, str], list] = {}
        self.requests: list[dict] = []
        self.delay = 0.0
        self.open_connections = 0
        self.max_open_connections = 0
        self._sockets = set()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, method: str, path: str, *answers) -> None:
        """Answer with these, in turn; the last one is repeated. Each is a recorded dict or (status, body)."""
        self.routes[(method, path)] = list(answers)

    def serve_version(self, version: str, names: dict[str, str]) -> None:
        """``names``: ``"GET /slurm/v0.0.40/jobs" -> "jobs"`` (a recorded file of ``version``)."""
        for request, name in names.items():
            method, path = request.split(" ", 1)
            self.answer(method, path, recorded(version, name))

    def requested(self, method: str | None = None, path: str | None = None) -> list[dict]:
        """The requests made (of ``path`` with any query, or exactly ``path`` when it has one)."""
        return [r for r in self.requests if (method is None or r["method"] == method)
                and (path is None or path in (r["path"], r["path"].split("?")[0]))]

    def close(self) -> None:
        """Stop listening and drop the kept-alive connections, as a stopped slurmrestd would."""
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _next(self, method: str, path: str):
        """The answer routed for the path with its query, else for the path (a query it ignores)."""
        answers = self.routes.get((method, path)) or self.routes.get((method, path.split("?")[0]))
        if not answers:
            return 404, None, "Unable find requested URL. Please view /openapi/v3 for API reference."
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, tuple):
            status, body = answer
            return status, body, None
        return answer["status"], answer.get("body"), answer.get("text")

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with fake._lock:
                    fake._sockets.add(self.connection)
                    fake.open_connections += 1
                    fake.max_open_connections = max(fake.max_open_connections, fake.open_connections)

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass
                with fake._lock:
                    fake._sockets.discard(self.connection)
                    fake.open_connections -= 1

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake._lock:
                    fake.requests.append({"method": self.command, "path": self.path,
                                          "headers": dict(self.headers),
                                          "body": json.loads(raw) if raw else None})
                if fake.delay:
                    time.sleep(fake.delay)
                status, body, text = fake._next(self.command, self.path)
                data = json.dumps(body).encode() if body is not None else (text or "").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if body is not None else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_DELETE = _serve

        return Handler


@pytest.fixture
def fake_slurmrestd():
    fake = FakeSlurmrestd()
    yield fake
    fake.close()


@pytest.fixture
def fake_env(tmp_path, fake_slurmrestd):
    """Settings for a connector that talks to the fake slurmrestd (token mode mint, a throw-away key)."""
    key = tmp_path / "jwt.key"
    key.write_bytes(b"k" * 32)
    mapping = tmp_path / "users.yaml"
    mapping.write_text("users_id_mapping:\n"
                       "  - {mail: kirby@example.org, mapped_user: kirby}\n"
                       "  - {mail: mario@example.org, mapped_user: mario}\n")
    return {"JARVICE_SLURMRESTD_ADDR": "127.0.0.1", "JARVICE_SLURMRESTD_PORT": str(fake_slurmrestd.port),
            "JARVICE_SLURMRESTD_JWT_KEY_FILE": str(key), "JARVICE_SLURMRESTD_USER": "jarvice",
            "JARVICE_SLURM_ID_MAPPING_FILE": str(mapping),
            "JARVICE_JOB_SCRATCH_DIR": str(tmp_path / "scratch"),
            "JARVICE_SLURM_STATUS_INTERVAL": "0", "JARVICE_SLURMRESTD_RETRIES": "2",
            "JARVICE_SLURMRESTD_TIMEOUT": "5"}


def ping_routes(version: str) -> dict[str, str]:
    return {f"GET /slurm/{version}/ping": "ping"}


# The real cluster ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rest_env(cluster_env):
    """Settings for a slurmrestd DSSR on the test cluster with the shell executor; jobs find the
    cluster's bin first on PATH."""
    yield {**cluster_env, "JARVICE_BAREMETAL_CONNECTOR": "slurmrestd", "JARVICE_BAREMETAL_EXECUTOR": "shell",
           "JARVICE_SLURM_STATUS_INTERVAL": "0.5",
           "JARVICE_SLURMRESTD_JOB_PATH": f"{cluster_env['DSSR_CLUSTER_BIN']}:/usr/local/bin:/usr/bin:/bin"}
    cancel_rest_jobs()


@pytest.fixture
def make_rest_connector(rest_env):
    """A factory: ``make_rest_connector(**overrides)`` builds a connector, closed after the test."""
    made = []

    def make(**overrides) -> SlurmRestConnector:
        connector = SlurmRestConnector.from_settings(Settings.from_env({**rest_env, **overrides}))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def api_of(connector, env: dict) -> ApiClient:
    """DSSR's HTTP API in process over ``connector``, with the shell executor and ``env``'s settings."""
    settings = Settings.from_env(env)
    return ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings), executor_name="shell"))


@pytest.fixture
def api_for(make_rest_connector, rest_env):
    """A factory: ``api_for(**overrides)`` is DSSR's API over a new connector with those settings."""
    def api_for(**overrides) -> ApiClient:
        return api_of(make_rest_connector(**overrides), {**rest_env, **overrides})

    return api_for


def cancel_rest_jobs() -> None:
    listing = slurm("squeue", "-h", "-a", "-o", "%i %j")
    ids = [words[0] for words in (line.split() for line in listing.stdout.splitlines())
           if len(words) == 2 and words[1].startswith(REST_JOB_PREFIX)]
    if ids:
        slurm("scancel", *ids)


def cluster_token(env: dict, user: str, lifespan: int = 600, **claims) -> str:
    """A token the cluster accepts, made with its key (like ``scontrol token``), plus ``claims``."""
    key = Path(env["JARVICE_SLURMRESTD_JWT_KEY_FILE"]).read_bytes()
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + lifespan, "sun": user, **claims}, key, algorithm="HS256")
