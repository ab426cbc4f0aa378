"""Metrics, request ids and log formats, in this process: what an operator's Prometheus and log
search see. A real Prometheus scraping ``dssr serve`` is in tests/dssr_slurm/test_prometheus.py.
"""

import io
import json
import logging
import socket
import threading
import urllib.request
from urllib.parse import urlencode

import falcon.testing
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_app import InMemoryConnector
from test_front import GET, split

from dssr_core import metrics, requestids
from dssr_core.app import create_app
from dssr_core.cli.logs import JsonFormatter, TextFormatter
from dssr_core.errors import ClusterUnavailable, SchedulerRejected, SchedulerTimeout
from dssr_core.front import Bounds, FrontListener
from dssr_core.joburls import JobsDomain
from dssr_core.metricsport import metrics_port, serve_metrics
from dssr_core.models import JobEndpoint, JobRef
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import encode_script, shell_template, wait_until
from dssr_core.testing.contract import assert_fixed_labels
from dssr_core.testing.plugin import raw_exchange

KEY = "upstream:s3cret"
AUTH = {"Authorization": "Basic dXBzdHJlYW06czNjcmV0"}


@pytest.fixture
def connector():
    return InMemoryConnector(None)


@pytest.fixture
def client(connector):
    settings = Settings.from_env({"JARVICE_SCHED_SERVER_KEY": KEY})
    return falcon.testing.TestClient(create_app(settings, connector, ShellExecutor(settings),
                                                executor_name="shell"))


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of a Prometheus text exposition."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def post_args(client, path: str, args: dict):
    return client.simulate_post(path, headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
                                body=urlencode({"args": json.dumps(args)}))


def value(name: str, **labels) -> float:
    return samples(metrics.exposition().decode()).get((name, tuple(sorted(labels.items()))), 0.0)


# /metrics -------------------------------------------------------------------------------


def test_metrics_on_the_api_port_need_the_server_key(client):
    refused = client.simulate_get("/metrics")
    assert refused.status_code == 401
    answer = client.simulate_get("/metrics", headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"dssr_http_requests", "dssr_http_request_duration_seconds", "dssr_scheduler_up",
            "dssr_scheduler_snapshot_age_seconds", "dssr_jobs", "dssr_submits", "dssr_proxy_connections",
            "dssr_proxy_bytes", "process_cpu_seconds", "python_info"} <= names


def test_requests_are_counted_by_route_template_never_by_path(client):
    before = value("dssr_http_requests_total", route="/request/{method}", method="POST", code="200")
    for jobid in ("9001", "9002"):
        client.simulate_post(f"/request/secret-job/7/{jobid}/nope", headers=AUTH)
    client.simulate_get("/no/such/path/alice@example.org", headers=AUTH)
    after = value("dssr_http_requests_total", route="/request/{method}", method="POST", code="200")
    assert after == before + 2
    assert value("dssr_http_requests_total", route="unmatched", method="GET", code="404") >= 1
    assert_fixed_labels(metrics.exposition().decode(), {"secret-job", "9001", "alice"})
    assert value("dssr_http_request_duration_seconds_count", route="/request/{method}") >= 2


def test_listings_set_the_jobs_gauge_and_submits_count_by_outcome(client, connector):
    client.simulate_get("/running", headers=AUTH)
    client.simulate_get("/queued", headers=AUTH)
    assert value("dssr_jobs", state="running") == 1 and value("dssr_jobs", state="queued") == 1
    counts = {outcome: value("dssr_submits_total", outcome=outcome) for outcome in metrics.SUBMIT_OUTCOMES}
    submit = {"name": "obs-1", "number": 1, "nodes": 1,
              "hpc_script": {"shell": encode_script(shell_template("true"))}}
    assert post_args(client, "/submit", submit).status_code == 200
    assert post_args(client, "/submit", {**submit, "nodes": 0}).status_code == 400
    connector.down = True
    assert post_args(client, "/submit", submit).status_code == 503
    assert value("dssr_submits_total", outcome="new") == counts["new"] + 1
    assert value("dssr_submits_total", outcome="refused") == counts["refused"] + 1
    assert value("dssr_submits_total", outcome="failed") == counts["failed"] + 1


def test_the_metrics_port_serves_only_metrics_and_needs_no_key():
    server = serve_metrics("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
            assert answer.status == 200
            assert b"dssr_scheduler_up" in answer.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "/submit", timeout=5)
        assert refused.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("text,port", [("", 9464), ("9100", 9100), ("off", None), ("OFF", None), ("0", 0)])
def test_the_metrics_port_setting(text, port):
    assert metrics_port(Settings.from_env({"DSSR_METRICS_PORT": text} if text else {})) == port


@pytest.mark.parametrize("text", ["yes please", "70000", "-1"])
def test_a_bad_metrics_port_says_what_to_set(text):
    with pytest.raises(Exception, match="DSSR_METRICS_PORT must be a port"):
        metrics_port(Settings.from_env({"DSSR_METRICS_PORT": text}))


# Scheduler calls ------------------------------------------------------------------------


@pytest.mark.parametrize("raised,outcome,up", [
    (None, "ok", 1), (SchedulerTimeout("slow"), "timeout", 0), (TimeoutError(), "timeout", 0),
    (ClusterUnavailable("down"), "error", 0), (SchedulerRejected("no such partition"), "error", 1),
])
def test_a_scheduler_call_is_counted_with_its_outcome_and_sets_up(raised, outcome, up):
    before = value("dssr_scheduler_requests_total", operation="qstat", outcome=outcome)
    metrics.set_scheduler_up(not up)
    try:
        with metrics.scheduler_call("qstat"):
            if raised is not None:
                raise raised
    except Exception as error:  # noqa: BLE001 - passed through, as asserted
        assert error is raised
    assert value("dssr_scheduler_requests_total", operation="qstat", outcome=outcome) == before + 1
    assert value("dssr_scheduler_up") == up
    assert value("dssr_scheduler_request_duration_seconds_count", operation="qstat") >= 1


def test_an_answer_that_says_the_scheduler_is_unreachable_sets_up_to_0():
    with metrics.scheduler_call("qstat") as call:
        call.failed(unreachable=True)
    assert value("dssr_scheduler_up") == 0
    with metrics.scheduler_call("qstat") as call:
        call.failed()
    assert value("dssr_scheduler_up") == 1


def test_the_snapshot_age_counts_from_the_last_snapshot():
    metrics.snapshot_taken()
    assert 0 <= value("dssr_scheduler_snapshot_age_seconds") < 5


# Request ids ----------------------------------------------------------------------------


def test_a_well_formed_request_id_is_kept_and_others_replaced(client):
    kept = client.simulate_get("/live", headers={"X-Request-Id": "upstream-42.a_b"})
    assert kept.headers["x-request-id"] == "upstream-42.a_b"
    for sent in ("", "has space", "x" * 65, "semi;colon"):
        made = client.simulate_get("/live", headers={"X-Request-Id": sent} if sent else {})
        assert made.headers["x-request-id"] != sent
        assert requestids.accept(made.headers["x-request-id"]) == made.headers["x-request-id"]


def test_every_error_body_carries_the_request_id_of_its_header(client, connector):
    connector.down = True
    answers = [client.simulate_get("/running", headers={**AUTH, "X-Request-Id": "poll-1"}),
               client.simulate_get("/running"),  # 401
               client.simulate_get("/nope", headers=AUTH),
               client.simulate_post("/runstatus", headers=AUTH, body="args={")]
    assert [answer.status_code for answer in answers] == [503, 401, 404, 400]
    for answer in answers:
        assert answer.json["request_id"] == answer.headers["x-request-id"]
    assert answers[0].json["request_id"] == "poll-1"


def test_the_front_listener_sets_the_id_on_its_own_errors_and_hands_it_to_the_app():
    def echo_id(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("X-Request-Id", environ[requestids.ENVIRON_KEY])])
        return [b"ok"]

    listener = socket.create_server(("127.0.0.1", 0))
    front = FrontListener([listener], echo_id, JobsDomain.parse("http://localhost/job$"), None,
                          bounds=Bounds()).start()
    try:
        _, headers, _, _ = split(raw_exchange(front.port, GET.replace(b"\r\n\r\n",
                                                                      b"\r\nX-Request-Id: up-7\r\n\r\n")))
        assert headers["x-request-id"] == "up-7"
        status, headers, body, _ = split(raw_exchange(front.port, b"GET /live HTTP/1.1\r\n\r\n"))  # no Host
        assert status.startswith("HTTP/1.1 400")
        assert json.loads(body)["request_id"] == headers["x-request-id"]
    finally:
        front.close()


class OneJob:
    """A double of a connector with interactive job 7 served by ``port`` on this machine."""

    def __init__(self, port: int):
        self.port = port

    def interactive_endpoint(self, number):
        return JobEndpoint(JobRef("job-7", 7, "4021"), "127.0.0.1", self.port) if number == 7 else None

    def connect_interactive(self, endpoint):
        return socket.create_connection((endpoint.node, endpoint.port))


def test_the_front_listener_counts_job_requests_bytes_and_connections():
    service = socket.create_server(("127.0.0.1", 0))

    def serve_once():
        connection, _ = service.accept()
        with connection:
            while b"\r\n\r\n" not in connection.recv(65536):
                pass
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-Id: job-own\r\n\r\nhello")

    threading.Thread(target=serve_once, daemon=True).start()
    listener = socket.create_server(("127.0.0.1", 0))
    front = FrontListener([listener], None, JobsDomain.parse("http://localhost/job$"),
                          OneJob(service.getsockname()[1]), bounds=Bounds()).start()
    before = {"requests": value("dssr_http_requests_total", route="job-proxy", method="GET", code="200"),
              "from_job": value("dssr_proxy_bytes_total", direction="from_job")}
    try:
        status, headers, body, _ = split(raw_exchange(front.port, b"GET /job7/ HTTP/1.1\r\nHost: x\r\n"
                                                                  b"X-Request-Id: up-9\r\n\r\n"))
        assert status == "HTTP/1.1 200 OK" and body == b"hello"
        assert headers["x-request-id"] == "up-9"  # the job's own is replaced
        assert value("dssr_http_requests_total", route="job-proxy", method="GET", code="200") == \
            before["requests"] + 1
        assert value("dssr_proxy_bytes_total", direction="from_job") == before["from_job"] + 5
        wait_until(lambda: value("dssr_proxy_connections") == 0, 5, what="the job's connection closed")
    finally:
        front.close()
        service.close()


# Logs -----------------------------------------------------------------------------------


def log_line(formatter: logging.Formatter, request_id: str | None, message: str = "submit job %s") -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("dssr.audit.test")
    logger.addHandler(handler)
    logger.propagate = False
    token = requestids.current.set(request_id)
    try:
        logger.warning(message, "4021")
    finally:
        requestids.current.reset(token)
        logger.removeHandler(handler)
    return stream.getvalue()


def test_text_lines_end_with_the_request_id_while_a_request_is_served():
    assert log_line(TextFormatter(), "up-7").rstrip().endswith(
        "WARNING dssr.audit.test: submit job 4021 [request_id=up-7]")
    assert log_line(TextFormatter(), None).rstrip().endswith("WARNING dssr.audit.test: submit job 4021")


def test_json_lines_are_one_object_each_with_the_request_id():
    [line] = log_line(JsonFormatter(), "up-7", "submit job %s\nsecond line").splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "dssr.audit.test"
    assert entry["message"] == "submit job 4021\nsecond line" and entry["request_id"] == "up-7"
    assert entry["time"].endswith("+00:00")
    assert "request_id" not in json.loads(log_line(JsonFormatter(), None))


@pytest.mark.parametrize("sample,why", [
    ('dssr_http_requests_total{route="/request/job-1/1/4021/tail",method="POST",code="200"} 1', "template"),
    ('dssr_scheduler_requests_total{operation="4021",outcome="ok"} 1', "a number"),
    ('dssr_bearer_refused_total{reason="kirby@example.org"} 1', "an e-mail"),
    ('dssr_jobs{state="contract-3f2a"} 1', "names a job"),
])
def test_the_contract_suites_label_check_can_fail(sample, why):
    with pytest.raises(AssertionError, match=why):
        assert_fixed_labels(sample + "\n", {"contract-"})
    assert_fixed_labels(metrics.exposition().decode(), {"contract-"})
