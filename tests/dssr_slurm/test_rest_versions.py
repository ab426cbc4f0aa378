"""Each API version's adapter on that version's answers (tests/dssr_slurm/recorded/): job lists,
job records, accounting records, pings, and the submit and release bodies it writes."""

import json

import pytest
from rest_fixtures import LIVE_RECORDED, RECORDED, RECORDED_NOW, recorded

from dssr_core.models import JobFacts, Submission
from dssr_core.remote.snapshot import Snapshot
from dssr_slurm.jobspec import job_spec
from dssr_slurm.rest.versions import ADAPTERS, adapter, base_state, exit_code, number

NEW_VERSIONS = ("v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42")
SCRATCH = "/scratch"


def records(version: str, name: str, now: float = RECORDED_NOW):
    body = recorded(version, name)["body"]
    return [r for r in (adapter(version).job_record(raw, now) for raw in body["jobs"]) if r is not None]


def spec(held=False, service_port=None, **facts):
    submission = Submission(name="rest-x", number=1, script="true\n", facts=JobFacts(**facts), held=held,
                            service_port=service_port)
    return job_spec(submission, SCRATCH, working_directory=SCRATCH, environment={"PATH": "/opt/bin:/usr/bin"})


# Values in every form -------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (7, 7), (None, None), ({"set": True, "infinite": False, "number": 7}, 7),
    ({"set": False, "infinite": False, "number": 0}, None),
    ({"set": True, "infinite": True, "number": 0}, None),
    (True, None), ("7", None),
])
def test_numbers_plain_or_no_val(value, expected):
    assert number(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("RUNNING", "RUNNING"), (["RUNNING"], "RUNNING"), (["COMPLETED", "COMPLETING"], "COMPLETING"),
    (["RUNNING", "CONFIGURING"], "CONFIGURING"), (["PENDING", "REQUEUE_HOLD"], "REQUEUE_HOLD"),
    (["COMPLETED", "UPDATE_DB"], "COMPLETED"), ("CANCELLED by 1002", "CANCELLED"), ([], "UNKNOWN"),
])
def test_states_as_squeue_prints_them(value, expected):
    assert base_state(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (768, 3), (0, 0), (15, 0), ({"set": True, "infinite": False, "number": 768}, 3),
    ({"status": ["ERROR"], "return_code": {"set": True, "infinite": False, "number": 3}}, 3),
    ({"status": "ERROR", "return_code": 3}, 3),
    ({"status": ["SIGNALED"], "return_code": {"set": False, "infinite": False, "number": 0}}, None),
])
def test_exit_code_as_wait_status_or_object(value, expected):
    assert exit_code(value) == expected


# Job lists ------------------------------------------------------------------------------


def test_v0_0_38_recorded_job_list():
    found = {r.name.rsplit("-", 1)[-1]: r for r in records("v0.0.38", "jobs", now=2_000_000_000)}
    assert {k: r.state for k, r in found.items()} == {"held": "PENDING", "ok": "COMPLETED", "fail": "FAILED",
                                                       "run": "RUNNING"}
    assert found["fail"].exit_code == 3 and found["ok"].exit_code == 0
    assert found["run"].nodes == ("localhost",) and found["held"].nodes == ()
    assert all(r.user == "kirby" for r in found.values())
    raw = next(j for j in recorded("v0.0.38", "jobs")["body"]["jobs"] if j["job_state"] == "RUNNING")
    assert found["run"].elapsed_s == 2_000_000_000 - raw["start_time"]


@pytest.mark.parametrize("version", NEW_VERSIONS)
def test_new_versions_job_list(version):
    found = {r.jobid: r for r in records(version, "jobs")}
    assert set(found) == {"4001", "4002", "4003", "4004", "4005", "4006"}, "someone else's job is left out"
    assert {j: r.state for j, r in found.items()} == {
        "4001": "PENDING", "4002": "RUNNING", "4003": "COMPLETED", "4004": "FAILED", "4005": "CANCELLED",
        "4006": "COMPLETING"}
    running = found["4002"]
    assert running.nodes == ("node01", "node02") and running.elapsed_s == 75 and running.user == "kirby"
    assert found["4004"].exit_code == 3 and found["4003"].exit_code == 0 and found["4003"].user == "mario"
    assert found["4001"].elapsed_s == 0 and found["4003"].elapsed_s == 10


@pytest.mark.parametrize("version", ("v0.0.38", *NEW_VERSIONS))
def test_listings_from_one_snapshot(version):
    snapshot = Snapshot(records(version, "jobs"), taken_at=0)
    assert {listing.jobid for listing in snapshot.queued} >= ({"4001"} if version != "v0.0.38" else set())
    assert all(listing.name.startswith("rest-") or version == "v0.0.38" for listing in snapshot.running)
    assert len(snapshot.running) == (1 if version == "v0.0.38" else 2)  # COMPLETING counts as running


@pytest.mark.parametrize("version", NEW_VERSIONS)
def test_single_job_answers(version):
    (running,) = records(version, "job-running")
    assert running.jobid == "4002" and running.state == "RUNNING"
    (failed,) = records(version, "job-failed")
    assert failed.state == "FAILED" and failed.exit_code == 3


# Accounting ------------------------------------------------------------------------------


def test_v0_0_38_accounting_uses_the_state_not_the_buggy_exit_code():
    answer = recorded("v0.0.38", "db-job-failed")
    raw = answer["body"]["jobs"][0]
    assert raw["exit_code"] == {"status": "SUCCESS", "return_code": 0}, "the recording shows dbv0.0.38's bug"
    record = adapter("v0.0.38").db_record(raw)
    assert record.state == "FAILED" and record.exit_code is None and record.user == "kirby"
    cancelled = adapter("v0.0.38").db_record(recorded("v0.0.38", "db-job-cancelled")["body"]["jobs"][0])
    assert cancelled.state == "CANCELLED"


@pytest.mark.parametrize("version", NEW_VERSIONS)
def test_new_versions_accounting(version):
    failed = adapter(version).db_record(recorded(version, "db-job-failed")["body"]["jobs"][0])
    assert (failed.jobid, failed.state, failed.exit_code, failed.user) == ("4004", "FAILED", 3, "kirby")
    done = adapter(version).db_record(recorded(version, "db-job-completed")["body"]["jobs"][0])
    assert (done.state, done.elapsed_s, done.exit_code) == ("COMPLETED", 10, 0)


# Pings and submit answers --------------------------------------------------------------------


@pytest.mark.parametrize("version", ("v0.0.38", *NEW_VERSIONS))
def test_ping_says_whether_a_controller_answers(version):
    assert adapter(version).controller_up(recorded(version, "ping")["body"])
    if version != "v0.0.38":
        assert not adapter(version).controller_up(recorded(version, "ping-controller-down")["body"])


@pytest.mark.parametrize(("version", "name", "jobid"), [
    ("v0.0.38", "submit", None), ("v0.0.38", "submit-held", None), ("v0.0.38", "submit-bad-partition", ""),
    *[(v, "submit", "4010") for v in NEW_VERSIONS], *[(v, "submit-bad-partition", "") for v in NEW_VERSIONS],
])
def test_submitted_id(version, name, jobid):
    body = recorded(version, name)["body"]
    expected = str(body["job_id"]) if jobid is None else (jobid or None)
    assert adapter(version).submitted_id(body) == expected


# What each version is sent ----------------------------------------------------------------


def test_v0_0_38_submit_body_fits_the_recorded_schema():
    schema = json.loads((RECORDED / "v0.0.38" / "openapi-job-submission.json").read_text())
    allowed = set(schema["v0.0.38_job_properties"]["properties"])
    facts = spec(held=True, nodes=2, cores=3, memory_gb=2, gpus=1, walltime_s=3601, partition="debug",
                 licenses="lic:1")
    body = adapter("v0.0.38").submit_body("#!/bin/bash\n", facts)
    assert set(body) == {"script", "job"} and set(body["job"]) <= allowed
    job = body["job"]
    assert job["environment"] == {"PATH": "/opt/bin:/usr/bin"}, "v0.0.38 wants an object, not empty"
    assert job["nodes"] == 2 and job["tasks"] == 6 and job["memory_per_node"] == 2048
    assert job["time_limit"] == 61 and job["hold"] is True and job["exclusive"] == "exclusive"
    assert job["gres"] == "gpu:1" and job["name"] == "jarvice_rest-x"
    assert job["standard_output"] == "/scratch/jarvice_rest-x.%j.out"
    assert adapter("v0.0.38").release_body() == {"hold": False}


@pytest.mark.parametrize("version", ("v0.0.40", "v0.0.41", "v0.0.42", *LIVE_RECORDED))
def test_new_submit_bodies_use_only_fields_the_version_parses(version):
    fields = json.loads((RECORDED / version / "job-desc-fields.json").read_text())["fields"]
    facts = spec(held=True, nodes=2, cores=1, memory_gb=1, gpus=2, walltime_s=60, partition="debug",
                 licenses="lic:1", scheduler_options=(("account", "acct_kirby"), ("cpus-per-task", "2")))
    body = adapter(version).submit_body("#!/bin/bash\n", facts)
    assert set(body) == {"job"}, "the top-level script is deprecated from v0.0.40 on"
    job = body["job"]
    assert set(job) <= set(fields), set(job) - set(fields)
    assert job["script"] == "#!/bin/bash\n" and job["environment"] == ["PATH=/opt/bin:/usr/bin"]
    assert job["nodes"] == "2" and job["tasks"] == 2
    assert job["cpus_per_task"] == 2 and job["account"] == "acct_kirby"
    assert job["time_limit"] == {"set": True, "infinite": False, "number": 1}
    assert job["memory_per_node"] == {"set": True, "infinite": False, "number": 1024}
    assert job["shared"] == ["none"] and "exclusive" not in job
    assert job["tres_per_node"] == "gres/gpu:2"


def test_holding_and_releasing_differ_by_version():
    held = spec(held=True)
    assert adapter("v0.0.40").submit_body("s", held)["job"]["priority"] == 0
    assert "hold" not in adapter("v0.0.40").submit_body("s", held)["job"]
    assert adapter("v0.0.40").release_body() == {"priority": 4294967295}
    for version in ("v0.0.41", "v0.0.42", *LIVE_RECORDED):
        assert adapter(version).submit_body("s", held)["job"]["hold"] is True
        assert adapter(version).release_body() == {"hold": False}
    assert "hold" not in adapter("v0.0.42").submit_body("s", spec())["job"]
    assert "priority" not in adapter("v0.0.42").submit_body("s", spec())["job"]


def test_v0_0_39_keeps_the_v0_0_38_layout():
    body = adapter("v0.0.39").submit_body("script", spec(held=True))
    assert body["script"] == "script" and "script" not in body["job"]
    assert body["job"]["environment"] == ["PATH=/opt/bin:/usr/bin"] and body["job"]["priority"] == 0


@pytest.mark.parametrize("version", ("v0.0.38", *NEW_VERSIONS, *LIVE_RECORDED))
def test_the_service_port_is_submitted_as_the_job_comment(version):
    body = adapter(version).submit_body("s", spec(service_port=2228))
    assert body["job"]["comment"] == "dssr-service-port=2228 dssr-job-number=1"
    assert "comment" not in adapter(version).submit_body("s", spec())["job"]
    if version == "v0.0.38":
        schema = json.loads((RECORDED / "v0.0.38" / "openapi-job-submission.json").read_text())
        assert "comment" in schema["v0.0.38_job_properties"]["properties"]
    elif version != "v0.0.39":
        assert "comment" in json.loads((RECORDED / version / "job-desc-fields.json").read_text())["fields"]


@pytest.mark.parametrize("version", ("v0.0.38", *NEW_VERSIONS, *LIVE_RECORDED))
@pytest.mark.parametrize(("comment", "port"), [
    ("dssr-service-port=2228", 2228),
    ({"administrator": None, "job": "dssr-service-port=8443", "system": None}, 8443),
    ("", None), ({"administrator": None, "job": None, "system": None}, None), (None, None), (7, None),
    ("dssr-service-port=nope", None), (["dssr-service-port=2228"], None),
])
def test_job_records_read_the_service_port_from_the_comment(version, comment, port):
    raw = dict(recorded(version, "job-running")["body"]["jobs"][0], comment=comment)
    record = adapter(version).job_record(raw, RECORDED_NOW)
    assert record.state == "RUNNING" and record.service_port == port
    db_raw = dict(recorded(version, "db-job-completed")["body"]["jobs"][0], comment=comment)
    assert adapter(version).db_record(db_raw).service_port == port


def test_recorded_jobs_have_no_service_port():
    assert all(r.service_port is None for v in ("v0.0.38", *NEW_VERSIONS, *LIVE_RECORDED)
               for r in records(v, "jobs"))


def test_every_version_has_an_adapter():
    assert set(ADAPTERS) == {"v0.0.38", "v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44",
                             "v0.0.45"}
    assert {p.name for p in RECORDED.iterdir() if p.is_dir()} - {"openapi"} == set(ADAPTERS)
    for version in ADAPTERS:
        for path in (RECORDED / version).glob("*.json"):
            assert json.loads(path.read_text())["source"], f"{path} says nothing of where it comes from"


# v0.0.43 to v0.0.45, recorded from 26.05 --------------------------------------------------


@pytest.mark.parametrize("version", LIVE_RECORDED)
def test_recorded_job_list_of_each_new_version(version):
    by_end = {r.name.rsplit("-", 1)[-1]: r for r in records(version, "jobs")}
    assert by_end["held"].state == "PENDING" and by_end["run"].state == "RUNNING"
    assert by_end["run"].nodes == ("localhost",) and by_end["run"].user == "kirby"
    assert (by_end["ok"].state, by_end["ok"].exit_code) == ("COMPLETED", 0)
    assert (by_end["fail"].state, by_end["fail"].exit_code) == ("FAILED", 3)
    assert not by_end["ok"].nodes, "an ended job has no nodes"


@pytest.mark.parametrize("version", LIVE_RECORDED)
def test_recorded_controller_and_accounting_records_of_each_new_version(version):
    def one(name, reader):
        (raw,) = recorded(version, name)["body"]["jobs"]
        return reader(raw)

    job = adapter(version)
    assert one("job-completed", lambda raw: job.job_record(raw, RECORDED_NOW)).exit_code == 0
    failed = one("job-failed", lambda raw: job.job_record(raw, RECORDED_NOW))
    assert (failed.state, failed.exit_code) == ("FAILED", 3)
    assert one("job-cancelled", lambda raw: job.job_record(raw, RECORDED_NOW)).state == "CANCELLED"
    assert one("db-job-completed", job.db_record).state == "COMPLETED"
    db_failed = one("db-job-failed", job.db_record)
    assert (db_failed.state, db_failed.exit_code) == ("FAILED", 3), "accounting's exit code is right again"
    assert one("db-job-cancelled", job.db_record).state == "CANCELLED"


@pytest.mark.parametrize("version", LIVE_RECORDED)
def test_recorded_pings_of_each_new_version(version):
    assert adapter(version).controller_up(recorded(version, "ping")["body"])
    assert not adapter(version).controller_up(recorded(version, "ping-expired-token")["body"])
