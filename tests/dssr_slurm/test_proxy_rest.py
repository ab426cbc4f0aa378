"""The proxy of interactive jobs with the slurmrestd connector on the real cluster: the job is
submitted and found through slurmrestd, its service reached over the SSH settings (direct-tcpip
through the cluster's sshd), as slurm-cli does. Without SSH settings, ``info`` says what to set."""

import random
from pathlib import Path

import pytest
import requests
from slurm_helpers import KIRBY_MAIL, SHARED, bearer_for, job_of, template, wait_started, web_service_for_jobs
from websockets.sync.client import connect as websocket_connect

from dssr_core.testing.plugin import DssrServer, find_free_port, wait_serving

pytest_plugins = ["rest_fixtures"]

pytestmark = pytest.mark.slow
#: Interactive jobs hold their node alone, so they start once the shared cluster's other jobs end.
INTERACTIVE_START = 480
SSH_SETTINGS = ("JARVICE_SLURM_CLUSTER_ADDR", "JARVICE_SLURM_CLUSTER_PORT", "JARVICE_SLURM_SSH_USER",
                "JARVICE_SLURM_SSH_PKEY", "JARVICE_SLURM_SSH_KNOWN_HOSTS")


def rest_proxy(env: dict, log: Path) -> DssrServer:
    server = DssrServer({**env, "DSSR_PROXY_CHECK_INTERVAL": "0.5"}, log)
    server.env["JARVICE_JOBS_DOMAIN"] = f"http://127.0.0.1:{server.port}/job$"
    return server.start()


def info(api, job) -> dict:
    answer = api.post(f"/request/{job['name']}/{job['number']}/{job['jobid']}/info", {"qs": {}})
    assert answer.status == 200, answer.text
    return answer.json


def test_slurmrestd_proxies_an_interactive_job_over_its_ssh_settings(rest_env, tmp_path):
    service_port = find_free_port()
    server = rest_proxy({**rest_env, "DSSR_SHELL_SERVICE_PORT": str(service_port)}, tmp_path / "rest.log")
    no_ssh = {name: value for name, value in rest_env.items() if name not in SSH_SETTINGS}
    no_ssh["JARVICE_SLURMRESTD_USER"] = rest_env["JARVICE_SLURM_SSH_USER"]  # minted tokens' service account
    without_ssh = rest_proxy(no_ssh, tmp_path / "rest-no-ssh.log")
    number = random.randint(100_000, 999_999)
    name = f"rest-proxy-{number}"
    api = server.api()
    body = template(f"exec python3 {web_service_for_jobs(rest_env)} $JARVICE_SERVICE_PORT", devices=SHARED,
                    extra="JOBOBJ_INTERACTIVE=true")
    job = job_of(name, api.submit(name, body, number=number, bearer=bearer_for(KIRBY_MAIL)))
    job["number"] = number
    try:
        wait_started(api, job, timeout=INTERACTIVE_START)
        url = f"http://127.0.0.1:{server.port}/job{number}"
        assert info(api, job)["url"] == url

        seen = wait_serving(url + "/headers?via=rest", 60, 10).json()
        assert seen["path"] == "/headers?via=rest" and seen["port"] == service_port
        with websocket_connect(f"ws://127.0.0.1:{server.port}/job{number}/echo", open_timeout=20) as ws:
            ws.send(b"through slurmrestd's proxy")
            assert ws.recv(timeout=20) == b"through slurmrestd's proxy"

        lacking = info(without_ssh.api(), job)
        assert lacking["url"] == "" and "JARVICE_SLURM_CLUSTER_ADDR" in lacking["help"]
        answer = requests.get(f"http://127.0.0.1:{without_ssh.port}/job{number}/headers", timeout=10)
        assert answer.status_code == 503 and "JARVICE_SLURM_CLUSTER_ADDR" in answer.text
    finally:
        api.post("/terminate", {k: job[k] for k in ("name", "number", "jobid")})
        server.stop()
        without_ssh.stop()
    log = server.log()
    assert rest_env["JARVICE_SLURM_SSH_PKEY"][:40] not in log and "X-SLURM-USER-TOKEN" not in log
