"""Timer mode: jobs do not run their script; they wait, sleep and exit as the settings say."""

import pytest

from dssr_core.errors import SettingsError

TIMER = {"JARVICE_DUMMY_JOB_QUEUED_TIME": "1", "JARVICE_DUMMY_JOB_RUNNING_TIME": "0.5"}


def test_a_timer_job_is_queued_then_runs_then_completes_without_its_script(dummy, tmp_path):
    connector = dummy.connect(**TIMER)
    job = dummy.submit(connector, f"touch {tmp_path}/ran", success_marker="JARVICE_CMD_SUCCESS")
    assert dummy.listed(connector, job, "queued")  # for a whole second
    dummy.wait_running(connector, job)
    dummy.wait_ended(connector, job)
    status = connector.exitstatus(job)
    assert (status.state, status.rc) == ("COMPLETED", 0)
    assert status.output.splitlines()[-1] == "JARVICE_CMD_SUCCESS"
    assert not (tmp_path / "ran").exists()
    report = dict(connector.report())
    assert report["dummy timer mode"].startswith("on: queued 1 s, running 0.5 s, 0 % failing")
    assert report["dummy max running jobs"] == "no limit"


def test_failing_percent_100_fails_every_job(dummy):
    connector = dummy.connect(JARVICE_DUMMY_JOB_RUNNING_TIME="0", JARVICE_DUMMY_JOB_FAILING_PERCENT="100")
    jobs = [dummy.submit(connector, "true", success_marker="JARVICE_CMD_SUCCESS") for _ in range(3)]
    for job in jobs:
        dummy.wait_ended(connector, job)
        status = connector.exitstatus(job)
        assert (status.state, status.rc, status.exit_code) == ("FAILED", 1, 1)


@pytest.mark.parametrize("name", ["JARVICE_DUMMY_JOBS_ARE_INTERACTIVE", "JARVICE_JOBS_ARE_INTERACTIVE"])
def test_interactive_jobs_give_a_url_while_they_run(dummy, name):
    connector = dummy.connect(JARVICE_DUMMY_JOB_RUNNING_TIME="60", **{name: "True"},
                              JARVICE_DUMMY_INTERACTIVE_URL="http://desktop.example:6080/")
    job = dummy.submit(connector, "true")
    dummy.wait_running(connector, job)
    assert connector.info(job).url == "http://desktop.example:6080/"
    connector.terminate(job)
    dummy.wait_ended(connector, job)
    assert connector.info(job).url == ""
    assert connector.exitstatus(job).state == "CANCELLED"


def test_timer_jobs_are_not_interactive_unless_asked(dummy):
    connector = dummy.connect(JARVICE_DUMMY_JOB_RUNNING_TIME="60")
    job = dummy.submit(connector, "true")
    dummy.wait_running(connector, job)
    assert connector.info(job).url == ""


@pytest.mark.parametrize(("name", "value"), [
    ("JARVICE_DUMMY_JOB_FAILING_PERCENT", "150"),
    ("JARVICE_DUMMY_JOB_QUEUED_TIME", "-1"),
    ("JARVICE_DUMMY_JOBS_ARE_INTERACTIVE", "maybe"),
])
def test_a_bad_timer_setting_is_named(dummy, name, value):
    with pytest.raises(SettingsError, match=name):
        dummy.connect(JARVICE_DUMMY_JOB_RUNNING_TIME="1", **{name: value})


def test_timer_settings_without_a_running_time_are_ignored_with_a_warning(dummy, tmp_path, caplog):
    connector = dummy.connect(JARVICE_DUMMY_JOB_QUEUED_TIME="5", JARVICE_DUMMY_JOB_FAILING_PERCENT="50")
    assert "JARVICE_DUMMY_JOB_QUEUED_TIME, JARVICE_DUMMY_JOB_FAILING_PERCENT only apply in timer mode" \
        in caplog.text
    assert dict(connector.report())["dummy timer mode"] == "off"
    job = dummy.submit(connector, "echo the script ran")
    dummy.wait_ended(connector, job)
    assert connector.exitstatus(job).output == "the script ran\n"
