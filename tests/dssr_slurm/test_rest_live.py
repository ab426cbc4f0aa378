"""The slurmrestd connector through DSSR's HTTP API against the test clusters' real slurmrestd
(each Slurm version, the API version ``auto`` picks): users, token modes, accounting, output
access, the SSH tunnel."""

import logging
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from rest_fixtures import api_of, cluster_token
from slurm_helpers import (
    KIRBY,
    MARIO,
    SHARED,
    assert_interactive_job_gets_its_url,
    assert_the_job_spec_reaches_slurm,
    exitstatus,
    job_of,
    newest_api,
    squeue_field,
    submit_as_each_user,
    template,
    wait_ended,
    wait_gone_from_squeue,
    wait_output,
    wait_running,
)

from dssr_core.errors import ClusterUnavailable
from dssr_core.testing import wait_until

pytest_plugins = ["rest_fixtures"]

pytestmark = pytest.mark.slow
SSH_OUTPUT = {"JARVICE_SLURMRESTD_OUTPUT_ACCESS": "ssh"}


def unique(label: str) -> str:
    return f"rest-{label}-{uuid.uuid4().hex[:8]}"


def test_jobs_run_as_the_mapped_users_with_the_configured_path(api_for, rest_env):
    api = api_for(**SSH_OUTPUT)
    body = 'echo "user=$(id -un)"; echo "path=$PATH"; echo "nodes=$JOB_JOB_FORMATED_NODELIST"; sleep 2'
    jobs = submit_as_each_user(api, body, unique)
    for user, job in jobs.items():
        wait_ended(api, job)
        rc, _, (output, banner) = exitstatus(api, job)
        assert rc == 0 and "COMPLETED" in banner, output
        lines = output.splitlines()
        assert f"user={user}" in lines and "nodes=localhost" in lines
        assert f"path={rest_env['DSSR_CLUSTER_BIN']}:/usr/local/bin:/usr/bin:/bin" in lines
    scratch = rest_env["JARVICE_JOB_SCRATCH_DIR"]
    assert not [f for f in os.listdir(scratch) if any(job["name"] in f for job in jobs.values())], \
        "exitstatus removed the job's files"


def test_held_job_released_running_job_terminated_and_events(api_for):
    api = api_for(**SSH_OUTPUT)
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
    events = api.post("/events", long).json
    assert f"job_id={long['jobid']}" in events and "user_name=kirby" in events
    assert "job_state=RUNNING" in events
    assert [held_name, held["jobid"]] in api.get("/queued").json
    assert "state_reason=JobHeldUser" in api.post("/events", held).json
    assert api.post("/release", held).json is True
    assert api.post("/terminate", long).json is True
    wait_ended(api, held)
    wait_ended(api, long)
    assert exitstatus(api, held)[0] == 0
    rc, _, (output, banner) = exitstatus(api, long)
    assert rc == -15 and "started" in output and "CANCELLED" in banner


def test_exit_status_from_accounting_after_slurmctld_forgot_the_job(api_for):
    api = api_for(**SSH_OUTPUT)
    ok_name, bad_name = unique("acct-ok"), unique("acct-bad")
    ok = job_of(ok_name, api.submit(ok_name, template("echo from-accounting", devices=SHARED), bearer=KIRBY))
    bad = job_of(bad_name, api.submit(bad_name, template("echo failing; exit 4", devices=SHARED),
                                      bearer=MARIO))
    wait_gone_from_squeue(ok["jobid"])
    wait_gone_from_squeue(bad["jobid"])
    rc, _, (output, banner) = exitstatus(api, {**ok, "name": "rest-not-this-job"})
    assert (rc, output) == (-9, "") and "UNKNOWN" in banner, "the id is ours, the name is not"
    rc, _, (output, banner) = exitstatus(api, ok)
    assert rc == 0 and "from-accounting" in output and "COMPLETED" in banner
    rc, _, (output, banner) = exitstatus(api, bad)
    assert rc == 1 and "failing" in output and "FAILED" in banner, "state.current, not dbv0.0.38's exit code"
    events = api.post("/events", ok)
    assert events.status == 200 and f"job_id={ok['jobid']}" in events.json
    assert "state={current:COMPLETED" in events.json, "accounting's record once slurmctld forgot the job"


def test_retried_submission_returns_the_queued_job(api_for):
    api = api_for()
    name = unique("retry")
    first = job_of(name, api.submit(name, template("sleep 30", devices=SHARED), hold=True, bearer=KIRBY))
    again = job_of(name, api.submit(name, template("sleep 30", devices=SHARED), hold=True, bearer=KIRBY))
    assert again["jobid"] == first["jobid"]
    assert api.post("/terminate", first).json is True
    wait_ended(api, first)


@pytest.mark.one_slurm_version
def test_a_submit_of_a_live_name_with_another_script_is_a_409_naming_the_job(api_for):
    api = api_for()
    name = unique("twin")
    first = job_of(name, api.submit(name, template("sleep 30", devices=SHARED), hold=True, bearer=KIRBY))
    other = api.submit(name, template("sleep 31", devices=SHARED), hold=True, bearer=KIRBY)
    assert other.status == 409 and f"(job id {first['jobid']})" in other.json["description"]
    assert api.post("/terminate", first).json is True
    wait_ended(api, first)


def test_tail_without_output_access_says_how_to_enable_it(api_for):
    api = api_for()
    name = unique("notail")
    job = job_of(name, api.submit(name, template("echo hidden; sleep 30", devices=SHARED), bearer=KIRBY))
    answer = api.post(f"/request/{name}/1/{job['jobid']}/tail", {"qs": {}})
    assert answer.status == 404 and "JARVICE_SLURMRESTD_OUTPUT_ACCESS=ssh" in answer.json["description"]
    api.post("/terminate", job)
    wait_ended(api, job)
    exitstatus(api, job)


def test_tail_and_collection_through_a_shared_directory(api_for, rest_env, tmp_path):
    mount = tmp_path / "mount"
    mount.symlink_to(rest_env["JARVICE_JOB_SCRATCH_DIR"])  # DSSR's host sees the scratch dir elsewhere
    api = api_for(JARVICE_SLURMRESTD_OUTPUT_ACCESS="shared", JARVICE_SLURMRESTD_SHARED_SCRATCH_DIR=str(mount))
    name = unique("shared")
    job = job_of(name, api.submit(name, template("echo line-one; echo line-two; sleep 60", devices=SHARED),
                                  bearer=KIRBY))
    tail = wait_until(lambda: _tail(api, job, 1), 60, what="output")
    assert tail == "line-two\n"
    api.post("/terminate", job)
    wait_ended(api, job)
    rc, _, (output, _) = exitstatus(api, job)
    assert rc == -15 and "line-one" in output
    assert not list(Path(rest_env["JARVICE_JOB_SCRATCH_DIR"]).glob(f"jarvice_{name}.*"))


def _tail(api, job, lines):
    answer = api.post(f"/request/{job['name']}/1/{job['jobid']}/tail", {"qs": {"lines": [str(lines)]}})
    return answer.text if answer.status == 200 and "two" in answer.text else None


def test_static_token_of_slurmuser_acts_for_the_mapped_users(api_for, rest_env):
    api = api_for(JARVICE_SLURMRESTD_TOKEN_MODE="static", SLURM_JWT=cluster_token(rest_env, "slurm"),
                  JARVICE_SLURMRESTD_USER="slurm")
    name = unique("static")
    job = job_of(name, api.submit(name, template("sleep 30", devices=SHARED), hold=True, bearer=MARIO))
    assert squeue_field(job["jobid"], "%u") == "mario"
    assert [name, job["jobid"]] in api.get("/queued").json
    assert api.post("/terminate", job).json is True
    wait_ended(api, job)


def test_bearer_mode_passes_the_portals_token_on(api_for, rest_env, caplog):
    """A site whose Slurm trusts the portal's identity provider: the 'portal' signs with the cluster key."""
    api = api_for(JARVICE_SLURMRESTD_TOKEN_MODE="bearer",
                  JARVICE_SLURMRESTD_TOKEN=cluster_token(rest_env, "jarvice"))
    portal_bearer = cluster_token(rest_env, "kirby", email="kirby@example.org")
    name = unique("bearer")
    job = job_of(name, api.submit(name, template("sleep 30", devices=SHARED), hold=True,
                                  bearer=portal_bearer))
    assert squeue_field(job["jobid"], "%u") == "kirby"
    assert api.post("/terminate", job).json is True, "as kirby, with the bearer remembered"
    wait_ended(api, job)
    stale = cluster_token(rest_env, "kirby", lifespan=-10, email="kirby@example.org")
    with caplog.at_level(logging.WARNING):
        answer = api.submit(unique("stale"), template("true"), bearer=stale)
    assert answer.status == 500 and "expired" in caplog.text  # the sentence is the log's
    assert stale not in answer.text and stale not in caplog.text


def test_a_wrong_key_is_reported_as_a_refused_token(api_for, tmp_path, caplog, slurm_version):
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(os.urandom(32))
    api = api_for(JARVICE_SLURMRESTD_JWT_KEY_FILE=str(wrong), JARVICE_SLURMRESTD_TIMEOUT="60")
    with caplog.at_level(logging.WARNING):
        answer = api.get("/queued")
    description = answer.json["description"]
    if slurm_version == "22.05":
        # 22.05 answers "Unspecified error", as when slurmctld is down: both causes are named.
        assert answer.status == 503, answer.text
        assert "refused the token of jarvice (token mode mint" in description
    else:
        # Later versions answer HTTP 511 with error 1007 "Protocol authentication error".
        assert answer.status == 500, answer.text
        said = description + caplog.text
        assert "did not accept the token of jarvice" in said and "token mode mint" in said
    assert str(wrong) not in description and str(wrong) in caplog.text  # the file, for the log only
    answer = api.submit(unique("wrongkey"), template("true"), bearer=KIRBY)
    assert answer.status >= 500 and "token mode mint" in answer.text + caplog.text


@pytest.mark.one_slurm_version  # DSSR reads the token's exp and sends nothing
def test_expired_static_token_is_reported_as_such(api_for, rest_env, caplog):
    stale = cluster_token(rest_env, "jarvice", lifespan=-10)
    api = api_for(JARVICE_SLURMRESTD_TOKEN_MODE="static", SLURM_JWT=stale)
    with caplog.at_level(logging.WARNING):
        answer = api.get("/running")
    assert answer.status == 500  # the sentence is the log's
    assert "expired at" in caplog.text and "token mode static" in caplog.text
    assert stale not in answer.text and stale not in caplog.text


def test_through_an_ssh_tunnel_to_the_login_node(make_rest_connector, rest_env):
    connector = make_rest_connector(JARVICE_SLURMRESTD_SSH_TUNNEL="true")
    assert connector.tunnel is not None and connector.tunnel.port != int(rest_env["JARVICE_SLURMRESTD_PORT"])
    assert connector.client.base_url == f"http://127.0.0.1:{connector.tunnel.port}"
    summary = connector.check()
    assert f"API {newest_api(rest_env)}" in summary and "controller up" in summary
    api = api_of(connector, rest_env)
    name = unique("tunnel")
    job = job_of(name, api.submit(name, template("sleep 30", devices=SHARED), hold=True, bearer=KIRBY))
    assert [name, job["jobid"]] in api.get("/queued").json
    assert api.post("/terminate", job).json is True
    assert connector.tunnel.channels_opened >= 1
    report = dict(connector.report())
    login = f"jarvice@127.0.0.1:{rest_env['JARVICE_SLURM_CLUSTER_PORT']}"
    assert f"through an SSH tunnel via {login}" in report["slurmrestd"]
    wait_ended(api, job)


def test_the_job_list_is_read_again_only_when_a_job_changed(make_rest_connector, rest_env):
    """update_time on every version the clusters serve: v0.0.42 on with Slurm's last_update, 22.05's
    v0.0.38 with slurmctld's clock (GET /diag) and its 304."""
    connector = make_rest_connector()
    api = api_of(connector, rest_env)
    name = unique("quiet")
    job = job_of(name, api.submit(name, template("sleep 30", devices=SHARED), hold=True, bearer=KIRBY))

    def listing_after_a_read():
        connector.snapshot.invalidate()
        assert [name, job["jobid"]] in api.get("/queued").json
        return connector.lists._last

    # update_time counts whole seconds: the list after the one of the submit's second stands
    wait_until(lambda: listing_after_a_read() is listing_after_a_read(), 15, what="a list not read again")
    quiet = connector.lists._last
    assert api.post("/terminate", job).json is True
    wait_until(lambda: [name, job["jobid"]] not in api.get("/queued").json, 15, what="the cancel to show")
    assert connector.lists._last is not quiet


def test_init_report_names_no_secret(make_rest_connector, rest_env):
    connector = make_rest_connector(**SSH_OUTPUT)
    text = "\n".join(f"{label}: {value}" for label, value in connector.report()) + connector.check()
    key = Path(rest_env["JARVICE_SLURMRESTD_JWT_KEY_FILE"]).read_bytes()
    assert "mint (HS256 with the key in" in text and newest_api(rest_env) in text
    assert "ssh (as the job's owner" in text
    assert key.hex() not in text and rest_env["JARVICE_SLURM_SSH_PKEY"][:40] not in text


def test_slurms_refusals_are_422_with_its_message(api_for):
    api = api_for()
    answer = api.submit(unique("reject"), template("true", devices=["partition=nope"]), bearer=KIRBY)
    assert answer.status == 422, answer.text
    answer = api.submit(unique("reject"), template("true"), nodes=2, bearer=KIRBY)  # one node here
    assert answer.status == 422, answer.text
    assert answer.json["description"]


def test_info_of_an_interactive_job_gives_its_url(make_rest_connector):
    assert_interactive_job_gets_its_url(make_rest_connector(), unique("service"), KIRBY, SHARED)


def test_memory_walltime_and_devices_reach_slurm_as_numbers(api_for):
    assert_the_job_spec_reaches_slurm(api_for(), unique("spec"), KIRBY)


def test_the_tunnel_checks_the_pinned_host_key(make_rest_connector, rest_env, tmp_path):
    line = open(rest_env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]).read().strip()
    no_file = str(tmp_path / "none")
    pinned = make_rest_connector(JARVICE_SLURMRESTD_SSH_TUNNEL="true", JARVICE_SLURM_SSH_HOST_KEY=line,
                                 JARVICE_SLURM_SSH_KNOWN_HOSTS=no_file)
    assert "controller up" in pinned.check()
    assert dict(pinned.report())["SSH host key"].startswith(
        "pinned by JARVICE_SLURM_SSH_HOST_KEY: ssh-ed25519 SHA256:")
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = make_rest_connector(JARVICE_SLURMRESTD_SSH_TUNNEL="true",
                                JARVICE_SLURM_SSH_HOST_KEY=(tmp_path / "other.pub").read_text())
    with pytest.raises(ClusterUnavailable, match="the SSH tunnel failed: Cannot reach the cluster over SSH "
                                                 ".* offered the host key ssh-ed25519 SHA256:.*, but "
                                                 "JARVICE_SLURM_SSH_HOST_KEY pins ssh-ed25519 SHA256:"):
        wrong.check()
