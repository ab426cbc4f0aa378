"""End to end: ``dssr serve`` with the slurm-cli connector on the real cluster, driven over HTTP
the way upstream drives it."""

import os
import uuid

import pytest
from slurm_helpers import (
    KIRBY,
    MARIO,
    SHARED,
    assert_interactive_job_gets_its_url,
    assert_the_job_spec_reaches_slurm,
    bearer_for,
    exitstatus,
    job_of,
    squeue_field,
    submit_as_each_user,
    template,
    wait_ended,
    wait_gone_from_squeue,
    wait_output,
    wait_running,
)

from dssr_core.testing import wait_until
from dssr_core.testing.plugin import DssrServer

pytestmark = pytest.mark.slow


def unique(label: str) -> str:
    return f"cli-{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def api(slurm_env, tmp_path_factory):
    """One ``dssr serve`` that the module's tests share (one per Slurm version): starting it is not
    what they test, test_init_report_events_tail_and_data_listing does."""
    server = DssrServer(slurm_env, tmp_path_factory.mktemp("e2e") / "dssr-serve.log").start()
    yield server.api()
    server.stop()


def test_jobs_run_as_the_mapped_users_and_see_the_scheduler_mapping(api, slurm_env):
    body = ('echo "user=$(id -un)"; for v in PROCESS_PROCID PROCESS_NODENAME JOB_JOBID JOB_JOB_NODELIST '
            'JOB_JOB_FORMATED_NODELIST JOB_NNODES JOB_NTASKS JOB_SUBMIT_DIR JOB_GPUS_PER_NODE; do '
            'echo "$v=${!v}"; done; sleep 3')
    jobs = submit_as_each_user(api, body, unique)
    for user, job in jobs.items():
        wait_ended(api, job)
        rc, _, (output, banner) = exitstatus(api, job)
        assert rc == 0, output
        lines = set(output.splitlines())
        home = os.path.expanduser(f"~{user}")
        assert {f"user={user}", "PROCESS_PROCID=0", "PROCESS_NODENAME=localhost", f"JOB_JOBID={job['jobid']}",
                "JOB_JOB_NODELIST=localhost", "JOB_JOB_FORMATED_NODELIST=localhost", "JOB_NNODES=1",
                "JOB_NTASKS=1", f"JOB_SUBMIT_DIR={home}", "JOB_GPUS_PER_NODE=0"} <= lines, output
    scratch = slurm_env["JARVICE_JOB_SCRATCH_DIR"]
    assert not [f for f in os.listdir(scratch) if any(job["name"] in f for job in jobs.values())]


def test_cores_become_tasks_and_a_script_runs_once_per_node(api):
    name = unique("cores")
    job = job_of(name, api.submit(name, template('echo "rank $PROCESS_PROCID of $JOB_NTASKS"', cores=2,
                                                 devices=SHARED), bearer=KIRBY))
    wait_ended(api, job)
    rc, _, (output, _) = exitstatus(api, job)
    assert rc == 0 and output.splitlines() == ["rank 0 of 2"]


def test_held_job_released_and_running_job_terminated(api):
    held_name, long_name = unique("held"), unique("long")
    held = job_of(held_name, api.submit(held_name, template("echo released", devices=SHARED), hold=True,
                                        bearer=MARIO))
    assert squeue_field(held["jobid"], "%r") == "JobHeldUser"
    long = job_of(long_name, api.submit(long_name, template("echo started; sleep 120", devices=SHARED),
                                        bearer=KIRBY))
    wait_running(api, long)
    wait_output(api, long, "started")
    nodes, elapsed, ident, _ = api.post("/runstatus", long).json
    assert nodes == ["localhost"] and ident == f"{long_name}/1/{long['jobid']}"
    assert [held_name, held["jobid"]] in api.get("/queued").json
    assert api.post("/release", held).json is True
    assert api.post("/terminate", long).json is True
    wait_ended(api, held)
    wait_ended(api, long)
    assert exitstatus(api, held)[0] == 0
    rc, _, (output, banner) = exitstatus(api, long)
    assert rc == -15 and "started" in output and "CANCELLED" in banner


def test_exit_status_from_accounting_after_slurmctld_forgot_the_job(api):
    ok_name, bad_name = unique("acct-ok"), unique("acct-bad")
    ok = job_of(ok_name, api.submit(ok_name, template("echo from-accounting", devices=SHARED), bearer=KIRBY))
    bad = job_of(bad_name, api.submit(bad_name, template("echo failing; exit 4", devices=SHARED),
                                      bearer=MARIO))
    wait_gone_from_squeue(ok["jobid"])
    wait_gone_from_squeue(bad["jobid"])
    wrong_name = {**ok, "name": "cli-not-this-job"}  # the id is ours, the name is not: not our job
    rc, _, (output, banner) = exitstatus(api, wrong_name)
    assert (rc, output) == (-9, "") and "UNKNOWN" in banner
    rc, totaltime, (output, banner) = exitstatus(api, ok)
    assert rc == 0 and "from-accounting" in output and "COMPLETED" in banner
    rc, _, (output, banner) = exitstatus(api, bad)
    assert rc == 1 and "failing" in output and "FAILED" in banner
    events = api.post("/events", ok)
    assert events.status == 200 and f"JobId={ok['jobid']}" in events.json


def test_refusals_are_4xx_with_a_sentence(api):
    name = unique("reject")
    answer = api.submit(name, template("true", devices=["partition=nope"]), bearer=KIRBY)
    assert answer.status == 422 and "Invalid partition" in answer.json["description"]
    answer = api.submit(name, template("true"), nodes=2, bearer=KIRBY)  # the cluster has one node
    assert answer.status == 422 and "Node count specification invalid" in answer.json["description"]
    answer = api.submit(name, template("true"), bearer=bearer_for("stranger@example.org"))
    assert answer.status == 403
    assert "stranger@example.org has no cluster account" in answer.json["description"]
    answer = api.submit(name, template("true"), bearer="not.a.jwt")
    assert answer.status == 400 and "bearer" in answer.json["description"]
    answer = api.post("/runstatus", {"name": name, "number": 1, "jobid": "abc"})
    assert answer.status == 400 and "digits only" in answer.json["description"]


def test_init_report_events_tail_and_data_listing(dssr_server, slurm_env):
    server = dssr_server(slurm_env)
    api = server.api()
    log = wait_until(lambda: "Init done." in server.log() and server.log(), 10, what="the init report")
    assert "users ID mapping: " + slurm_env["JARVICE_SLURM_ID_MAPPING_FILE"] + " with 2 users" in log
    assert "first connection: OK" in log and "Init done. Entering main loop." in log
    assert slurm_env["JARVICE_SLURM_SSH_PKEY"][:40] not in log
    name = unique("events")
    job = job_of(name, api.submit(name, template("echo line-one; echo line-two; sleep 60", devices=SHARED),
                                  bearer=KIRBY))
    wait_running(api, job)
    events = api.post("/events", job).json
    assert f"JobId={job['jobid']} JobName=jarvice_{name}" in events and "UserId=kirby" in events
    tail = wait_until(lambda: _tail(api, job, 1), 30, what="output")
    assert tail == "line-two\n"
    info = api.post(f"/request/{name}/1/{job['jobid']}/info", {"qs": {}}).json
    assert info["about"].startswith(f"Slurm job {job['jobid']} of kirby: RUNNING")
    assert info["url"] == "", "a job without a service port has no url"
    listing = api.post("/request/pvcls", {"qs": {"path": ["/"], "details": ["true"]}})
    assert listing.status == 200
    assert f" /data/jarvice_{name}.{job['jobid']}.out" in listing.text
    assert api.post("/request/pvcls", {"qs": {"path": ["/nope"]}}).status == 404
    api.post("/terminate", job)
    wait_ended(api, job)
    exitstatus(api, job)


def _tail(api, job, lines):
    answer = api.post(f"/request/{job['name']}/1/{job['jobid']}/tail", {"qs": {"lines": [str(lines)]}})
    return answer.text if answer.status == 200 and "two" in answer.text else None


def test_data_listing_refuses_links_out_of_the_data_root(api, slurm_env):
    link = os.path.join(slurm_env["JARVICE_JOB_SCRATCH_DIR"], f"cli-link-{uuid.uuid4().hex[:6]}")
    os.symlink("/etc", link)
    try:
        answer = api.post("/request/pvcls", {"qs": {"path": ["/" + os.path.basename(link)]}})
        assert answer.status == 403, answer.text
        assert api.post("/request/pvcls", {"qs": {"path": ["/../etc"]}}).status == 403
    finally:
        os.unlink(link)


def test_info_of_an_interactive_job_gives_its_url(make_connector):
    assert_interactive_job_gets_its_url(make_connector(), unique("service"), KIRBY, SHARED)


def test_memory_walltime_and_devices_reach_slurm_as_numbers(api):
    assert_the_job_spec_reaches_slurm(api, unique("spec"), KIRBY)
