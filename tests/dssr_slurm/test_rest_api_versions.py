"""Every slurmrestd API version each test cluster serves, pinned with JARVICE_SLURMRESTD_API_VERSION,
against the real daemon: submit, status, exit status from the controller and from accounting,
release and terminate. (``auto`` picking the newest is in test_rest_e2e.py.)"""

import uuid

import pytest
import requests
from rest_fixtures import api_of, cluster_token
from slurm_helpers import (
    KIRBY,
    MARIO,
    SERVED_API_VERSIONS,
    SHARED,
    exitstatus,
    job_of,
    squeue_field,
    template,
    wait_ended,
    wait_gone_from_squeue,
    wait_output,
    wait_running,
)

from dssr_core.testing import wait_until

pytest_plugins = ["rest_fixtures"]

pytestmark = pytest.mark.slow


def unique(api_version: str, label: str) -> str:
    return f"rest-{api_version.replace('.', '')}-{label}-{uuid.uuid4().hex[:6]}"


def test_openapi_lists_the_versions_the_cluster_serves(rest_env, slurm_version):
    url = f"http://127.0.0.1:{rest_env['JARVICE_SLURMRESTD_PORT']}/openapi.json"
    headers = {"X-SLURM-USER-NAME": "jarvice", "X-SLURM-USER-TOKEN": cluster_token(rest_env, "jarvice")}
    paths = requests.get(url, headers=headers, timeout=60).json()["paths"]
    served = {part for path in paths for part in path.split("/") if part.startswith("v0.0.")}
    assert served == set(SERVED_API_VERSIONS[slurm_version])


def test_each_served_version_submits_reads_releases_and_terminates(make_rest_connector, rest_env, served_api):
    overrides = {"JARVICE_SLURMRESTD_API_VERSION": served_api, "JARVICE_SLURMRESTD_OUTPUT_ACCESS": "ssh"}
    connector = make_rest_connector(**overrides)
    assert connector.versions.current().name == served_api
    api = api_of(connector, {**rest_env, **overrides})

    def submit(label, body, bearer, **options):
        name = unique(served_api, label)
        return job_of(name, api.submit(name, template(body, devices=SHARED), bearer=bearer, **options))

    held = submit("held", "echo released", MARIO, hold=True)
    long = submit("long", "echo started; sleep 120", KIRBY)
    ok = submit("ok", "echo from-ok", KIRBY)
    bad = submit("bad", "echo failing; exit 4", MARIO)
    assert squeue_field(held["jobid"], "%u") == "mario" and squeue_field(long["jobid"], "%u") == "kirby"
    assert squeue_field(held["jobid"], "%r") == "JobHeldUser"
    assert [held["name"], held["jobid"]] in api.get("/queued").json

    wait_running(api, long)
    wait_output(api, long, "started")
    nodes, _, ident, _ = api.post("/runstatus", long).json
    assert nodes == ["localhost"] and ident == f"{long['name']}/1/{long['jobid']}"

    wait_until(lambda: squeue_field(bad["jobid"], "%T") == "FAILED", 60, what="the failing job to end")
    rc, _, (output, banner) = exitstatus(api, bad)
    assert squeue_field(bad["jobid"], "%T") == "FAILED", "slurmctld still knew the job: its answer was read"
    assert rc == 1 and "failing" in output and "FAILED" in banner

    assert api.post("/release", held).json is True
    assert api.post("/terminate", long).json is True
    wait_ended(api, held)
    wait_ended(api, long)
    rc, _, (output, banner) = exitstatus(api, long)
    assert rc == -15 and "started" in output and "CANCELLED" in banner

    wait_gone_from_squeue(ok["jobid"])
    wait_gone_from_squeue(held["jobid"])
    for job, words in ((ok, "from-ok"), (held, "released")):
        rc, _, (output, banner) = exitstatus(api, job)
        assert rc == 0 and words in output and "COMPLETED" in banner, "from accounting"
