"""The HTTP layer: every endpoint's shapes, status codes and refusals.

The connector here is an in-memory test double of the HTTP layer's partner: it records
calls and answers from a dict, so that these tests pin what the app does with each answer.
The real connectors run the contract suite in their own test folders.
"""

import base64
import logging

import jwt
import pytest

import dssr_core
from dssr_core.app import create_app
from dssr_core.errors import ClusterUnavailable, Forbidden, JobNotFound, SchedulerRejected
from dssr_core.models import DirEntry, ExitStatus, JobInfo, JobListing, RunStatus, SubmitResult
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, shell_template


class InMemoryConnector(dssr_core.Connector):
    def __init__(self, settings):
        self.submissions = []
        self.down = False
        self.exit = {}
        self.terminated = []

    def _up(self):
        if self.down:
            raise ClusterUnavailable("The cluster cannot be reached: ssh: connection refused.")

    def submit(self, submission):
        self._up()
        if submission.facts.partition == "nope":
            raise SchedulerRejected("sbatch: error: invalid partition specified: nope")
        self.submissions.append(submission)
        return SubmitResult(str(100 + len(self.submissions)), submission.script)

    def running(self):
        self._up()
        return [JobListing("run-1", "101")]

    def queued(self):
        self._up()
        return [JobListing("wait-1", "102")]

    def runstatus(self, job):
        self._up()
        if job.jobid == "102":
            return RunStatus.waiting()
        if job.jobid != "101":
            raise JobNotFound(str(job))
        return RunStatus(("node1", "node2"), 90061)

    def exitstatus(self, job):
        self._up()
        if job.jobid not in self.exit:
            raise JobNotFound(str(job))
        return self.exit[job.jobid]

    def terminate(self, job):
        if job.jobid != "101":
            raise JobNotFound(str(job))
        self.terminated.append(job.jobid)

    def release(self, job):
        raise JobNotFound(f"No job {job} is known.")

    def events(self, job):
        return f"JobId={job.jobid} JobState=RUNNING"

    def tail(self, job, lines):
        return "".join(f"line {i}\n" for i in range(lines))

    def info(self, job):
        return JobInfo(url="https://node1:8443/")

    def pvcls(self, path, details):
        if path.startswith("secret"):
            raise Forbidden("qs.path leaves the data root.")
        return [DirEntry(f"{path}/sub".lstrip("/"), True, 1700000000, 4096),
                DirEntry(f"{path}/f.txt".lstrip("/"), False, 1700000001, 12)]

    def check(self):
        self._up()
        return "in memory"


class SecretExecutor(ShellExecutor):
    secret_names = frozenset({"MY_PASSWORD"})


@pytest.fixture
def connector():
    return InMemoryConnector(Settings.from_env({}))


def make_api(connector, env=None, auth=None, executor_class=ShellExecutor):
    settings = Settings.from_env(env or {})
    app = create_app(settings, connector, executor_class(settings), executor_name="shell")
    return ApiClient.for_app(app, auth=auth)


@pytest.fixture
def api(connector):
    return make_api(connector)


JOB = {"name": "job-1", "number": 7, "jobid": "101"}


def test_live_and_nodes(api):
    assert api.get("/live").json == {"status": "OK"}
    assert api.get("/nodes").json is True


def test_ready_says_ok_and_the_version_without_asking_the_cluster(api, connector):
    """The chart's readiness probe greps for OK; a cluster outage must not take replicas out."""
    connector.down = True
    answer = api.get("/ready")
    assert (answer.status, answer.json) == (200, {"status": "OK", "version": dssr_core.__version__})
    assert api.get("/running").status == 503


def test_gc_says_ok_or_bad(api, connector):
    assert api.get("/gc").json == {"status": "OK"}
    connector.down = True
    answer = api.get("/gc")
    assert (answer.status, answer.json) == (500, {"status": "BAD"})


def test_submit_answers_jobid_and_script(api, connector):
    answer = api.submit("job-1", shell_template('echo "${HOME}"', cores=4), nodes=2)
    assert answer.status == 200
    jobid, script = answer.json
    assert jobid == "101"
    assert 'echo "${HOME}"' in script
    assert "export DSSR_NODES=2" in script
    submitted = connector.submissions[0]
    assert (submitted.facts.nodes, submitted.facts.cores, submitted.held) == (2, 4, False)


def test_submit_hands_the_bearer_email_to_the_connector(api, connector):
    token = jwt.encode({"email": "JDoe@Example.org"}, "k" * 32, algorithm="HS256")
    assert api.submit("job-1", shell_template("true"), bearer=token).status == 200
    assert connector.submissions[0].user_email == "jdoe@example.org"
    assert token not in repr(connector.submissions[0])


def test_held_submission(api, connector):
    assert api.submit("job-1", shell_template("true"), hold=True).status == 200
    assert connector.submissions[0].held is True


def test_fscript_has_no_secret_lines(connector):
    api = make_api(connector, executor_class=SecretExecutor)
    template = shell_template("true").replace("JARVICE_CPU_CORES", "MY_PASSWORD=hunter2\nJARVICE_CPU_CORES")
    jobid, fscript = api.submit("job-1", template).json
    assert "hunter2" not in fscript
    assert "hunter2" in connector.submissions[0].script


@pytest.mark.parametrize("args,field", [
    ({"number": 1, "nodes": 1, "hpc_script": {}}, "args.name"),
    ({"name": "a", "number": -1, "nodes": 1, "hpc_script": {}}, "args.number"),
    ({"name": "a", "number": 1, "nodes": 0, "hpc_script": {}}, "args.nodes"),
    ({"name": "a", "number": 1, "nodes": "2x", "hpc_script": {}}, "args.nodes"),
    ({"name": "a", "number": 1, "nodes": 1, "hpc_script": "x"}, "args.hpc_script"),
    ({"name": "a", "number": 1, "nodes": 1, "hpc_script": {"singularity": "eA=="}},
     "no script for the executor 'shell'"),
    ({"name": "a", "number": 1, "nodes": 1, "hpc_script": {"shell": "not base64!"}}, "base64"),
    ({"name": "a", "number": 1, "nodes": 1, "hpc_script": {"shell": "eyB4IH0="}}, "single '{'"),
    ({"name": "a", "number": 1, "nodes": 1, "hold": "yes", "hpc_script": {"shell": "eA=="}}, "args.hold"),
    ({"name": "a", "number": 1, "nodes": 1, "bearer": "not.a.jwt", "hpc_script": {"shell": "eA=="}},
     "bearer"),
    ({"name": "a", "number": 1, "nodes": 1, "bearer": 5, "hpc_script": {"shell": "eA=="}}, "bearer"),
])
def test_bad_submissions_are_400_naming_the_field(api, connector, args, field):
    answer = api.post("/submit", args)
    assert answer.status == 400
    assert field in answer.json["description"]
    assert connector.submissions == []


def test_scheduler_rejection_carries_its_message(api):
    template = shell_template("true").replace(
        "JARVICE_CPU_CORES", 'JOBOBJ_DEVICES=["partition=nope"]\nJARVICE_CPU_CORES')
    answer = api.submit("job-1", template)
    assert answer.status == 422
    assert "invalid partition specified: nope" in answer.json["description"]


@pytest.mark.parametrize("body,content_type,message", [
    ("", "application/x-www-form-urlencoded", "args is missing"),
    ("args=%7B", "application/x-www-form-urlencoded", "not valid JSON"),
    ("args=%5B1%5D", "application/x-www-form-urlencoded", "JSON object"),
    ("args=1&args=2", "application/x-www-form-urlencoded", "once"),
    ('{"args": {}}', "application/json", "x-www-form-urlencoded"),
])
def test_malformed_forms(connector, body, content_type, message):
    import falcon.testing

    settings = Settings.from_env({})
    app = create_app(settings, connector, ShellExecutor(settings), executor_name="shell")
    client = falcon.testing.TestClient(app)
    answer = client.simulate_post("/runstatus", body=body, content_type=content_type)
    assert answer.status_code == 400
    assert message in answer.json["description"]


def test_oversized_body_is_refused(connector):
    api = make_api(connector, {"DSSR_MAX_BODY_BYTES": "2048"})
    answer = api.post("/submit", {"name": "a", "number": 1, "nodes": 1, "hpc_script": {"shell": "A" * 4000}})
    assert answer.status == 413
    assert "DSSR_MAX_BODY_BYTES" in answer.json["description"]


def test_listings(api):
    assert api.get("/running").json == [["run-1", "101"]]
    assert api.get("/queued").json == [["wait-1", "102"]]


def test_runstatus_known_waiting_and_unknown(api):
    assert api.post("/runstatus", JOB).json == [["node1", "node2"], "25:01:01", "job-1/7/101", None]
    assert api.post("/runstatus", {**JOB, "jobid": "102"}).json == [[], "00:00:00", "job-1/7/102", None]
    assert api.post("/runstatus", {**JOB, "jobid": "555"}).json == [None, None, None, None]


@pytest.mark.parametrize("state,rc", [
    ("COMPLETED", 0), ("FAILED", 1), ("NODE_FAIL", 1), ("OUT_OF_MEMORY", 1),
    ("CANCELLED", -15), ("CANCELLED by 1000", -15), ("DEADLINE", -15), ("PREEMPTED", -15),
    ("TIMEOUT", -9), ("BOOT_FAIL", -9),
])
def test_exitstatus_maps_states(api, connector, state, rc):
    connector.exit["101"] = ExitStatus(state, 3, 3725, "tail of output\n")
    assert api.post("/exitstatus", JOB).json == [
        rc, "01:02:05",
        ["tail of output\n", f"<< termination state: {state} -- see STDOUT for job errors >>"]]


def test_exitstatus_of_unknown_job(api):
    assert api.post("/exitstatus", JOB).json == [
        -9, "00:00:00", ["", "<< termination state: UNKNOWN -- see STDOUT for job errors >>"]]


def test_terminate_is_best_effort_release_says_what_is_wrong(api):
    assert api.post("/terminate", {**JOB, "jobid": "555"}).json is True
    answer = api.post("/release", JOB)
    assert answer.status == 404
    assert "job-1/7/101" in answer.json["description"]


def test_events_and_online(api):
    assert api.post("/events", JOB).json == "JobId=101 JobState=RUNNING"
    assert api.post("/online", {"host": "node1", "status": "up"}).json is True
    assert api.post("/online", {"status": "up"}).status == 400


@pytest.mark.parametrize("endpoint", ["/running", "/queued"])
def test_unreachable_cluster_is_503_never_an_empty_list(api, connector, endpoint):
    connector.down = True
    answer = api.get(endpoint)
    assert answer.status == 503
    assert "connection refused" in answer.json["description"]


@pytest.mark.parametrize("endpoint", ["/runstatus", "/exitstatus"])
def test_unreachable_cluster_is_503_for_job_calls(api, connector, endpoint):
    connector.down = True
    assert api.post(endpoint, JOB).status == 503


def test_requests(api):
    base = "/request/job-1/7/101"
    assert (api.post(f"{base}/ping", {"qs": {}}).status, api.post(f"{base}/ping").text) == (200, "")
    assert api.post(f"{base}/connect", {"qs": {}}).status == 200
    assert api.post(f"{base}/info", {"qs": {}}).json == {
        "about": "", "help": "", "url": "https://node1:8443/", "actions": {}}
    tail = api.post(f"{base}/tail", {"qs": {"lines": ["3"]}})
    assert (tail.text, tail.content_type.split(";")[0]) == ("line 0\nline 1\nline 2\n", "text/plain")
    assert api.post(f"{base}/tail", {"qs": {"lines": ["x"]}}).status == 400
    assert api.post(f"{base}/screenshot", {"qs": {}}).status == 404
    assert api.post("/request/bad;name/7/101/ping", {"qs": {}}).status == 400


@pytest.mark.parametrize("path,logged", [
    ("/request/job-1/7/101/dance", "request 'dance' for job job-1/7/101"),
    ("/request/job-1/7/101", "request without a method for job job-1/7/101"),
    ("/request/job-1/7/101/", "request without a method for job job-1/7/101"),
])
def test_request_without_a_known_method_is_200_and_empty(api, caplog, path, logged):
    """As the original: upstream's portal shows a 4xx answer as an error."""
    with caplog.at_level(logging.INFO, logger="dssr_core.connector"):
        answer = api.post(path, {"qs": {}})
    assert (answer.status, answer.text) == (200, "")
    assert logged in caplog.text


def test_events_default_is_a_404_that_says_why(connector):
    class WithoutEvents(InMemoryConnector):
        events = dssr_core.Connector.events

    answer = make_api(WithoutEvents(Settings.from_env({}))).post("/events", JOB)
    assert answer.status == 404
    assert "cannot tell what the scheduler says of job job-1/7/101" in answer.json["description"]


def test_shutdown_request_terminates(api, connector):
    assert api.post("/request/job-1/7/101/shutdown", {"qs": {}}).status == 200
    assert connector.terminated == ["101"]
    assert api.post("/request/job-1/7/555/abort", {"qs": {}}).status == 404


def test_pvcls_listing_and_details(api):
    plain = api.post("/request/pvcls", {"qs": {"path": ["/data/proj"]}})
    assert plain.text == "/data/proj/sub/\n/data/proj/f.txt\n"
    detailed = api.post("/request/pvcls", {"qs": {"path": ["/proj"], "details": ["true"]}})
    assert detailed.text == "1700000000 4096 /data/proj/sub/\n1700000001 12 /data/proj/f.txt\n"


@pytest.mark.parametrize("path", ["/../etc", "/data/../../etc", "a/../../b"])
def test_pvcls_refuses_parent_paths(api, path):
    answer = api.post("/request/pvcls", {"qs": {"path": [path]}})
    assert answer.status == 403
    assert ".." in answer.json["description"]


def test_unexpected_failure_is_500_without_a_trace(connector):
    def explode(submission):
        raise RuntimeError("internal detail /etc/secret")

    connector.submit = explode
    answer = make_api(connector).submit("job-1", shell_template("true"))
    assert answer.status == 500
    assert "secret" not in answer.text
    assert "Traceback" not in answer.text


class TestBasicAuth:
    ENV = {"JARVICE_SCHED_SERVER_KEY": "slurm-downstream:Pass1234"}

    def test_refuses_callers_without_the_key(self, connector):
        api = make_api(connector, self.ENV)
        answer = api.get("/running")
        assert answer.status == 401
        assert "JARVICE_SCHED_SERVER_KEY" in answer.json["description"]
        assert make_api(connector, self.ENV, auth=("slurm-downstream", "wrong")).get("/queued").status == 401
        assert api.post("/runstatus", JOB).status == 401

    @pytest.mark.parametrize("probe", ["/live", "/ready"])
    def test_probes_are_exempt(self, connector, probe):
        assert make_api(connector, self.ENV).get(probe).status == 200

    def test_accepts_the_key(self, connector):
        api = make_api(connector, self.ENV, auth=("slurm-downstream", "Pass1234"))
        assert api.get("/running").json == [["run-1", "101"]]

    def test_off_when_unset(self, connector):
        assert make_api(connector).get("/running").status == 200


def test_one_access_line_per_request_without_secrets(connector, caplog):
    api = make_api(connector, TestBasicAuth.ENV, auth=("slurm-downstream", "Pass1234"))
    with caplog.at_level(logging.INFO, logger="dssr_core.access"):
        api.get("/running")
        api.post("/runstatus", JOB)
    lines = [r.getMessage() for r in caplog.records if r.name == "dssr_core.access"]
    assert len(lines) == 2
    assert lines[0].startswith("GET /running 200 ")
    assert lines[1].startswith("POST /runstatus 200 ")
    assert "Pass1234" not in caplog.text
    assert base64.b64encode(b"slurm-downstream:Pass1234").decode() not in caplog.text


def test_upstreams_secret_facts_never_come_back(api):
    secrets = 'JOBOBJ_CTRSECRET=c2VjcmV0\nJOBOBJ_DOCKER_SECRET={{"password": "pw"}}\n'
    template = shell_template("true").replace("JARVICE_CPU_CORES", secrets + "JARVICE_CPU_CORES")
    jobid, fscript = api.submit("job-1", template).json
    assert "c2VjcmV0" not in fscript
    assert '"pw"' not in fscript
