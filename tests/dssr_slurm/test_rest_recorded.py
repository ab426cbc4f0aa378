"""The slurmrestd connector behind DSSR's HTTP API, against a fake slurmrestd that answers with
each version's recorded answers: version choice, what each endpoint sends and reads, the
HTTP client's retries, timeouts and bounded pool."""

import concurrent.futures
import logging
import re

import jwt
import pytest
from rest_fixtures import LIVE_RECORDED, ping_routes, recorded
from slurm_helpers import bearer_for, template

from dssr_core.app import create_app
from dssr_core.errors import ClusterUnavailable, SettingsError
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, shell_template
from dssr_slurm.rest.connector import SlurmRestConnector

pytest_plugins = ["rest_fixtures"]

ALL_VERSIONS = ("v0.0.38", "v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45")
#: Their answers are built by hand around the same job ids (4001 held, 4002 running, ...).
NEW_VERSIONS = ("v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42")
KIRBY = bearer_for("kirby@example.org")
HMS = re.compile(r"^\d{2,}:\d{2}:\d{2}$")


@pytest.fixture
def make(fake_env):
    made = []

    def make(**overrides) -> tuple[SlurmRestConnector, ApiClient]:
        settings = Settings.from_env({**fake_env, **overrides})
        connector = SlurmRestConnector.from_settings(settings)
        made.append(connector)
        app = create_app(settings, connector, ShellExecutor(settings), executor_name="shell")
        return connector, ApiClient.for_app(app)

    yield make
    for connector in made:
        connector.close()


def serve(fake, version, **extra):
    fake.serve_version(version, {**ping_routes(version), f"GET /slurm/{version}/jobs": "jobs", **extra})


def job(name, jobid):
    return {"name": name, "number": 1, "jobid": jobid}


# Choosing the version ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_the_newest_version_that_answers_ping_is_chosen_and_logged(make, fake_slurmrestd, version, caplog):
    serve(fake_slurmrestd, version)
    with caplog.at_level(logging.INFO, logger="dssr_slurm.rest.connector"):
        connector, _ = make()
    assert connector.versions.current().name == version
    assert f"using API {version}" in caplog.text
    probed = [r["path"] for r in fake_slurmrestd.requested("GET") if r["path"].endswith("/ping")]
    newer = ALL_VERSIONS[ALL_VERSIONS.index(version) + 1:]
    assert probed == [f"/slurm/{v}/ping" for v in reversed(newer)] + [f"/slurm/{version}/ping"]
    assert dict(connector.report())["API version"].startswith(version)


def test_ssh_features_need_the_ssh_settings(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.42")
    for setting in ({"JARVICE_SLURMRESTD_SSH_TUNNEL": "true"}, {"JARVICE_SLURMRESTD_OUTPUT_ACCESS": "ssh"}):
        with pytest.raises(SettingsError) as refused:
            make(**setting)
        assert "{}={}".format(*next(iter(setting.items()))) in refused.value.message
        assert "JARVICE_SLURM_CLUSTER_ADDR" in refused.value.message


def test_scratch_dir_is_required(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.42")
    with pytest.raises(SettingsError, match="JARVICE_JOB_SCRATCH_DIR must be set"):
        make(JARVICE_JOB_SCRATCH_DIR="")


def test_a_pinned_version_is_not_probed(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.40")
    serve(fake_slurmrestd, "v0.0.42")
    connector, api = make(JARVICE_SLURMRESTD_API_VERSION="0.0.40")
    assert api.get("/queued").status == 200
    assert all("/v0.0.40/" in r["path"] for r in fake_slurmrestd.requests)
    assert dict(connector.report())["API version"] == "v0.0.40 (JARVICE_SLURMRESTD_API_VERSION)"


def test_slurmrestd_down_at_start_is_probed_again_later(make, fake_slurmrestd, fake_env):
    connector, api = make(JARVICE_SLURMRESTD_PORT="1")  # nothing listens there
    assert "not chosen yet" in dict(connector.report())["API version"]
    answer = api.get("/queued")
    assert answer.status == 503 and "Cannot reach slurmrestd" in answer.json["description"]


# Reading jobs ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", NEW_VERSIONS)
def test_listings_and_runstatus_from_one_job_list(make, fake_slurmrestd, version):
    serve(fake_slurmrestd, version)
    _, api = make()
    assert sorted(api.get("/queued").json) == [["rest-held", "4001"]]
    assert sorted(api.get("/running").json) == [["rest-completing", "4006"], ["rest-run", "4002"]]
    nodes, elapsed, ident, extra = api.post("/runstatus", job("rest-run", "4002")).json
    assert nodes == ["node01", "node02"] and HMS.match(elapsed)
    assert ident == "rest-run/1/4002" and extra is None
    assert api.post("/runstatus", job("rest-held", "4001")).json == [[], "00:00:00", "rest-held/1/4001", None]
    assert api.post("/runstatus", job("rest-ok", "4003")).json == [None, None, None, None]
    assert api.post("/runstatus", job("other-name", "4002")).json == [None] * 4, "same id, not ours"
    assert len(fake_slurmrestd.requested("GET", f"/slurm/{version}/jobs")) == 6, "interval 0: one per request"


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_exitstatus_falls_back_to_accounting(make, fake_slurmrestd, version):
    raw = recorded(version, "db-job-failed")["body"]["jobs"][0]
    jobid, name = str(raw["job_id"]), raw["name"].removeprefix("jarvice_")
    fake_slurmrestd.serve_version(version, {**ping_routes(version),
                                            f"GET /slurm/{version}/job/{jobid}": "job-purged",
                                            f"GET /slurmdb/{version}/job/{jobid}": "db-job-failed"})
    _, api = make()
    rc, totaltime, (output, banner) = api.post("/exitstatus", job(name, jobid)).json
    assert rc == 1 and banner == "<< termination state: FAILED -- see STDOUT for job errors >>"
    assert HMS.match(totaltime) and output == ""


def test_exitstatus_of_a_job_nobody_knows(make, fake_slurmrestd):
    fake_slurmrestd.serve_version("v0.0.38", {**ping_routes("v0.0.38"),
                                              "GET /slurm/v0.0.38/job/987654321": "job-unknown",
                                              "GET /slurmdb/v0.0.38/job/987654321": "db-job-unknown"})
    _, api = make()
    rc, _, (output, _) = api.post("/exitstatus", job("rest-never", "987654321")).json
    assert rc == -9 and output == ""


def test_exitstatus_without_accounting_plugin(make, fake_slurmrestd):
    fake_slurmrestd.serve_version("v0.0.38", {**ping_routes("v0.0.38"),
                                              "GET /slurm/v0.0.38/job/42": "job-purged"})
    _, api = make()
    assert api.post("/exitstatus", job("rest-x", "42")).json[0] == -9


@pytest.mark.parametrize("version", NEW_VERSIONS)
def test_events_are_the_job_record_as_text(make, fake_slurmrestd, version):
    fake_slurmrestd.serve_version(version, {**ping_routes(version),
                                            f"GET /slurm/{version}/job/4002": "job-running"})
    _, api = make()
    text = api.post("/events", job("rest-run", "4002")).json
    assert "job_id=4002" in text and "name=jarvice_rest-run" in text and "user_name=kirby" in text
    assert "time_limit=5" in text and "start_time=2026-11-21T" in text


@pytest.mark.parametrize("version", ("v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43"))
def test_a_queue_that_did_not_change_is_not_read_again(make, fake_slurmrestd, version):
    """From v0.0.42 on the next list is asked with update_time=<last_update>; slurmctld's 'no
    change' (no job, last_update 0) keeps the last list. 24.11 refuses it in v0.0.40 and v0.0.41."""
    serve(fake_slurmrestd, version)
    listed = recorded(version, "jobs")["body"]
    since = f"/slurm/{version}/jobs?update_time={listed['last_update']['number']}"
    no_change = {**listed, "jobs": [], "last_update": {"set": True, "infinite": False, "number": 0},
                 "warnings": [{"description": "No job changes since update_time[1]", "source": "jobs"}]}
    fake_slurmrestd.answer("GET", since, (200, no_change))
    connector, api = make()
    first = sorted(api.get("/queued").json + api.get("/running").json)
    connector.snapshot.invalidate()
    assert sorted(api.get("/queued").json + api.get("/running").json) == first and first
    plain, *later = [r["path"] for r in fake_slurmrestd.requested("GET", f"/slurm/{version}/jobs")]
    assert plain == f"/slurm/{version}/jobs" and later
    assert set(later) == ({since} if version >= "v0.0.42" else {plain})


def serve_v0_0_38_with_its_clock(fake) -> str:
    """v0.0.38 with GET /diag recorded; the path of the job list asked since that clock."""
    serve(fake, "v0.0.38", **{"GET /slurm/v0.0.38/diag": "diag"})
    return f"/slurm/v0.0.38/jobs?update_time={recorded('v0.0.38', 'diag')['body']['statistics']['req_time']}"


def test_a_v0_0_38_queue_that_did_not_change_is_not_read_again(make, fake_slurmrestd):
    """22.05 says no last_update, but answers update_time=<slurmctld's clock, from GET /diag just
    before the last list> with 304 and no body when no job changed since."""
    since = serve_v0_0_38_with_its_clock(fake_slurmrestd)
    fake_slurmrestd.answer("GET", since, recorded("v0.0.38", "jobs-not-modified"))
    connector, api = make()
    first = sorted(api.get("/queued").json + api.get("/running").json)
    for _ in range(2):
        connector.snapshot.invalidate()
        assert sorted(api.get("/queued").json + api.get("/running").json) == first and first
    plain, *later = [r["path"] for r in fake_slurmrestd.requested("GET", "/slurm/v0.0.38/jobs")]
    assert plain == "/slurm/v0.0.38/jobs" and later and set(later) == {since}
    assert len(fake_slurmrestd.requested("GET", "/slurm/v0.0.38/diag")) == 1 + len(later)  # before each list


def test_a_v0_0_38_answer_of_no_job_since_its_clock_is_checked_with_the_whole_list(make, fake_slurmrestd):
    """An empty list to update_time would be every job ended; only the whole list may say so."""
    since = serve_v0_0_38_with_its_clock(fake_slurmrestd)
    fake_slurmrestd.answer("GET", since, (200, {**recorded("v0.0.38", "jobs")["body"], "jobs": []}))
    connector, api = make()
    first = sorted(api.get("/queued").json + api.get("/running").json)
    connector.snapshot.invalidate()
    assert sorted(api.get("/queued").json + api.get("/running").json) == first and first
    plain, *later = [r["path"] for r in fake_slurmrestd.requested("GET", "/slurm/v0.0.38/jobs")]
    assert later[:2] == [since, plain] and set(later) == {since, plain}


def test_without_slurmctlds_clock_a_v0_0_38_list_is_read_whole(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.38", **{"GET /slurm/v0.0.38/diag": "ping-expired-token"})
    connector, api = make()
    first = sorted(api.get("/queued").json)
    connector.snapshot.invalidate()
    assert sorted(api.get("/queued").json) == first and first
    paths = {r["path"] for r in fake_slurmrestd.requested("GET", "/slurm/v0.0.38/jobs")}
    assert paths == {"/slurm/v0.0.38/jobs"}


def test_a_slurmrestd_that_refuses_update_time_is_asked_for_whole_lists(make, fake_slurmrestd, caplog):
    serve(fake_slurmrestd, "v0.0.42")
    listed = recorded("v0.0.42", "jobs")["body"]
    since = f"/slurm/v0.0.42/jobs?update_time={listed['last_update']['number']}"
    fake_slurmrestd.answer("GET", since, (422, {"errors": [{"error_number": 9202, "description":
                                                            "Parsing of 1 for timestamp failed"}]}))
    connector, api = make()
    first = sorted(api.get("/queued").json)
    caplog.set_level(logging.INFO, logger="dssr_slurm.rest.listing")
    for _ in range(2):
        connector.snapshot.invalidate()
        assert sorted(api.get("/queued").json) == first and first
    plain, asked, *later = [r["path"] for r in fake_slurmrestd.requested("GET", "/slurm/v0.0.42/jobs")]
    assert asked == since and later and set(later) == {plain}, "refused once, never asked again"
    assert "refuses GET /slurm/v0.0.42/jobs?update_time=" in caplog.text


# Writing jobs ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_submit_as_the_mapped_user_with_the_versions_body(make, fake_slurmrestd, version, fake_env):
    serve(fake_slurmrestd, version, **{f"POST /slurm/{version}/job/submit": "submit"})
    _, api = make()
    answer = api.submit("rest-new", shell_template("echo hi"), bearer=KIRBY, hold=True)
    assert answer.status == 200, answer.text
    expected_id = str(recorded(version, "submit")["body"]["job_id"])
    assert answer.json[0] == expected_id and "echo hi" in answer.json[1]
    (post,) = fake_slurmrestd.requested("POST")
    lists = fake_slurmrestd.requested("GET", f"/slurm/{version}/jobs")
    assert lists and fake_slurmrestd.requests.index(lists[-1]) < fake_slurmrestd.requests.index(post), \
        "a fresh job list is read before submitting (retried submissions)"
    assert post["headers"]["X-SLURM-USER-NAME"] == "kirby"
    key = open(fake_env["JARVICE_SLURMRESTD_JWT_KEY_FILE"], "rb").read()
    claims = jwt.decode(post["headers"]["X-SLURM-USER-TOKEN"], key, algorithms=["HS256"])
    assert claims["sun"] == "kirby" and claims["exp"] - claims["iat"] == 600
    body = post["body"]
    spec = body["job"]
    script = body.get("script") or spec.get("script")
    assert "srun -N" in script and "echo hi" not in script, "the srun wrapper, the job script in base64"
    assert spec["name"] == "jarvice_rest-new"
    assert spec["current_working_directory"] == fake_env["JARVICE_JOB_SCRATCH_DIR"]
    if version == "v0.0.38":
        assert spec["environment"] == {"PATH": "/usr/local/bin:/usr/bin:/bin"} and spec["hold"] is True
        assert spec["exclusive"] == "exclusive"
    else:
        assert spec["environment"] == ["PATH=/usr/local/bin:/usr/bin:/bin"] and spec["shared"] == ["none"]
        assert spec.get("hold") is True or spec.get("priority") == 0


@pytest.mark.parametrize("version", ("v0.0.38", "v0.0.42"))
def test_a_retried_submission_returns_the_live_job(make, fake_slurmrestd, version):
    serve(fake_slurmrestd, version)
    _, api = make()
    name = "rest-run" if version != "v0.0.38" else recorded("v0.0.38", "jobs")["body"]["jobs"][0]["name"][8:]
    jobs = recorded(version, "jobs")["body"]["jobs"]
    jobid = next(str(j["job_id"]) for j in jobs if j["name"] == f"jarvice_{name}")
    listed = recorded(version, "jobs")["body"]
    fake_slurmrestd.answer("GET", f"/slurm/{version}/job/{jobid}",
                           (200, {**listed, "jobs": [j for j in jobs if str(j["job_id"]) == jobid]}))
    answer = api.submit(name, shell_template("echo again"), bearer=KIRBY)
    assert answer.status == 200 and answer.json[0] == jobid
    assert not fake_slurmrestd.requested("POST")
    assert fake_slurmrestd.requested("GET", f"/slurm/{version}/job/{jobid}"), \
        "the job list's job of that name is read again: it still lives"


def test_a_twin_is_found_among_the_ids_slurm_gave_out_since_the_last_job_list(make, fake_slurmrestd):
    """The last list's highest id is 4007 and our submit got 4010: 4008 and 4009 are read one by
    one, no job list; 4009 is a live job of the name (another replica's), so ours is cancelled and
    4009 answered. The next submission, 4011, reads no id at all."""
    serve(fake_slurmrestd, "v0.0.42", **{"POST /slurm/v0.0.42/job/submit": "submit"})
    listed = recorded("v0.0.42", "jobs")["body"]
    twin = {**listed["jobs"][0], "job_id": 4009, "name": "jarvice_rest-new"}
    unknown = {"errors": [{"error_number": 2017, "error": "Invalid job id specified"}], "jobs": []}
    fake_slurmrestd.answer("GET", "/slurm/v0.0.42/job/4008", (404, unknown))
    fake_slurmrestd.answer("GET", "/slurm/v0.0.42/job/4009", (200, {**listed, "jobs": [twin]}))
    fake_slurmrestd.answer("DELETE", "/slurm/v0.0.42/job/4010", (200, {"errors": []}))
    _, api = make()
    api.get("/queued")  # the snapshot's job list: ids up to 4007
    asked = len(fake_slurmrestd.requests)
    answer = api.submit("rest-new", shell_template("echo hi"), bearer=KIRBY, hold=True)
    assert answer.status == 200 and answer.json[0] == "4009", answer.text
    made = [(r["method"], r["path"]) for r in fake_slurmrestd.requests[asked:]]
    assert made == [("POST", "/slurm/v0.0.42/job/submit"), ("GET", "/slurm/v0.0.42/job/4008"),
                    ("GET", "/slurm/v0.0.42/job/4009"), ("DELETE", "/slurm/v0.0.42/job/4010")]
    fake_slurmrestd.answer("POST", "/slurm/v0.0.42/job/submit",
                           (200, {**recorded("v0.0.42", "submit")["body"], "job_id": 4011}))
    asked = len(fake_slurmrestd.requests)
    assert api.submit("rest-other", shell_template("true"), bearer=KIRBY, hold=True).json[0] == "4011"
    assert [r["method"] for r in fake_slurmrestd.requests[asked:]] == ["POST"], "no id between 4010 and 4011"


def test_a_refused_job_is_a_422_with_slurms_words(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.41", **{"POST /slurm/v0.0.41/job/submit": "submit-bad-partition"})
    _, api = make()
    answer = api.submit("rest-bad", shell_template("true"), bearer=KIRBY)
    assert answer.status == 422 and "Invalid partition name specified" in answer.json["description"]


@pytest.mark.parametrize(("device", "words"), [
    ("sbatch_wrap=id", "sbatch_wrap is not allowed"),
    ("sbatch_container=/tmp/x", "sbatch_container is not allowed"),
    ("sbatch_account=x$(id)", "value that is not allowed"), ("sbatch_nice=high", "needs a whole number"),
    ("sbatch_mail-type=END", "sbatch_mail-type is not supported by the slurmrestd connector"),
])
def test_a_device_not_allowed_is_refused_before_slurmrestd_is_asked(make, fake_slurmrestd, device, words):
    serve(fake_slurmrestd, "v0.0.42")
    _, api = make()
    asked = len(fake_slurmrestd.requests)
    answer = api.submit("rest-device", template("true", devices=[device]), bearer=KIRBY)
    assert answer.status == 400 and words in answer.json["description"]
    assert len(fake_slurmrestd.requests) == asked, "nothing was sent to slurmrestd"


def test_unmapped_portal_user_is_refused_before_slurm_is_asked(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.42")
    _, api = make()
    answer = api.submit("rest-who", shell_template("true"), bearer=bearer_for("nobody@example.org"))
    assert answer.status == 403 and "no cluster account" in answer.json["description"]
    assert not fake_slurmrestd.requested("POST")


@pytest.mark.parametrize("version", ("v0.0.38", "v0.0.40", "v0.0.41", "v0.0.42"))
def test_release_and_terminate_act_as_the_owner(make, fake_slurmrestd, version):
    serve(fake_slurmrestd, version, **{f"POST /slurm/{version}/job/4001": "release",
                                       f"DELETE /slurm/{version}/job/4002": "delete" if version == "v0.0.38"
                                       else "release"})
    if version == "v0.0.38":  # the recorded 22.05 list has other ids: serve v0.0.40's, written the 22.05 way
        fake_slurmrestd.answer("GET", "/slurm/v0.0.38/jobs", _v38_list())
    _, api = make()
    assert api.post("/release", job("rest-held", "4001")).json is True
    assert api.post("/terminate", job("rest-run", "4002")).json is True
    (release,) = fake_slurmrestd.requested("POST", f"/slurm/{version}/job/4001")
    assert release["body"] == {"v0.0.38": {"hold": False}, "v0.0.40": {"priority": 4294967295}}.get(
        version, {"hold": False})
    (cancel,) = fake_slurmrestd.requested("DELETE", f"/slurm/{version}/job/4002")
    assert release["headers"]["X-SLURM-USER-NAME"] == cancel["headers"]["X-SLURM-USER-NAME"] == "kirby"
    assert api.post("/terminate", job("rest-ok", "4003")).json is True
    assert not fake_slurmrestd.requested("DELETE", f"/slurm/{version}/job/4003"), "an ended job is left alone"


def _v38_list():
    """v0.0.40's recorded list written the v0.0.38 way (string states, plain numbers)."""
    data = recorded("v0.0.40", "jobs")
    jobs = []
    for raw in data["body"]["jobs"]:
        plain = {k: (v["number"] if isinstance(v, dict) and "number" in v else v) for k, v in raw.items()}
        plain["job_state"] = raw["job_state"][-1]
        jobs.append(plain)
    return 200, {"meta": {}, "errors": [], "jobs": jobs}


# Failures ----------------------------------------------------------------------------------


def test_a_refused_token_is_a_500_whose_log_names_the_mode_never_the_token(make, fake_slurmrestd, caplog):
    serve(fake_slurmrestd, "v0.0.42")
    fake_slurmrestd.serve_version("v0.0.42", {"GET /slurm/v0.0.42/jobs": "jobs-token-refused"})
    _, api = make()
    with caplog.at_level(logging.WARNING):
        answer = api.get("/running")
    assert answer.status == 500  # the answer names no file (the key's): the log does
    assert answer.json["description"] == "DSSR failed on this request; the server log has the details."
    assert "token mode mint" in caplog.text and "jwt_key" in caplog.text
    sent = fake_slurmrestd.requested("GET", "/slurm/v0.0.42/jobs")[0]["headers"]["X-SLURM-USER-TOKEN"]
    assert sent not in answer.text and sent not in caplog.text


def test_reads_are_retried_writes_are_not(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.42")
    fake_slurmrestd.answer("GET", "/slurm/v0.0.42/jobs", (503, {"errors": []}), recorded("v0.0.42", "jobs"))
    fake_slurmrestd.answer("POST", "/slurm/v0.0.42/job/submit", (503, {"errors": []}),
                           recorded("v0.0.42", "submit"))
    _, api = make()
    assert api.get("/queued").json == [["rest-held", "4001"]]
    assert len(fake_slurmrestd.requested("GET", "/slurm/v0.0.42/jobs")) == 2, "the 503 was retried"
    answer = api.submit("rest-once", shell_template("true"), bearer=KIRBY)
    assert answer.status == 503
    assert len(fake_slurmrestd.requested("POST")) == 1, "a submission is never sent twice"


def test_slow_slurmrestd_is_a_503_not_an_empty_list(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.42")
    _, api = make(JARVICE_SLURMRESTD_TIMEOUT="0.3", JARVICE_SLURMRESTD_RETRIES="0")
    fake_slurmrestd.delay = 1.0
    answer = api.get("/running")
    assert answer.status == 503 and "did not answer in time" in answer.json["description"]


def test_gone_slurmrestd_is_a_503_and_gc_says_bad(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.42")
    _, api = make(JARVICE_SLURMRESTD_RETRIES="0")
    fake_slurmrestd.close()
    assert api.get("/queued").status == 503
    assert api.get("/gc").status == 500 and api.get("/gc").json == {"status": "BAD"}


def test_gc_bad_when_no_controller_answers(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.42")
    _, api = make()
    assert api.get("/gc").json == {"status": "OK"}
    fake_slurmrestd.serve_version("v0.0.42", {"GET /slurm/v0.0.42/ping": "ping-controller-down"})
    assert api.get("/gc").status == 500


def test_the_connection_pool_is_bounded(make, fake_slurmrestd):
    serve(fake_slurmrestd, "v0.0.42", **{"GET /slurm/v0.0.42/job/4002": "job-running"})
    _, api = make(JARVICE_SLURMRESTD_POOL_SIZE="2")
    fake_slurmrestd.delay = 0.1
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: api.post("/events", job("rest-run", "4002")), range(24)))
    assert all(answer.status == 200 for answer in answers)
    assert fake_slurmrestd.max_open_connections <= 2


# v0.0.43 to v0.0.45, recorded from 26.05 --------------------------------------------------


def recorded_jobs(version: str) -> dict[str, dict]:
    """The recorded list's jobs by the end of their name (held, ok, fail, run, bad)."""
    return {raw["name"].rsplit("-", 1)[-1]: raw for raw in recorded(version, "jobs")["body"]["jobs"]}


def ref(raw: dict) -> dict:
    return job(raw["name"].removeprefix("jarvice_"), str(raw["job_id"]))


@pytest.mark.parametrize("version", LIVE_RECORDED)
def test_recorded_listings_status_and_exit_status(make, fake_slurmrestd, version):
    jobs = recorded_jobs(version)
    done, failed = jobs["ok"], jobs["fail"]
    serve(fake_slurmrestd, version, **{f"GET /slurm/{version}/job/{done['job_id']}": "job-completed",
                                       f"GET /slurm/{version}/job/{failed['job_id']}": "job-failed"})
    _, api = make()
    assert ref(jobs["held"])["name"] in {name for name, _ in api.get("/queued").json}
    assert api.get("/running").json == [[ref(jobs["run"])["name"], str(jobs["run"]["job_id"])]]
    nodes, elapsed, ident, _ = api.post("/runstatus", ref(jobs["run"])).json
    assert nodes == ["localhost"] and HMS.match(elapsed)
    rc, _, (output, banner) = api.post("/exitstatus", ref(done)).json
    assert rc == 0 and "COMPLETED" in banner
    rc, _, (output, banner) = api.post("/exitstatus", ref(failed)).json
    assert rc == 1 and "FAILED" in banner


@pytest.mark.parametrize("version", LIVE_RECORDED)
def test_recorded_release_and_terminate_as_the_owner(make, fake_slurmrestd, version):
    jobs = recorded_jobs(version)
    held, running = jobs["held"], jobs["run"]
    serve(fake_slurmrestd, version, **{f"POST /slurm/{version}/job/{held['job_id']}": "release",
                                       f"DELETE /slurm/{version}/job/{running['job_id']}": "delete"})
    _, api = make()
    assert api.post("/release", ref(held)).json is True
    assert api.post("/terminate", ref(running)).json is True
    (release,) = fake_slurmrestd.requested("POST", f"/slurm/{version}/job/{held['job_id']}")
    (cancel,) = fake_slurmrestd.requested("DELETE", f"/slurm/{version}/job/{running['job_id']}")
    assert release["body"] == {"hold": False}
    assert release["headers"]["X-SLURM-USER-NAME"] == cancel["headers"]["X-SLURM-USER-NAME"] == "kirby"


@pytest.mark.parametrize("version", LIVE_RECORDED)
def test_a_refused_token_on_the_ping_says_why_the_controller_looks_down(make, fake_slurmrestd, version):
    serve(fake_slurmrestd, version)
    connector, _ = make()
    fake_slurmrestd.serve_version(version, {f"GET /slurm/{version}/ping": "ping-expired-token"})
    with pytest.raises(ClusterUnavailable) as down:
        connector.check()
    if version == "v0.0.45":  # the only one that says why in its ping
        assert "vm DOWN (Protocol authentication error)" in down.value.message
    else:
        assert "vm DOWN)" in down.value.message
