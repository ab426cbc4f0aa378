"""The dummy connector runs, lists, terminates and collects real local processes."""

import os
import socket
import time
from pathlib import Path

import pytest

from dssr_core.errors import (
    ClusterUnavailable,
    ConnectorError,
    JobConflict,
    JobNotFound,
    NotAvailable,
    SettingsError,
)
from dssr_core.models import JobFacts, JobRef, RunStatus, Submission, SubmitResult
from dssr_core.plugins import make_registry
from dssr_core.settings import Settings
from dssr_dummy import DummyConnector


def test_job_that_succeeds_reports_its_output_and_the_job_environment(dummy, connector):
    job = dummy.submit(connector, 'echo "hello from $JOB_JOBID on $PROCESS_NODENAME"\n'
                                  'echo "rank=$PROCESS_PROCID nodes=$JOB_NNODES tasks=$JOB_NTASKS"\n'
                                  'echo "dir=$JOB_SUBMIT_DIR cwd=$PWD"\n')
    dummy.wait_ended(connector, job)
    status = connector.exitstatus(job)
    assert (status.state, status.rc, status.exit_code) == ("COMPLETED", 0, 0)
    lines = status.output.splitlines()
    assert lines[0] == f"hello from {job.jobid} on {socket.gethostname()}"
    assert lines[1] == "rank=0 nodes=1 tasks=1"
    job_dir = lines[2].split()[0].removeprefix("dir=")
    assert lines[2] == f"dir={job_dir} cwd={job_dir}"
    assert job_dir.startswith(str(dummy.state_dir))


def test_exit_code_3_is_failed_with_rc_1(dummy, connector):
    job = dummy.submit(connector, "echo about to fail >&2; exit 3")
    dummy.wait_ended(connector, job)
    status = connector.exitstatus(job)
    assert (status.state, status.rc, status.exit_code) == ("FAILED", 1, 3)
    assert status.output == "about to fail\n"
    assert status.as_contract()[2][1] == "<< termination state: FAILED -- see STDOUT for job errors >>"


@pytest.mark.parametrize(("script", "state"), [
    ("echo working; echo JARVICE_CMD_SUCCESS", "COMPLETED"),
    ("echo working; echo '  JARVICE_CMD_SUCCESS  '; echo trailing line", "COMPLETED"),
    ("echo working", "FAILED"),
    ("echo not JARVICE_CMD_SUCCESS alone on its line", "FAILED"),
    ("echo JARVICE_CMD_SUCCESS; exit 2", "FAILED"),
])
def test_success_marker_decides_when_set(dummy, connector, script, state):
    job = dummy.submit(connector, script, success_marker="JARVICE_CMD_SUCCESS")
    dummy.wait_ended(connector, job)
    assert connector.exitstatus(job).state == state


def test_terminate_running_job_kills_its_whole_process_group(dummy, connector):
    job = dummy.submit(connector, "echo started; sleep 60 & sleep 60; wait")
    dummy.wait_running(connector, job)
    pgid = dummy.pid(connector, job)
    # The wrapper, the script's bash and its two sleeps.
    dummy.wait_for(lambda: len(dummy.group_members(pgid)) >= 4, what="the job's processes")
    assert connector.runstatus(job).nodes == (socket.gethostname(),)
    connector.terminate(job)
    dummy.wait_ended(connector, job)
    status = connector.exitstatus(job)
    assert (status.state, status.rc) == ("CANCELLED", -15)
    assert "started" in status.output
    dummy.wait_for(lambda: not dummy.group_members(pgid), what="the process group to be gone")


def test_terminate_sends_kill_when_the_job_ignores_term(dummy):
    connector = dummy.connect(JARVICE_DUMMY_KILL_GRACE="0.5")
    job = dummy.submit(connector, "trap '' TERM; echo ignoring; sleep 60")
    dummy.wait_running(connector, job)
    dummy.wait_for(lambda: connector.tail(job, 1) == "ignoring\n", what="the job's first line")
    pgid = dummy.pid(connector, job)
    connector.terminate(job)
    dummy.wait_ended(connector, job)
    assert connector.exitstatus(job).rc == -15
    dummy.wait_for(lambda: not dummy.group_members(pgid), what="the process group to be gone")


def test_terminate_of_a_waiting_job_cancels_it_and_it_never_runs(dummy, tmp_path):
    connector = dummy.connect(JARVICE_DUMMY_MAX_RUNNING="1")
    blocker = dummy.submit(connector, "sleep 60")
    queued = dummy.submit(connector, f"touch {tmp_path}/ran")
    held = dummy.submit(connector, f"touch {tmp_path}/ran", held=True)
    for job in (queued, held):
        connector.terminate(job)
        assert not dummy.listed(connector, job, "queued")
        status = connector.exitstatus(job)
        assert (status.state, status.rc, status.elapsed_s) == ("CANCELLED", -15, 0)
    connector.terminate(blocker)
    dummy.wait_ended(connector, blocker)
    assert not (tmp_path / "ran").exists()


def test_terminate_after_the_end_keeps_the_exit_status(dummy, connector):
    job = dummy.submit(connector, "exit 0")
    dummy.wait_ended(connector, job)
    connector.terminate(job)
    assert connector.exitstatus(job).state == "COMPLETED"


def test_held_job_waits_until_released(dummy, connector, tmp_path):
    job = dummy.submit(connector, f"echo released-and-ran; touch {tmp_path}/ran", held=True)
    assert dummy.listed(connector, job, "queued")
    time.sleep(0.6)  # three ticks
    assert dummy.listed(connector, job, "queued")
    assert not dummy.listed(connector, job, "running")
    assert not (tmp_path / "ran").exists()
    assert "JobHeldUser" in connector.events(job)
    connector.release(job)
    dummy.wait_ended(connector, job)
    assert connector.exitstatus(job).output == "released-and-ran\n"


def test_release_of_a_job_that_is_not_held_is_fine(dummy, connector):
    job = dummy.submit(connector, "sleep 60")
    dummy.wait_running(connector, job)
    connector.release(job)
    assert dummy.listed(connector, job, "running")


def test_at_most_max_running_jobs_run_the_rest_wait_in_order(dummy):
    connector = dummy.connect(JARVICE_DUMMY_MAX_RUNNING="1")
    first, second, third = (dummy.submit(connector, "sleep 60") for _ in range(3))
    assert [row.jobid for row in connector.running()] == [first.jobid]
    assert [row.jobid for row in connector.queued()] == [second.jobid, third.jobid]
    assert connector.runstatus(second) == RunStatus.waiting()  # as the original: no node, 0 s
    connector.terminate(first)
    dummy.wait_running(connector, second)
    assert [row.jobid for row in connector.running()] == [second.jobid]
    assert [row.jobid for row in connector.queued()] == [third.jobid]


def test_retried_submit_returns_the_same_job(dummy, connector, tmp_path):
    script = f"echo run >> {tmp_path}/runs; sleep 60"
    job = dummy.submit(connector, script)
    again = connector.submit(Submission(name=job.name, number=1, script=script, facts=JobFacts()))
    assert again == SubmitResult(job.jobid, script, existing=True)
    dummy.wait_running(connector, job)
    dummy.wait_for(lambda: (tmp_path / "runs").exists(), what="the job to write")
    assert len(connector.running()) == 1
    held = dummy.submit(connector, "true", held=True)
    assert dummy.submit(connector, "true", name=held.name, held=True).jobid == held.jobid
    assert [row.jobid for row in connector.queued()] == [held.jobid]
    connector.terminate(job)
    dummy.wait_ended(connector, job)
    assert (tmp_path / "runs").read_text() == "run\n"


def test_a_submit_of_a_live_name_with_another_script_is_refused_naming_the_job(dummy, connector):
    job = dummy.submit(connector, "sleep 60", held=True)
    with pytest.raises(JobConflict, match=rf"named {job.name} is live already \(job id {job.jobid}\)"):
        connector.submit(Submission(name=job.name, number=1, script="sleep 61", facts=JobFacts(), held=True))
    assert [row.jobid for row in connector.queued()] == [job.jobid]
    connector.terminate(job)


def test_exitstatus_collects_the_job_which_is_then_unknown(dummy, connector):
    job = dummy.submit(connector, 'echo "$JOB_SUBMIT_DIR"')
    dummy.wait_ended(connector, job)
    assert "ENDED" in connector.events(job)
    status = connector.exitstatus(job)
    job_dir = status.output.strip()
    assert status.state == "COMPLETED" and job_dir
    assert not os.path.exists(job_dir)
    again = connector.exitstatus(job)
    assert (again.state, again.rc, again.output) == ("UNKNOWN", -9, "")
    for call in (connector.runstatus, connector.terminate, connector.release, connector.events):
        with pytest.raises(JobNotFound):
            call(job)
    with pytest.raises(NotAvailable):
        connector.tail(job, 10)


def test_exitstatus_of_a_job_that_has_not_ended_collects_nothing(dummy):
    connector = dummy.connect(JARVICE_DUMMY_MAX_RUNNING="1")
    running = dummy.submit(connector, "echo kept; sleep 60")
    queued = dummy.submit(connector, "true")
    dummy.wait_running(connector, running)
    assert (connector.exitstatus(running).state, connector.exitstatus(running).rc) == ("RUNNING", -9)
    assert connector.exitstatus(queued).state == "PENDING"
    assert dummy.listed(connector, running, "running") and dummy.listed(connector, queued, "queued")
    dummy.wait_for(lambda: connector.tail(running, 5) == "kept\n", what="the output")


def test_a_job_is_found_by_its_id_and_name_together(dummy, connector):
    job = dummy.submit(connector, "sleep 60")
    dummy.wait_running(connector, job)
    assert connector.runstatus(job).elapsed_s >= 0
    for wrong in (JobRef("other-name", 1, job.jobid), JobRef(job.name, 1, "999999"),
                  JobRef(job.name, 1, "abc")):
        with pytest.raises(JobNotFound):
            connector.runstatus(wrong)
        with pytest.raises(JobNotFound):
            connector.terminate(wrong)
        assert connector.exitstatus(wrong).state == "UNKNOWN"
    assert dummy.listed(connector, job, "running")


def test_tail_events_and_info(dummy, connector):
    job = dummy.submit(connector, "for i in $(seq 1 500); do echo line-$i; done; sleep 60")
    dummy.wait_for(lambda: connector.tail(job, 1) == "line-500\n", what="500 lines")
    assert connector.tail(job, 3) == "line-498\nline-499\nline-500\n"
    assert connector.tail(job, 10_000).count("\n") == 500
    events = connector.events(job)
    assert f"JobId={job.jobid} JobName={job.name}" in events
    assert "JobState=RUNNING" in events and f"NodeList={socket.gethostname()}" in events
    assert connector.info(job).url == ""
    held = dummy.submit(connector, "true", held=True)
    with pytest.raises(NotAvailable):
        connector.tail(held, 10)


def test_what_a_job_leaves_behind_dies_when_it_ends(dummy, connector, tmp_path):
    job = dummy.submit(connector, f"sleep 60 & echo $! > {tmp_path}/straggler; exit 0")
    dummy.wait_ended(connector, job)
    straggler = int((tmp_path / "straggler").read_text())
    dummy.wait_for(lambda: not _alive(straggler), what="the background process to die")
    assert connector.exitstatus(job).state == "COMPLETED"


def _alive(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return not data.split(b") ")[1].startswith(b"Z")


def test_jobs_do_not_inherit_the_servers_secrets(dummy, monkeypatch):
    monkeypatch.setenv("JARVICE_SCHED_SERVER_KEY", "user:very-secret")
    monkeypatch.setenv("DSSR_DUMMY_TEST_PLAIN", "visible")
    connector = dummy.connect()
    job = dummy.submit(connector, 'echo "key=$JARVICE_SCHED_SERVER_KEY plain=$DSSR_DUMMY_TEST_PLAIN"')
    dummy.wait_ended(connector, job)
    assert connector.exitstatus(job).output == "key= plain=visible\n"


def test_check_gc_and_report(dummy, connector):
    summary = connector.check()
    assert "dummy" in summary and str(dummy.state_dir) in summary
    connector.gc()
    report = dict(connector.report())
    assert report["dummy state dir"] == str(dummy.state_dir)
    assert report["dummy max running jobs"] == "4"
    assert report["dummy timer mode"] == "off"
    connector.close()
    with pytest.raises(ClusterUnavailable):
        connector.gc()


def test_one_connector_per_state_dir(dummy, connector):
    with pytest.raises(ConnectorError, match="in use by another DSSR process"):
        dummy.connect()
    connector.close()
    dummy.connect().check()


def test_state_dir_defaults_to_xdg_data_home(tmp_path):
    connector = DummyConnector.from_settings(Settings.from_env({"XDG_DATA_HOME": str(tmp_path)}))
    try:
        assert dict(connector.report())["dummy state dir"] == str(tmp_path / "dssr" / "dummy")
        assert (tmp_path / "dssr" / "dummy" / "jobs.sqlite3").exists()
    finally:
        connector.close()


@pytest.mark.parametrize(("name", "value"), [
    ("JARVICE_DUMMY_MAX_RUNNING", "many"),
    ("JARVICE_DUMMY_MAX_RUNNING", "-1"),
    ("JARVICE_DUMMY_KILL_GRACE", "soon"),
    ("JARVICE_DUMMY_STATE_DIR", "relative/path"),
    ("JARVICE_DUMMY_JOB_RUNNING_TIME", "ten"),
])
def test_a_bad_setting_is_named(tmp_path, name, value):
    env = {"JARVICE_DUMMY_STATE_DIR": str(tmp_path), name: value}
    with pytest.raises(SettingsError, match=name):
        DummyConnector.from_settings(Settings.from_env(env))


def test_the_plugin_registers_the_dummy_connector():
    backend = make_registry().select("connector", "dummy")
    assert backend.spec.backend is DummyConnector
    assert backend.distribution == "dssr_dummy"
