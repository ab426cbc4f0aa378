"""A restart of the server loses no job, and a job that ended meanwhile tells its true exit code.

A first connector submits and is closed, as ``dssr serve`` stops; a new one is built on the
same state dir. The first one runs in this process or in another one that exits, so that its
jobs are orphans found again by pid and start time. Jobs wait for a flag file, so the test
decides when they end.
"""

import os
import sqlite3

import pytest


def _waiting_script(flag, code: int) -> str:
    return f"echo before; while [ ! -e {flag} ]; do sleep 0.05; done; echo after; exit {code}"


@pytest.fixture(params=["in this process", "in another process"])
def submit_then_stop(request, dummy):
    """Submit scripts from a first connector, wait until they run, close that connector."""

    def submit_then_stop(*scripts: str) -> list:
        if request.param == "in another process":
            return dummy.submit_elsewhere(*scripts)
        first = dummy.connect()
        jobs = [dummy.submit(first, script) for script in scripts]
        for job in jobs:
            dummy.wait_running(first, job)
        first.close()
        return jobs

    return submit_then_stop


def test_restart_while_the_job_runs(dummy, tmp_path, submit_then_stop):
    [job] = submit_then_stop(_waiting_script(tmp_path / "go", 7))
    second = dummy.connect()
    assert dummy.listed(second, job, "running")
    assert second.runstatus(job).elapsed_s >= 0
    dummy.wait_for(lambda: second.tail(job, 1) == "before\n", what="the first line")
    pgid = dummy.pid(second, job)
    (tmp_path / "go").touch()
    dummy.wait_ended(second, job)
    status = second.exitstatus(job)
    assert (status.state, status.exit_code, status.output) == ("FAILED", 7, "before\nafter\n")
    dummy.wait_for(lambda: not dummy.group_members(pgid), what="the job's processes to go")


def test_a_job_that_ended_while_no_server_ran(dummy, tmp_path, submit_then_stop):
    completes, fails = submit_then_stop(_waiting_script(tmp_path / "go", 0),
                                        _waiting_script(tmp_path / "go", 5))
    (tmp_path / "go").touch()
    dummy.wait_for(lambda: not dummy.job_processes(), what="the jobs to end")

    second = dummy.connect()
    assert second.running() == [] and second.queued() == []
    done, failed = second.exitstatus(completes), second.exitstatus(fails)
    assert (done.state, done.exit_code, done.output) == ("COMPLETED", 0, "before\nafter\n")
    assert (failed.state, failed.rc, failed.exit_code) == ("FAILED", 1, 5)
    assert done.elapsed_s >= 0


def test_a_job_killed_while_no_server_ran_counts_as_failed(dummy, submit_then_stop):
    [job] = submit_then_stop("sleep 60")
    dummy.kill_jobs()  # the wrapper too: no exit code is recorded
    dummy.wait_for(lambda: not dummy.job_processes(), what="the job to die")

    second = dummy.connect()
    dummy.wait_ended(second, job)
    status = second.exitstatus(job)
    assert (status.state, status.rc) == ("FAILED", 1)


def test_a_job_terminated_before_the_restart_is_still_cancelled_after(dummy):
    first = dummy.connect(JARVICE_DUMMY_KILL_GRACE="0.5")
    job = dummy.submit(first, "trap '' TERM; sleep 60")
    dummy.wait_running(first, job)
    first.terminate(job)
    first.close()  # the KILL after the grace period is now the next server's business

    second = dummy.connect()
    dummy.wait_ended(second, job)
    assert second.exitstatus(job).state == "CANCELLED"


def test_waiting_and_held_jobs_survive_a_restart(dummy, tmp_path):
    first = dummy.connect(JARVICE_DUMMY_MAX_RUNNING="1")
    blocker = dummy.submit(first, _waiting_script(tmp_path / "go", 0))
    queued = dummy.submit(first, "echo queued-ran")
    held = dummy.submit(first, "echo held-ran", held=True)
    first.close()

    second = dummy.connect(JARVICE_DUMMY_MAX_RUNNING="1")
    assert [row.jobid for row in second.queued()] == [queued.jobid, held.jobid]
    (tmp_path / "go").touch()
    dummy.wait_ended(second, queued)
    assert second.exitstatus(queued).output == "queued-ran\n"
    assert dummy.listed(second, held, "queued")
    second.release(held)
    dummy.wait_ended(second, held)
    assert second.exitstatus(held).output == "held-ran\n"
    assert second.exitstatus(blocker).state == "COMPLETED"


def test_a_recycled_pid_is_not_taken_for_the_job(dummy):
    [job] = dummy.submit_elsewhere("sleep 60")
    # Pretend the job's pid now belongs to another process: this test's own.
    with sqlite3.connect(dummy.state_dir / "jobs.sqlite3") as database:
        database.execute("UPDATE jobs SET pid = ? WHERE jobid = ?", (os.getpid(), int(job.jobid)))

    second = dummy.connect()
    assert not dummy.listed(second, job, "running")
    assert second.exitstatus(job).state == "FAILED"


def test_job_ids_are_never_reused(dummy):
    first = dummy.connect()
    job = dummy.submit(first, "true")
    dummy.wait_ended(first, job)
    first.exitstatus(job)
    first.close()
    second = dummy.connect()
    assert int(dummy.submit(second, "true").jobid) > int(job.jobid)
