"""End to end: ``dssr serve`` with the gridengine connector on the real Grid Engine, driven over
HTTP the way upstream drives it; two replicas; hostile values; the cluster's sshd and qmaster
stopped (the cluster is this suite's own)."""

import json
import os
import socket
import threading
import uuid
from urllib.parse import quote

import jwt
import pytest
import requests
from gridengine_helpers import in_root

from dssr_core.models import JobFacts, JobRef, Submission
from dssr_core.testing import wait_until
from dssr_core.testing.plugin import DssrServer, find_free_port, wait_serving

pytestmark = pytest.mark.slow
MARKER = f"/tmp/dssr-ge-hostile-{uuid.uuid4().hex[:8]}"
TOUCH = f"touch {MARKER}"
INJECTIONS = [f";{TOUCH}", f"$({TOUCH})", f"`{TOUCH}`", f"\n{TOUCH}", f"'; {TOUCH}; '", f"&& {TOUCH}",
              f"| {TOUCH}", f"-o{MARKER}"]


def bearer_for(email: str) -> str:
    return jwt.encode({"email": email}, "any-key-will-do-dssr-does-not-check-it", algorithm="HS256")


KIRBY, MARIO = bearer_for("kirby@example.org"), bearer_for("mario@example.org")
SHARED = ["exclusive=False"]


def unique(label: str) -> str:
    return f"ge-{label}-{uuid.uuid4().hex[:8]}"


def template(body: str, *, cores: int = 1, devices: list[str] | None = SHARED, extra: str = "") -> str:
    lines = ["#!/bin/bash", "{DOWNSTREAM_PARAMETERS}", f"JARVICE_CPU_CORES={cores}"]
    if devices is not None:
        lines.append("JOBOBJ_DEVICES=" + json.dumps(devices))
    if extra:
        lines.append(extra)
    lines.append(body.replace("{", "{{").replace("}", "}}"))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def server(ge_env, tmp_path_factory):
    """One ``dssr serve`` that the module's tests share."""
    server = DssrServer(ge_env, tmp_path_factory.mktemp("ge-e2e") / "dssr-serve.log").start()
    yield server
    server.stop()
    assert not os.path.exists(MARKER), "a hostile value ran a command"


@pytest.fixture(scope="module")
def api(server):
    return server.api()


def job_of(name: str, answer) -> dict:
    assert answer.status == 200, answer.text
    return {"name": name, "number": 1, "jobid": answer.json[0]}


def listed(api, job) -> bool:
    entry = [job["name"], job["jobid"]]
    return any(entry in api.get(f"/{listing}").json for listing in ("queued", "running"))


def wait_ended(api, job, timeout=90):
    wait_until(lambda: not listed(api, job), timeout, what=f"{job} to end")


def exitstatus(api, job):
    answer = api.post("/exitstatus", job)
    assert answer.status == 200, answer.text
    return answer.json


def test_jobs_run_as_the_mapped_users_with_the_mapping_and_their_exit_codes(api, ge_env):
    body = ('echo "user=$(id -un)"; for v in JOB_JOBID JOB_NNODES JOB_NTASKS PROCESS_PROCID; do '
            'echo "$v=${!v}"; done; exit "$WANTED"')
    jobs = {}
    for user, bearer, wanted in (("kirby", KIRBY, 0), ("mario", MARIO, 3), ("jarvice", None, 0)):
        name = unique(user)
        answer = api.submit(name, template(f"WANTED={wanted}; {body}", cores=2), bearer=bearer)
        jobs[user] = (job_of(name, answer), wanted)
    for user, (job, wanted) in jobs.items():
        wait_ended(api, job)
        rc, _, (output, banner) = exitstatus(api, job)
        state = "COMPLETED" if wanted == 0 else "FAILED"
        assert (rc, state in banner) == (0 if wanted == 0 else 1, True), banner
        assert {f"user={user}", f"JOB_JOBID={job['jobid']}", "JOB_NNODES=1", "JOB_NTASKS=2",
                "PROCESS_PROCID=0"} <= set(output.splitlines()), output
    scratch = ge_env["JARVICE_JOB_SCRATCH_DIR"]
    assert not [f for f in os.listdir(scratch) if any(job["name"] in f for job, _ in jobs.values())]


def test_init_report_check_events_info_and_data_listing(server, api, ge_env):
    log = wait_until(lambda: "Init done." in server.log() and server.log(), 10, what="the init report")
    assert "connector: gridengine (dssr_gridengine 0.2.0)" in log, log
    assert "users ID mapping: " + ge_env["JARVICE_SLURM_ID_MAPPING_FILE"] + " with 2 users" in log
    assert "cores -> -pe smp" in log and "first connection: OK" in log
    assert ge_env["JARVICE_SLURM_SSH_PKEY"][:40] not in log
    check = api.get("/check")
    assert check.status == 200 and "SGE 8.1.9 as jarvice; queues: all.q" in check.text, check.text
    name = unique("events")
    job = job_of(name, api.submit(name, template("echo line-one; echo line-two; sleep 60"), bearer=KIRBY))
    wait_until(lambda: [name, job["jobid"]] in api.get("/running").json, 60, what="the job to run")
    events = api.post("/events", job).json
    assert f"job_number:                 {job['jobid']}" in events
    assert "owner:                      kirby" in events
    tail = wait_until(lambda: _tail(api, job), 30, what="output")
    assert tail == "line-two\n"
    info = api.post(f"/request/{name}/1/{job['jobid']}/info", {"qs": {}}).json
    assert info["about"].startswith(f"Grid Engine job {job['jobid']} of kirby: RUNNING on ")
    listing = api.post("/request/pvcls", {"qs": {"path": ["/"], "details": ["true"]}})
    assert listing.status == 200 and f" /data/jarvice_{name}.{job['jobid']}.out" in listing.text
    assert api.post("/terminate", job).json is True
    wait_ended(api, job)
    rc, _, (output, banner) = exitstatus(api, job)
    assert rc == -15 and "CANCELLED" in banner and "line-one" in output


def _tail(api, job):
    answer = api.post(f"/request/{job['name']}/1/{job['jobid']}/tail", {"qs": {"lines": ["1"]}})
    return answer.text if answer.status == 200 and "two" in answer.text else None


def test_what_grid_engine_cannot_do_is_refused_with_a_sentence(api):
    name = unique("refused")
    for answer, words in (
        (api.submit(name, template("true"), nodes=2, bearer=KIRBY), "runs a job on one host"),
        (api.submit(name, template("true", extra="JOBOBJ_GPUS=1"), bearer=KIRBY), "no standard GPU resource"),
        (api.submit(name, template("true", devices=["sbatch_qos=high"]), bearer=KIRBY), "takes no sbatch_"),
        (api.submit(name, template("true", devices=["partition=no.q"]), bearer=KIRBY), "Grid Engine refused"),
        (api.submit(name, template("true"), bearer=bearer_for("stranger@example.org")), "no cluster account"),
    ):
        assert 400 <= answer.status < 500 and words in answer.json["description"], answer.text
    assert name not in api.job_names("queued")


def test_hostile_names_ids_and_devices_are_refused_and_run_nothing(api):
    for text in INJECTIONS:
        for answer in (api.submit(f"job{text}", template("true"), bearer=KIRBY),
                       api.post("/runstatus", {"name": "ge-hostile", "number": 1, "jobid": f"12{text}"}),
                       api.post(f"/request/ge-hostile/1/{quote('12' + text, safe='')}/tail", {"qs": {}}),
                       api.submit(unique("hostile"), template("true", devices=[f"partition=x{text}"]),
                                  bearer=KIRBY)):
            assert 400 <= answer.status < 500, (text, answer.status, answer.text)
    assert not os.path.exists(MARKER)


def test_two_replicas_submitting_one_name_at_once_make_one_job(api, ge_env, tmp_path):
    second = DssrServer(ge_env, tmp_path / "replica.log").start()
    try:
        apis, name = [api, second.api()], unique("twins")
        barrier, answers = threading.Barrier(2), [None, None]

        def send(index):
            barrier.wait()
            answers[index] = apis[index].submit(name, template("sleep 600"), hold=True, bearer=KIRBY)

        threads = [threading.Thread(target=send, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        jobids = {job_of(name, answer)["jobid"] for answer in answers}
        assert len(jobids) == 1, answers
        qstat = in_root(ge_env, "qstat", "-u", "*", "-xml").stdout
        assert qstat.count(f"<JB_name>jarvice_{name}</JB_name>") == 1, qstat
        job = {"name": name, "number": 1, "jobid": jobids.pop()}
        assert api.post("/terminate", job).json is True
        wait_ended(api, job)
        assert exitstatus(api, job)[0] == -15  # deleted while held: no accounting, qmaster's word
    finally:
        second.stop()


@pytest.mark.parametrize("daemon", ["sshd", "qmaster"])
def test_an_unreachable_cluster_answers_503_never_an_empty_list(api, daemons, daemon):
    name = unique("outage")
    held = job_of(name, api.submit(name, template("echo survived"), hold=True, bearer=KIRBY))
    daemons.stop(daemon)
    try:
        for listing in ("/queued", "/running"):
            answer = wait_until(lambda path=listing: (a := api.get(path)).status != 200 and a, 30,
                                what=f"{listing} to fail")
            assert answer.status == 503, answer.text
            words = "over SSH" if daemon == "sshd" else "Grid Engine does not answer"
            assert words in answer.json["description"], answer.text
        assert api.post("/runstatus", held).status == 503
    finally:
        daemons.start(daemon)
    wait_until(lambda: [name, held["jobid"]] in api.get("/queued").json, 60, what="the held job again")
    assert api.post("/release", held).json is True
    wait_ended(api, held)
    rc, _, (output, _) = exitstatus(api, held)
    assert (rc, output) == (0, "survived\n")


def test_an_interactive_job_is_found_by_its_number_with_its_host_and_port(make_connector):
    """The proxy's lookup: the job context (qsub -ac) gives the port and number of a running job."""
    connector = make_connector()
    number = int(uuid.uuid4().int % 1_000_000)
    submission = Submission(name=unique("web"), number=number, script="#!/bin/bash\nsleep 60\n",
                            facts=JobFacts(exclusive=False), service_port=2228)
    job = JobRef(submission.name, number, connector.submit(submission).jobid)
    try:
        endpoint = wait_until(lambda: connector.interactive_endpoint(number), 60, what="the job to run")
        assert (endpoint.job, endpoint.node, endpoint.port) == (job, socket.gethostname(), 2228)
        assert endpoint.via.startswith("jarvice@127.0.0.1:")
        assert connector.interactive_endpoint(number + 1) is None
    finally:
        connector.terminate(job)


def test_terminate_sends_term_before_kill(api):
    """-notify with the cluster's NOTIFY_KILL=TERM: the job hears TERM and may clean up."""
    name = unique("term")
    job = job_of(name, api.submit(name, template("trap 'echo got-term; exit 0' TERM; echo started\n"
                                                 "while :; do sleep 0.2; done"), bearer=KIRBY))
    wait_until(lambda: "started" in (api.request(job, "tail").text or ""), 60, what="the job to start")
    assert api.post("/terminate", job).json is True
    wait_ended(api, job)
    rc, _, (output, banner) = exitstatus(api, job)
    assert (rc, "CANCELLED" in banner, "got-term" in output.split()) == (-15, True, True), (output, banner)


def test_an_interactive_job_is_served_through_dssrs_proxy(ge_env, tmp_path):
    """A web service in a Grid Engine job, reached only through DSSR (an SSH direct-tcpip channel
    via the login node), at the job's path-based URL."""
    service_port = find_free_port()
    env = {**ge_env, "DSSR_SHELL_SERVICE_PORT": str(service_port), "DSSR_PROXY_CHECK_INTERVAL": "0.5"}
    server = DssrServer(env, tmp_path / "proxy.log")
    server.env["JARVICE_JOBS_DOMAIN"] = f"http://127.0.0.1:{server.port}/job$"
    api = server.start().api()
    number = int(uuid.uuid4().int % 900_000) + 100_000
    name = unique("web")
    answer = api.submit(name, template('cd "$HOME" && exec python3 -m http.server "$JARVICE_SERVICE_PORT"',
                                       extra="JOBOBJ_INTERACTIVE=true"), number=number, bearer=KIRBY)
    job = {**job_of(name, answer), "number": number}
    try:
        info = f"/request/{name}/{number}/{job['jobid']}/info"
        url = wait_until(lambda: api.post(info, {"qs": {}}).json["url"], 60, what="the job's url")
        assert url == f"http://127.0.0.1:{server.port}/job{number}"
        page = wait_serving(f"{url}/", 60, 10)
        assert page.status_code == 200 and "Directory listing" in page.text, page.text[:300]
        assert requests.get(f"http://127.0.0.1:{server.port}/job{number + 1}/", timeout=10).status_code == 404
    finally:
        api.post("/terminate", job)
        server.stop()
