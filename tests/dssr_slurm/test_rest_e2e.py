"""End to end: ``dssr serve`` with the slurmrestd connector on the real cluster, driven over HTTP
the way upstream drives it, including slurmrestd going away and coming back."""

import uuid

import pytest
from slurm_helpers import SHARED, bearer_for, job_of, newest_api, template, wait_ended

from dssr_core.testing import wait_until

pytest_plugins = ["rest_fixtures"]

pytestmark = pytest.mark.slow
KIRBY = bearer_for("kirby@example.org")


def unique(label: str) -> str:
    return f"rest-{label}-{uuid.uuid4().hex[:8]}"


def init_report(server) -> str:
    return wait_until(lambda: "Init done." in server.log() and server.log(), 15, what="the init report")


def test_dssr_serve_runs_a_job_through_slurmrestd(dssr_server, rest_env):
    server = dssr_server({**rest_env, "JARVICE_SLURMRESTD_OUTPUT_ACCESS": "ssh"})
    log = init_report(server)
    assert "connector: slurmrestd (dssr_slurm" in log and f"API version: {newest_api(rest_env)}" in log
    assert "token mode: mint (HS256 with the key in" in log and "first connection: OK" in log
    assert rest_env["JARVICE_SLURM_SSH_PKEY"][:40] not in log and "X-SLURM-USER-TOKEN" not in log
    api = server.api()
    name = unique("serve")
    job = job_of(name, api.submit(name, template('echo "hello from $(id -un)"', devices=SHARED),
                                  bearer=KIRBY))
    wait_ended(api, job)
    rc, _, (output, banner) = api.post("/exitstatus", job).json
    assert rc == 0 and "hello from kirby" in output and "COMPLETED" in banner


def test_the_legacy_connector_spelling_with_the_http_interface(dssr_server, rest_env):
    env = {**rest_env, "JARVICE_BAREMETAL_CONNECTOR": "connectors.slurm.connector",
           "JARVICE_SLURM_INTERFACE": "http"}
    server = dssr_server(env)
    assert "connector: slurmrestd (dssr_slurm" in init_report(server)
    api = server.api()
    assert api.get("/gc").json == {"status": "OK"}
    assert api.get("/queued").status == 200


def test_slurmrestd_stopped_is_503_and_dssr_recovers_without_a_restart(dssr_server, rest_env, daemons):
    server = dssr_server({**rest_env, "JARVICE_SLURMRESTD_RETRIES": "1"})
    api = server.api()
    assert api.get("/gc").json == {"status": "OK"}
    pid = server.process.pid
    daemons.stop("slurmrestd")
    try:
        for path in ("/queued", "/running"):
            answer = api.get(path)
            assert answer.status == 503, answer.text
            where = f"http://127.0.0.1:{rest_env['JARVICE_SLURMRESTD_PORT']}"
            assert f"Cannot reach slurmrestd at {where}" in answer.json["description"]
        assert api.get("/gc").status == 500 and api.get("/gc").json == {"status": "BAD"}
        answer = api.submit(unique("down"), template("true"), bearer=KIRBY)
        assert answer.status == 503
    finally:
        daemons.start("slurmrestd")
    assert wait_until(lambda: api.get("/gc").status == 200, 30, what="DSSR to see slurmrestd again")
    assert api.get("/queued").status == 200 and api.get("/running").status == 200
    assert server.process.pid == pid and server.process.poll() is None
