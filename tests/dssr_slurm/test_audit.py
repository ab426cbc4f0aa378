"""The audit trail on the real cluster: one line on ``dssr.audit`` per submit, release and
terminate, with the cluster user that acted and the portal user, from both Slurm connectors;
never a token."""

import logging
import uuid

import pytest
from slurm_helpers import KIRBY_MAIL, SHARED, bearer_for, job_of, squeue_field, template

from dssr_core.app import create_app
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, wait_until

pytest_plugins = ["rest_fixtures"]
pytestmark = pytest.mark.slow


@pytest.fixture(params=["slurm-cli", "slurmrestd"])
def api(request, make_connector, make_rest_connector):
    connector = make_connector() if request.param == "slurm-cli" else make_rest_connector()
    settings = Settings.from_env({})
    return ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings), executor_name="shell"))


def test_submit_release_and_terminate_each_leave_one_audit_line(api, caplog):
    name = f"rest-audit-{uuid.uuid4().hex[:6]}"
    bearer = bearer_for(KIRBY_MAIL)
    with caplog.at_level(logging.INFO, logger="dssr.audit"):
        job = job_of(name, api.submit(name, template("sleep 60", devices=SHARED), bearer=bearer, hold=True))
        assert api.post("/release", job).json is True
        wait_until(lambda: squeue_field(job["jobid"], "%T") in ("RUNNING", "PENDING"), 30, what="released")
        assert api.post("/terminate", job).json is True
    lines = [record.getMessage() for record in caplog.records if record.name == "dssr.audit"]
    jobid = job["jobid"]
    assert lines == [
        f"submit job {jobid} ({name}) as cluster user kirby for portal user {KIRBY_MAIL}",
        f"release job {jobid} ({name}) as cluster user kirby for portal user not named by upstream",
        f"terminate job {jobid} ({name}) as cluster user kirby for portal user not named by upstream",
    ]
    assert all(record.levelno == logging.INFO for record in caplog.records if record.name == "dssr.audit")
    assert bearer not in caplog.text
