"""Two replicas, one job: the same /submit sent to two real ``dssr serve`` processes at the same
instant gives ONE Slurm job, and both answer its id; their status answers agree.

Each round releases two threads from a barrier, each sending one request to a different server,
then counts the jobs of that name on the cluster with ``squeue`` (every state, as root,
independent of DSSR). slurm-cli must never make a second job. slurmrestd may make a twin (it
has no lock to hold across its check and its submit); it must be cancelled before it answers,
never run, and leave exactly one live job. The jobs are held: they never take the node.
"""

import subprocess
import threading
import time
import uuid

import attrs
import pytest
from rest_fixtures import api_of
from slurm_helpers import KIRBY, SHARED, slurm, squeue_field, template

from dssr_core.models import JobFacts, Submission
from dssr_core.testing import wait_until
from dssr_slurm.commands import programs as commands
from dssr_slurm.commands.programs import sbatch_arguments
from dssr_slurm.jobspec import job_spec
from dssr_slurm.rest.versions import ADAPTERS

pytest_plugins = ["rest_fixtures"]
pytestmark = pytest.mark.slow

ROUNDS = 20
PREFIX = {"slurm-cli": "cli-race", "slurmrestd": "rest-race"}
LIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"}


@pytest.fixture(params=["slurm-cli", "slurmrestd"])
def replicas(request, dssr_server, slurm_env, rest_env):
    """Two ``dssr serve`` processes of one connector on the test cluster (separate processes,
    ports and SSH connections, as two pods behind one Service)."""
    env = {"slurm-cli": slurm_env, "slurmrestd": rest_env}[request.param]
    env = {**env, "JARVICE_SLURM_STATUS_INTERVAL": "0.2"}
    return request.param, [dssr_server(env).api(), dssr_server(env).api()]


def jobs_named(name: str) -> list[tuple[str, str]]:
    """``(jobid, state)`` of every job Slurm has of this name, ended ones included, as root."""
    done = slurm("squeue", "-h", "-a", "-t", "all", f"--name=jarvice_{name}", "-o", "%i %T")
    done.check_returncode()
    return sorted(tuple(line.split()) for line in done.stdout.splitlines())


def got_a_node(jobid: str) -> bool:
    """Whether accounting saw the job get a node (a twin must be cancelled while it waits)."""
    done = slurm("sacct", "-X", "-n", "-P", "-j", jobid, "-o", "NodeList")
    done.check_returncode()
    return any(line.strip() not in ("", "None assigned") for line in done.stdout.splitlines())


def simultaneous_submits(apis, name: str, bearer: str | None):
    barrier = threading.Barrier(len(apis))
    answers = [None] * len(apis)
    script = template("sleep 600", devices=SHARED)

    def send(index):
        barrier.wait()
        answers[index] = apis[index].submit(name, script, hold=True, bearer=bearer)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(apis))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def status_of(api, name: str, jobid: str):
    job = {"name": name, "number": 1, "jobid": jobid}
    queued = sorted(entry for entry in api.get("/queued").json if entry[0] == name)
    return queued, api.post("/runstatus", job).json, api.post("/exitstatus", job).json


def test_two_replicas_submitting_the_same_job_at_once_make_one_job(replicas):
    connector, apis = replicas
    submitted, twins = [], 0
    started = time.monotonic()
    try:
        for round_number in range(ROUNDS):
            name = f"{PREFIX[connector]}-{round_number}-{uuid.uuid4().hex[:6]}"
            bearer = KIRBY if round_number % 2 == 0 else None  # kirby, and the service account
            answers = simultaneous_submits(apis, name, bearer)
            jobs = jobs_named(name)
            submitted += [jobid for jobid, _ in jobs]
            assert [answer.status for answer in answers] == [200, 200], [a.text for a in answers]
            jobid = answers[0].json[0]
            assert answers[1].json[0] == jobid, f"round {round_number}: {answers[0].text} {answers[1].text}"
            live = [job for job in jobs if job[1] in LIVE]
            assert live == [(jobid, "PENDING")], f"round {round_number}: {jobs}"
            if connector == "slurm-cli":
                assert jobs == live, f"round {round_number}: slurm-cli made a second job: {jobs}"
            for twin, state in jobs:
                if twin != jobid:
                    twins += 1
                    assert state == "CANCELLED" and int(twin) > int(jobid) and not got_a_node(twin)
            assert squeue_field(jobid, "%u") == ("kirby" if bearer else "jarvice")
            first, second = (status_of(api, name, jobid) for api in apis)
            assert first == second and first[0] == [[name, jobid]], f"round {round_number}: {first} {second}"
    finally:
        if submitted:
            slurm("scancel", *submitted)
    print(f"\n{connector}: {ROUNDS} rounds of two simultaneous submits, one live job each, "
          f"{twins} twins cancelled, {time.monotonic() - started:.1f} s")


@pytest.mark.one_slurm_version  # the lock on the login node: sbatch is never reached
def test_a_submit_lock_held_too_long_answers_503(dssr_server, slurm_env):
    """Someone holds kirby's lock file on the login node: the submission waits, then says why."""
    api = dssr_server({**slurm_env, "JARVICE_SLURM_COMMAND_TIMEOUT": "2"}).api()
    name = f"cli-race-locked-{uuid.uuid4().hex[:6]}"
    lock = f"/home/kirby/{commands.submit_lock(name)}"
    subprocess.run(["su", "kirby", "-c", f"mkdir -p ~/{commands.LOCK_DIR} && touch {lock}"], check=True)
    holder = subprocess.Popen(["flock", lock, "sleep", "30"])
    try:
        wait_until(lambda: subprocess.run(["flock", "-n", lock, "true"]).returncode == 1, 5,
                   what="the lock to be held")
        answer = api.submit(name, template("true", devices=SHARED), hold=True, bearer=KIRBY)
    finally:
        holder.kill()
        holder.wait()
    assert answer.status == 503, answer.text
    assert f"Another submission held the submit lock ~/{commands.submit_lock(name)} on the login node" \
        in answer.json["description"]
    assert jobs_named(name) == []


class LateCheck:
    """Stands in for the window between slurmrestd's name check and its submit: the check of
    the connector under test answers what it would have seen just BEFORE the other replica's
    submit landed (nothing), then, after the submit, what it sees (``then``: the real list, or
    a failure). Slurm, slurmrestd and everything else are real."""

    def __init__(self, connector, then="real"):
        self.real = connector._live_jobs_named
        self.then = then
        self.calls = 0
        connector._live_jobs_named = self

    def __call__(self, name, version, *submitted):
        self.calls += 1
        if self.calls == 1:
            return []
        if self.then == "fail":
            from dssr_core.errors import ClusterUnavailable

            raise ClusterUnavailable("slurmrestd did not answer (the test says so)")
        return self.real(name, version, *submitted)


@pytest.fixture
def rest_api_for(rest_env):
    return lambda connector: api_of(connector, rest_env)


def test_slurmrestd_cancels_its_twin_and_answers_the_first_job(make_rest_connector, rest_api_for):
    first_replica, second_replica = make_rest_connector(), make_rest_connector()
    name = f"rest-race-twin-{uuid.uuid4().hex[:6]}"
    script = template("sleep 600", devices=SHARED)
    first = rest_api_for(first_replica).submit(name, script, hold=True, bearer=KIRBY).json[0]
    late = LateCheck(second_replica)
    try:
        answer = rest_api_for(second_replica).submit(name, script, bearer=KIRBY)
        jobs = jobs_named(name)
    finally:
        slurm("scancel", *[jobid for jobid, _ in jobs_named(name)])
    assert late.calls == 2 and answer.status == 200 and answer.json[0] == first
    (twin, state), = [job for job in jobs if job[0] != first]
    assert state == "CANCELLED" and int(twin) > int(first) and not got_a_node(twin)
    assert dict(jobs)[first] == "PENDING"


def test_a_twin_left_by_a_failed_check_waits_for_the_first_job(make_rest_connector, rest_api_for):
    """What remains: when the check after the submit fails, the twin stays, but singleton keeps
    it from starting while the first job of its name is queued; once the first ends, it may start.

    What holds the twin is its dependency, squeue's ``%E``: ``singleton(unfulfilled)`` on every
    version, and no longer once the first job has ended. The reason (``%r``) is the one of several
    that Slurm picks to show, so it is only reported.
    """
    first_replica, second_replica = make_rest_connector(), make_rest_connector()
    name = f"rest-race-left-{uuid.uuid4().hex[:6]}"
    first = rest_api_for(first_replica).submit(name, template("sleep 600", devices=SHARED), hold=True,
                                               bearer=KIRBY).json[0]
    LateCheck(second_replica, then="fail")
    try:
        twin = rest_api_for(second_replica).submit(name, template("sleep 600", devices=SHARED),
                                                   bearer=KIRBY).json[0]
        assert int(twin) > int(first)
        # Not held: without singleton the scheduler would start it, or give another reason.
        reason = wait_until(lambda: (state := squeue_field(twin, "%T %r")) not in ("PENDING None", "")
                            and state, 30, what="the scheduler to look at the twin")
        assert squeue_field(first, "%T %r") == "PENDING JobHeldUser", "the first job is no longer queued"
        assert squeue_field(twin, "%T %E") == "PENDING singleton(unfulfilled)", reason
        assert not got_a_node(twin)
        slurm("scancel", first).check_returncode()
        wait_until(lambda: squeue_field(twin, "%E") != "singleton(unfulfilled)", 60,
                   what="the twin's singleton to be fulfilled once the first job ended")
    finally:
        slurm("scancel", *[jobid for jobid, _ in jobs_named(name)])


@pytest.mark.parametrize("version", sorted(ADAPTERS))
def test_every_slurmrestd_job_goes_in_with_singleton(version, tmp_path):
    submission = Submission(name="x", number=1, script="true", facts=JobFacts())
    spec = job_spec(submission, str(tmp_path), working_directory=str(tmp_path), singleton=True)
    assert ADAPTERS[version].submit_body("#!/bin/bash\n", spec)["job"]["dependency"] == "singleton"
    plain = ADAPTERS[version].submit_body("#!/bin/bash\n", attrs.evolve(spec, singleton=False))
    assert "dependency" not in plain["job"]
    assert "--dependency=singleton" in sbatch_arguments(spec)
