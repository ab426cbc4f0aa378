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
    wait_gone_from_squeue,
    wait_running,
)

from dssr_core.testing import wait_until

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


# The fault matrix (docs/reliability.md): each daemon stopped while upstream polls, then started
# again. A running job and an ended one (gone from squeue: only accounting knows it) are asked
# about the whole time. Every answer is the true one or a 503 with a sentence: never an empty
# list while the job runs, never a made-up exit status, and no job is lost.

#: daemon -> (the connectors it concerns, whether the controller's listings still work)
OUTAGES = {
    "sshd": (("slurm-cli",), False),
    "slurmctld": (("slurm-cli", "slurmrestd"), False),
    "slurmdbd": (("slurm-cli", "slurmrestd"), True),
    "mariadb": (("slurm-cli", "slurmrestd"), True),
    "slurmrestd": (("slurmrestd",), False),
}
MATRIX = [(connector, daemon) for daemon, (connectors, _) in OUTAGES.items() for connector in connectors]
ENDED_RC = 3  # the ended job exits 3: FAILED, rc 1


def _env(connector: str, slurm_env: dict, request) -> dict:
    if connector == "slurm-cli":
        return slurm_env
    return request.getfixturevalue("rest_env")


def _true_or_503(answer, path: str, true_answer) -> None:
    """The answer is ``true_answer(json)`` (a predicate) or 503 with a sentence, nothing else."""
    if answer.status == 503:
        assert answer.json["description"].endswith("."), (path, answer.text)
        return
    assert answer.status == 200, (path, answer.status, answer.text)
    assert true_answer(answer.json), (path, answer.text)


def _assert_outage_answers(api, running, ended, listings_work: bool) -> None:
    answers = status_calls(api, running)
    if listings_work:  # the controller answers: listings are the truth, not an error
        assert [running["name"], running["jobid"]] in answers["/running"].json, answers["/running"].text
        assert answers["/queued"].status == 200, answers["/queued"].text
        assert answers["/runstatus"].json[0] == ["localhost"], answers["/runstatus"].text
    else:
        for path in ("/running", "/queued", "/runstatus"):
            assert answers[path].status == 503, (path, answers[path].text)
    _true_or_503(answers["/exitstatus"], "/exitstatus of the running job",
                 lambda json: json[0] == -9 and "RUNNING" in json[2][1])
    _true_or_503(api.post("/exitstatus", ended), "/exitstatus of the ended job",
                 lambda json: json[0] == 1 and "FAILED" in json[2][1])
    assert api.get("/gc").status in (200, 500)


@pytest.mark.parametrize("connector, daemon", MATRIX, ids=[f"{c}-{d}" for c, d in MATRIX])
def test_a_daemon_stopped_and_started_during_polling_loses_nothing(dssr_server, slurm_env, daemons,
                                                                   request, connector, daemon):
    env = _env(connector, slurm_env, request)
    api = dssr_server(env).api()
    kirby = bearer_for("kirby@example.org")
    prefix = "cli" if connector == "slurm-cli" else "rest"
    ended_name = f"{prefix}-ended-{daemon}-{uuid.uuid4().hex[:6]}"
    ended = job_of(ended_name, api.submit(ended_name, template(f"echo ending; exit {ENDED_RC}",
                                                                devices=SHARED), bearer=kirby))
    name = f"{prefix}-poll-{daemon}-{uuid.uuid4().hex[:6]}"
    running = job_of(name, api.submit(name, template("sleep 300", devices=SHARED), bearer=kirby))
    wait_running(api, running)
    wait_ended(api, ended)
    wait_gone_from_squeue(ended["jobid"])

    daemons.stop(daemon)
    try:
        time.sleep(float(env["JARVICE_SLURM_STATUS_INTERVAL"]) + 0.1)  # let the snapshot age
        for _ in range(3):  # upstream polls on
            _assert_outage_answers(api, running, ended, OUTAGES[daemon][1])
            time.sleep(1)
    finally:
        daemons.start(daemon)

    wait_until(lambda: api.get("/gc").status == 200, 60, what=f"DSSR to see the cluster after {daemon}")
    wait_until(lambda: api.get("/running").status == 200, 60, what="/running to answer again")
    assert [name, running["jobid"]] in api.get("/running").json  # not lost
    rc, _, (output, banner) = api.post("/exitstatus", ended).json
    assert (rc, "FAILED" in banner, "ending" in output) == (1, True, True)
    assert api.post("/terminate", running).json is True
    wait_ended(api, running)
    assert api.post("/exitstatus", running).json[0] == -15
