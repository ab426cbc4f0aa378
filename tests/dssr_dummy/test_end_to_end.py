"""``dssr serve`` on the dummy connector, driven over HTTP exactly as upstream drives it."""

import base64
import subprocess
import sys

import pytest

import dssr_core
from dssr_core.testing import shell_template, wait_until

pytestmark = pytest.mark.slow
KEY = ("slurm-downstream", "Pass1234")


@pytest.fixture
def env(tmp_path):
    return {"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state")}


def submit(api, name, body, **kwargs):
    answer = api.submit(name, shell_template(body), **kwargs)
    assert answer.status == 200, answer.text
    return {"name": name, "number": 1, "jobid": answer.json[0]}


def listed(api, job):
    return any([job["name"], job["jobid"]] in api.get(path).json for path in ("/queued", "/running"))


def wait_ended(api, job, timeout=30):
    wait_until(lambda: not listed(api, job), timeout, what=f"{job['name']} to end")


def test_success_failure_and_termination(dssr_server, env):
    api = dssr_server(env).api()
    ok = submit(api, "e2e-ok", "echo the answer is 42")
    failing = submit(api, "e2e-fail", "echo failing now >&2; exit 3")
    sleeper = submit(api, "e2e-sleep", "sleep 120")
    wait_until(lambda: ["e2e-sleep", sleeper["jobid"]] in api.get("/running").json, 30, what="sleeper")
    assert api.post("/terminate", sleeper).json is True
    for job in (ok, failing, sleeper):
        wait_ended(api, job)
    rc, _, (output, _) = api.post("/exitstatus", ok).json
    assert (rc, output) == (0, "the answer is 42\n")
    rc, _, (output, banner) = api.post("/exitstatus", failing).json
    assert (rc, "failing now" in output, "FAILED" in banner) == (1, True, True)
    assert api.post("/exitstatus", sleeper).json[0] == -15


def test_output_comes_back_once(dssr_server, env):
    api = dssr_server(env).api()
    job = submit(api, "e2e-output", "for i in 1 2 3; do echo line-$i; done")
    wait_ended(api, job)
    rc, totaltime, (output, banner) = api.post("/exitstatus", job).json
    assert (rc, output) == (0, "line-1\nline-2\nline-3\n")
    assert banner == "<< termination state: COMPLETED -- see STDOUT for job errors >>"
    assert api.post("/exitstatus", job).json[0] == -9


def test_held_then_released(dssr_server, env):
    api = dssr_server(env).api()
    job = submit(api, "e2e-held", "echo released", hold=True)
    assert ["e2e-held", job["jobid"]] in api.get("/queued").json
    assert api.post("/release", job).json is True
    wait_ended(api, job)
    assert api.post("/exitstatus", job).json[2][0] == "released\n"


def test_restart_mid_job_loses_nothing(dssr_server, env, tmp_path):
    flag = tmp_path / "go"
    server = dssr_server(env)
    api = server.api()
    body = f"echo before; while [ ! -e {flag} ]; do sleep 0.1; done; echo after; exit 7"
    waiting = submit(api, "e2e-restart", body)
    wait_until(lambda: ["e2e-restart", waiting["jobid"]] in api.get("/running").json, 30, what="start")
    server.stop()
    flag.touch()  # the job ends while no server runs
    wait_until(lambda: (tmp_path / "state").exists(), 5)
    server.start()
    wait_ended(api, waiting)
    rc, _, (output, banner) = api.post("/exitstatus", waiting).json
    assert (rc, output, "FAILED" in banner) == (1, "before\nafter\n", True)


def test_bad_input_is_refused_and_nothing_runs(dssr_server, env, tmp_path):
    api = dssr_server(env).api()
    marker = tmp_path / "pwned"
    for name in (f"x;touch {marker}", f"$(touch {marker})", "-rf", "a\nb", "`id`"):
        assert api.submit(name, shell_template("true")).status == 400
    answer = api.post("/submit", {"name": "ok", "number": 1, "nodes": 1,
                                  "hpc_script": {"shell": base64.b64encode(b"echo {x}").decode()}})
    assert answer.status == 400
    assert api.post("/runstatus", {"name": "ok", "number": 1, "jobid": f"1;touch {marker}"}).status == 400
    answer = api.post("/request/pvcls", {"qs": {"path": ["/../../etc"]}})
    assert answer.status == 403
    assert not marker.exists()


def test_basic_auth_on(dssr_server, env):
    server = dssr_server({**env, "JARVICE_SCHED_SERVER_KEY": ":".join(KEY)})
    assert server.api().get("/live").status == 200
    ready = server.api().get("/ready")  # the chart's readiness probe sends no credentials
    assert (ready.status, ready.json) == (200, {"status": "OK", "version": dssr_core.__version__})
    assert server.api().get("/running").status == 401
    assert server.api(auth=KEY).get("/running").json == []


def test_basic_auth_off(dssr_server, env):
    assert dssr_server(env).api().get("/running").status == 200


def test_the_client_commands(dssr_server, env, tmp_path):
    server = dssr_server(env)

    def dssr(*args):
        return subprocess.run([sys.executable, "-m", "dssr_core", *args, "--server", server.url],
                              capture_output=True, text=True, timeout=60)

    script = tmp_path / "job.sh"
    script.write_text('#!/bin/bash\necho "braces ${HOME:+stay} {as written}"\n')
    submitted = dssr("submit", str(script), "--name", "cli-job")
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    assert job.startswith("cli-job/1/")
    api = server.api()
    wait_ended(api, dict(zip(("name", "number", "jobid"), job.split("/"), strict=True)))
    ended = dssr("exitstatus", job)
    assert ended.returncode == 0
    assert "braces stay {as written}" in ended.stdout
    held = dssr("submit", "--command", "echo from-command", "--hold", "--name", "cli-held").stdout.strip()
    assert ["cli-held", held.split("/")[2]] in [line.split() for line in dssr("queued").stdout.splitlines()]
    assert dssr("release", held).returncode == 0
    refused = dssr("status", "not-a-job")
    assert refused.returncode == 2
    assert "name/number/jobid" in refused.stderr


def test_check_and_plugins_commands(env, free_port):
    import os

    full_env = {**os.environ, **env, "WAITRESS_PORT": str(free_port)}  # no server answers there
    check = subprocess.run([sys.executable, "-m", "dssr_core", "check"], env=full_env,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "+----- dummy connector init report -----+" in check.stdout
    assert "first connection: OK" in check.stdout
    plugins = subprocess.run([sys.executable, "-m", "dssr_core", "plugins"],
                             capture_output=True, text=True, timeout=60).stdout
    assert "dummy" in plugins and "dssr_dummy" in plugins
    unknown = subprocess.run([sys.executable, "-m", "dssr_core", "check", "--connector", "nope"],
                             env=full_env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2
    assert "No connector named 'nope'" in unknown.stderr and "dummy" in unknown.stderr
    bad = subprocess.run([sys.executable, "-m", "dssr_core", "check"], capture_output=True, text=True,
                         env={**full_env, "WAITRESS_PORT": "port"}, timeout=60)
    assert bad.returncode == 2
    assert "WAITRESS_PORT" in bad.stderr
