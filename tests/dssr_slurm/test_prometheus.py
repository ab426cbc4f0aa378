"""A real Prometheus (Debian's 2.42, installed by tests/prometheus/install.sh when missing)
scraping real ``dssr serve``s on their metrics ports: the dummy connector behind the front
listener, slurm-cli on the test cluster, and slurm-cli pointed at an SSH port where nothing
listens (the same outage, from DSSR's side, as the cluster's sshd stopped, without stopping the
shared cluster's sshd). PromQL goes through Prometheus's HTTP API; the shipped rules and the
dashboard's queries are the ones loaded and run; ``promtool`` checks the rules (with their unit
tests) and each scrape.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
import requests

from dssr_core.testing import wait_until
from dssr_core.testing.plugin import DssrServer, find_free_port, stop_process, wait_answering

pytestmark = [pytest.mark.slow, pytest.mark.one_slurm_version]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "dssr-alerts.yaml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "dssr-alerts_test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dssr-dashboard.json"
SERVER_KEY = ("upstream", "s3cret")


@pytest.fixture(scope="module")
def promtool() -> str:
    subprocess.run(["bash", str(ROOT / "tests" / "prometheus" / "install.sh")], check=True, timeout=900)
    return "promtool"


@pytest.fixture(scope="module")
def servers(slurm_env, tmp_path_factory):
    """The three ``dssr serve``s, by Prometheus job name."""
    logs = tmp_path_factory.mktemp("prometheus-targets")
    envs = {
        "dummy": {"JARVICE_BAREMETAL_CONNECTOR": "dummy", "DSSR_FRONT_LISTENER": "true",
                  "DSSR_LOG_FORMAT": "json", "JARVICE_DUMMY_STATE_DIR": str(logs / "dummy-state"),
                  "JARVICE_SCHED_SERVER_KEY": ":".join(SERVER_KEY)},
        "slurm-cli": slurm_env,
        # Nothing listens there: every SSH connection is refused, as with the cluster's sshd down.
        "unreachable": {**slurm_env, "JARVICE_SLURM_CLUSTER_PORT": str(find_free_port())},
    }
    started = {}
    try:
        for name, env in envs.items():
            started[name] = DssrServer(env, logs / f"{name}.log", auth=SERVER_KEY).start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def prometheus(promtool, servers, tmp_path_factory):
    """Prometheus on a free loopback port, scraping every server each second and evaluating the
    shipped rules each second; its API's base URL."""
    home = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": name,
                            "static_configs": [{"targets": [f"127.0.0.1:{server.metrics_port}"]}]}
                           for name, server in servers.items()],
    }
    (home / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = find_free_port()
    log = open(home / "prometheus.log", "wb")
    process = subprocess.Popen(["prometheus", f"--config.file={home / 'prometheus.yml'}",
                                f"--storage.tsdb.path={home / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(process, lambda: requests.get(f"{url}/-/ready", timeout=2).status_code == 200, 60,
                       "prometheus", lambda: (home / "prometheus.log").read_text(errors="replace"))
        yield url
    finally:
        stop_process(process)
        log.close()


def query(url: str, promql: str) -> list[dict]:
    """The result of an instant query; AssertionError with Prometheus's words when it fails."""
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", (promql, answer)
    return answer["data"]["result"]


def wait_value(url: str, promql: str, timeout: float = 30) -> float:
    """The first value of ``promql`` once it has one (a filter such as ``== 3`` waits for it)."""
    result = wait_until(lambda: query(url, promql), timeout, what=promql)
    return float(result[0]["value"][1])


def test_prometheus_scrapes_each_dssr_and_answers_promql(prometheus, servers):
    dummy = servers["dummy"].api()
    for _ in range(3):
        assert dummy.get("/running").status == 200
        assert servers["slurm-cli"].api().get("/queued").status == 200
    assert wait_value(prometheus, 'count(up{job=~"dummy|slurm-cli|unreachable"} == 1) == 3') == 3
    assert wait_value(prometheus, 'dssr_build_info{job="dummy", connector="dummy", executor="shell"}') == 1
    assert wait_value(prometheus, 'dssr_scheduler_up{job="dummy"}') == 1
    assert wait_value(prometheus, 'sum(dssr_http_requests_total{job="dummy", route="/running", '
                                  'code="200"}) >= 3') >= 3
    assert wait_value(prometheus, 'dssr_scheduler_up{job="slurm-cli"} == 1') == 1
    assert wait_value(prometheus, 'sum(dssr_scheduler_requests_total{job="slurm-cli", operation="squeue", '
                                  'outcome="ok"}) > 0') > 0
    assert wait_value(prometheus, 'dssr_scheduler_snapshot_age_seconds{job="slurm-cli"} < 60') < 60
    assert wait_value(prometheus, 'dssr_ssh_connections{job="slurm-cli"} >= 1') >= 1
    assert wait_value(prometheus, 'sum(dssr_scheduler_request_duration_seconds_count{job="slurm-cli", '
                                  'operation="squeue"}) > 0') > 0


def test_metrics_on_the_api_port_need_the_key_behind_the_front_listener(servers):
    server = servers["dummy"]
    assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 401
    answer = requests.get(f"{server.url}/metrics", auth=SERVER_KEY, timeout=5)
    assert answer.status_code == 200 and "dssr_scheduler_up 1.0" in answer.text
    assert requests.get(f"http://127.0.0.1:{server.metrics_port}/submit", timeout=5).status_code == 404


def test_json_logs_carry_the_request_id_of_the_answer(servers):
    server = servers["dummy"]
    answer = requests.get(f"{server.url}/running", auth=SERVER_KEY, headers={"X-Request-Id": "e2e-json.1"},
                          timeout=5)
    assert answer.headers["X-Request-Id"] == "e2e-json.1"

    def access_line():
        lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]  # all JSON
        return [line for line in lines if line.get("request_id") == "e2e-json.1"]

    [line] = wait_until(access_line, 10, what="the access line of the request")
    assert line["logger"] == "dssr_core.access" and line["message"].startswith("GET /running 200 ")


def test_an_unreachable_scheduler_sets_the_alert_pending(prometheus, servers):
    api = servers["unreachable"].api()
    assert api.get("/running").status == 503  # as upstream polls: each poll fails
    assert wait_value(prometheus, 'dssr_scheduler_up{job="unreachable"} == 0') == 0
    assert wait_value(prometheus, 'sum(dssr_ssh_connection_failures_total{job="unreachable", '
                                  'cause="refused"}) > 0') > 0

    def pending():
        alerts = requests.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [alert for alert in alerts if alert["labels"]["alertname"] == "DSSRSchedulerUnreachable"]

    [alert] = wait_until(pending, 30, what="DSSRSchedulerUnreachable pending")
    assert alert["state"] == "pending"  # for: 2m, so it fires only later
    assert alert["labels"]["job"] == "unreachable" and alert["labels"]["severity"] == "critical"
    assert not query(prometheus, 'ALERTS{alertname="DSSRSchedulerUnreachable", job=~"dummy|slurm-cli"}')


def test_prometheus_loaded_the_shipped_rules_and_runs_the_dashboards_queries(prometheus, servers):
    groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert set(loaded) == {"DSSRSchedulerUnreachable", "DSSRSnapshotStale", "DSSRHighErrorRatio",
                           "DSSRRunstatusSlow", "DSSRSubmitsFailing"}
    wait_until(lambda: all(health == "ok" for health in rule_health(prometheus).values()), 15,
               what="every rule evaluated without error")
    dashboard = json.loads(DASHBOARD.read_text())
    names = set(re.findall(r"\b(?:dssr|process)_[a-z_]+", metric_text(servers)))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            promql = target["expr"].replace("$job", ".+").replace("$__rate_interval", "1m")
            query(prometheus, promql)  # valid PromQL, as Prometheus reads it
            for name in re.findall(r"\b(?:dssr|process)_[a-z_]+", promql):
                family = re.sub(r"_(bucket|count|sum)$", "", name)
                assert name in names or family in names, f"{panel['title']}: {name} is not exported"


def rule_health(prometheus: str) -> dict[str, str]:
    groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}


def metric_text(servers) -> str:
    return "".join(requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
                   for server in servers.values())


def test_promtool_passes_the_rules_their_unit_tests_and_each_scrape(promtool, servers):
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0 and "SUCCESS: 5 rules found" in checked.stdout, checked.stderr
    tested = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], capture_output=True, text=True,
                            cwd=RULE_TESTS.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    for name, server in servers.items():
        text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
        linted = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert linted.returncode == 0, f"{name}: {linted.stdout}{linted.stderr}"


def test_the_unit_tests_can_fail(promtool, tmp_path):
    """A rule whose `for:` changed is caught by the unit tests of the shipped rules."""
    changed = tmp_path / "deploy" / "prometheus" / "dssr-alerts.yaml"
    changed.parent.mkdir(parents=True)
    changed.write_text(RULES.read_text().replace("for: 2m", "for: 4m", 1))
    tests = tmp_path / "tests" / "prometheus" / RULE_TESTS.name
    tests.parent.mkdir(parents=True)
    tests.write_text(RULE_TESTS.read_text())
    tested = subprocess.run([promtool, "test", "rules", tests.name], capture_output=True, text=True,
                            cwd=tests.parent)
    assert tested.returncode != 0 and "DSSRSchedulerUnreachable" in tested.stdout + tested.stderr
