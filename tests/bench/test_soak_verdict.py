"""The soak's verdict (bench/soak.py) fails when it should: each check is fed a run that breaks it
and one that keeps it. The soak itself runs in .ci/run (``nox -s soak``); these run in a second."""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import soak  # noqa: E402

SENTENCE = json.dumps({"title": "503 Service Unavailable",
                       "description": "Cannot reach the cluster over SSH: connection refused."})


class SacctDouble:
    """Stands in for the private cluster's ``sacct``: the rows a run left in accounting."""

    def __init__(self, rows: list[str]):
        self.rows = rows

    def slurm(self, *argv: str) -> str:
        assert argv[0] == "sacct"
        return "".join(f"{row}\n" for row in self.rows)


def faults_with(*windows) -> soak.Faults:
    faults = soak.Faults(cluster=None, replicas=[])
    faults.windows = list(windows)
    return faults


def answers(*calls) -> soak.Log:
    log = soak.Log()
    for started, endpoint, status, body in calls:
        log.add(started, endpoint, status, 0.01, body)
    return log


def failed(verdict: soak.Verdict) -> list[str]:
    return [what for what, ok, _ in verdict.checks if not ok]


def test_a_request_that_overlaps_a_fault_is_inside_it():
    faults = faults_with(("restart sshd", 100.0, 106.0))
    assert faults.inside(99.0, 2.0)  # began before, still waiting when sshd stopped
    assert faults.inside(106.0 + soak.GRACE)
    assert not faults.inside(98.0, 1.0)
    assert not faults.inside(106.1 + soak.GRACE)


@pytest.mark.parametrize(("status", "body", "at", "fault", "breaks"), [
    (503, SENTENCE, 103.0, "restart sshd", None),
    (503, "", 103.0, "restart sshd", "inside fault windows"),
    (500, SENTENCE, 103.0, "restart slurmctld", "inside fault windows"),
    (502, "<html>", 103.0, "kill -9 replica a", None),
    (502, "<html>", 103.0, "restart sshd", "inside fault windows"),
    (0, "ConnectionError()", 103.0, "kill -9 replica b", None),
    (503, SENTENCE, 300.0, "restart sshd", "no 5xx or lost answer outside"),
    (0, "ConnectionError()", 300.0, "kill -9 replica a", "no 5xx or lost answer outside"),
    (404, "{}", 300.0, "restart sshd", "no 4xx"),
])
def test_answers_outside_and_inside_fault_windows(status, body, at, fault, breaks):
    verdict = soak.Verdict()
    soak.check_answers(answers((1.0, "/queued", 200, ""), (at, "/running", status, body)),
                       faults_with((fault, 100.0, 106.0)), verdict, began=0.0)
    assert [what for what in failed(verdict) if breaks is None or not what.startswith(breaks)] == []
    assert (breaks is None) == (not failed(verdict))


def job(index: int, kind: str, choice: int, jobids: list[str], rc: int, state: str, output: str):
    made = soak.Job(index, "t")
    made.kind, made.choice, made.jobids = kind, choice, jobids
    made.jobid = jobids[0] if jobids else ""
    made.terminated = kind == "terminate"
    made.exit = [rc, "00:00:01", [output, f"<< termination state: {state} -- see STDOUT >>"]]
    return made


def accounting(jobs: list, rows: list[str]) -> list[str]:
    driver = soak.Driver(api=None, interval=1, poll=1, run="t")
    driver.jobs = jobs
    verdict = soak.Verdict()
    soak.check_accounting(driver, SacctDouble(rows), verdict)
    return failed(verdict)


def test_a_run_that_slurm_confirms_passes():
    jobs = [job(0, "normal", 3, ["10"], 1, "FAILED", "soak choice=3\n"),
            job(1, "terminate", 5, ["11", "11"], -15, "CANCELLED", ""),
            job(2, "hold", 0, ["12"], 0, "COMPLETED", "soak choice=0\n")]
    assert accounting(jobs, ["10|jarvice_soakt-0|FAILED|3:0|kirby",
                             "11|jarvice_soakt-1|CANCELLED by 0|0:15|mario",
                             "12|jarvice_soakt-2|COMPLETED|0:0|kirby",
                             "13|jarvice_other-1|COMPLETED|0:0|kirby"]) == []


def test_a_submit_that_made_two_slurm_jobs_fails():
    jobs = [job(0, "normal", 0, ["10", "10"], 0, "COMPLETED", "soak choice=0\n")]
    assert accounting(jobs, ["10|jarvice_soakt-0|COMPLETED|0:0|kirby",
                             "14|jarvice_soakt-0|COMPLETED|0:0|kirby"]) == [
        "every answered submit is exactly one Slurm job (1 answered, 1 of them answered more than once)"]


def test_answers_naming_two_jobs_fail():
    jobs = [job(0, "normal", 0, ["10", "14"], 0, "COMPLETED", "soak choice=0\n")]
    assert accounting(jobs, ["10|jarvice_soakt-0|COMPLETED|0:0|kirby"]) == [
        "every answer to a re-sent submit names the same job"]


@pytest.mark.parametrize(("rc", "code", "output"), [
    (0, "7:0", "soak choice=7\n"),   # DSSR says completed
    (1, "0:0", "soak choice=7\n"),   # Slurm's exit code is not the script's
    (1, "7:0", ""),                  # the output was lost
])
def test_an_exit_status_that_is_not_the_scripts_choice_fails(rc, code, output):
    jobs = [job(0, "normal", 7, ["10"], rc, "FAILED", output)]
    assert accounting(jobs, [f"10|jarvice_soakt-0|FAILED|{code}|kirby"]) == [
        "every exit status is the script's choice (DSSR's rc, Slurm's ExitCode, the output)"]


def test_a_terminated_job_that_completed_fails():
    jobs = [job(0, "terminate", 0, ["10"], 0, "COMPLETED", "soak choice=0\n")]
    assert accounting(jobs, ["10|jarvice_soakt-0|COMPLETED|0:0|kirby"]) == [
        "terminated jobs answer -15 (1 terminated)"]


def test_uncollected_and_unanswered_jobs_fail():
    uncollected = job(0, "normal", 0, ["10"], 0, "COMPLETED", "")
    uncollected.exit = None
    unanswered = job(1, "normal", 0, [], 0, "COMPLETED", "")
    assert accounting([uncollected, unanswered], ["10|jarvice_soakt-0|COMPLETED|0:0|kirby"]) == [
        "every submit was answered within 3 minutes", "every job's /exitstatus was collected (0 of 1)"]


class LifeDouble:
    """A replica's samples without a process: what Replica.sample would have read from /proc."""

    def __init__(self, name: str, rss_mb, fds):
        self.name = name
        self.lives = [{"pid": 1, "started": 0.0,
                       "samples": [(t, int(rss_mb(t) * 1024), fds(t)) for t in range(5, 600, 5)]}]


@pytest.mark.parametrize(("rss_mb", "fds", "flat"), [
    (lambda t: 60 + (t % 20) / 10, lambda t: 11 + t % 3, True),
    (lambda t: 60 + t / 10, lambda t: 11, False),   # 1 MB a minute, never freed
    (lambda t: 60, lambda t: 11 + t // 30, False),  # a descriptor leaked every 30 s
])
def test_rss_and_fds_must_stay_flat_after_warm_up(rss_mb, fds, flat):
    verdict = soak.Verdict()
    soak.check_flat([LifeDouble("a", rss_mb, fds)], verdict, warmup=60)
    assert len(verdict.checks) == 1 and verdict.passed == flat


def test_a_replica_too_short_lived_is_reported_not_judged():
    verdict = soak.Verdict()
    lines = soak.check_flat([LifeDouble("a", lambda t: 60 + t, lambda t: 11)], verdict, warmup=600)
    assert verdict.checks == [] and "too short to judge" in lines[0]


def test_two_replicas_on_one_host_both_start(tmp_path):
    """The soak's two replicas share one host, so each needs ports of its own (the API's and the
    metrics'), where the chart's pods each have an address of their own."""
    import soak_rig

    def env(name: str) -> dict[str, str]:  # the dummy keeps one state folder per process
        return {**os.environ, "JARVICE_BAREMETAL_CONNECTOR": "dummy",
                "JARVICE_DUMMY_STATE_DIR": str(tmp_path / name)}

    replicas = [soak_rig.Replica(name, env(name), tmp_path) for name in ("a", "b")]
    try:
        for replica in replicas:
            replica.start()
        assert all(replica.process.poll() is None for replica in replicas)
    finally:
        for replica in replicas:
            if replica.process is not None:
                replica.stop()
