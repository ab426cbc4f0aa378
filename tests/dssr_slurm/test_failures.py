"""When a daemon of the cluster is down the status endpoints answer the truth or 503 with a
sentence, never an empty list or a made-up state; once the daemon is back the next call works,
DSSR not restarted. These tests stop the shared cluster's daemons: run them on their own."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from slurm_helpers import (
    SHARED,
    bearer_for,
    job_of,
    template,
    wait_ended,
    wait_running,
)

pytest_plugins = ["rest_fixtures"]
pytestmark = pytest.mark.slow


def status_calls(api, job):
    """The calls upstream makes while it polls, sent at the same time."""
    calls = {
        "/running": lambda: api.get("/running"),
        "/queued": lambda: api.get("/queued"),
        "/runstatus": lambda: api.post("/runstatus", job),
        "/exitstatus": lambda: api.post("/exitstatus", job),
        "/gc": lambda: api.get("/gc"),
    }
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {path: pool.submit(call) for path, call in calls.items()}
        return {path: future.result() for path, future in futures.items()}


@pytest.mark.parametrize("daemon, words", [
    ("sshd", "Cannot reach the cluster over SSH"),
    ("slurmctld", "Unable to contact slurm controller"),
])
def test_status_is_503_while_a_daemon_is_down_and_works_again_after(dssr_server, slurm_env, daemons,
                                                                    daemon, words):
    api = dssr_server(slurm_env).api()
    name = f"cli-down-{daemon}-{uuid.uuid4().hex[:6]}"
    job = job_of(name, api.submit(name, template("sleep 300", devices=SHARED),
                                  bearer=bearer_for("kirby@example.org")))
    wait_running(api, job)
    daemons.stop(daemon)
    time.sleep(float(slurm_env["JARVICE_SLURM_STATUS_INTERVAL"]) + 0.1)  # let the snapshot age
    answers = status_calls(api, job)
    for path in ("/running", "/queued", "/runstatus", "/exitstatus"):
        assert answers[path].status == 503, (path, answers[path].text)
        assert words in answers[path].json["description"], (path, answers[path].text)
    assert answers["/gc"].status == 500 and answers["/gc"].json == {"status": "BAD"}

    daemons.start(daemon)
    assert api.get("/gc").json == {"status": "OK"}
    assert [name, job["jobid"]] in api.get("/running").json
    assert api.post("/runstatus", job).json[0] == ["localhost"]
    assert api.post("/terminate", job).json is True
    wait_ended(api, job)
    assert api.post("/exitstatus", job).json[0] == -15
