"""A full upstream-like Singularity job through the HTTP API, on the dummy connector, with the
singularity TEST DOUBLE first on PATH (Singularity is not packaged for Debian 12). The same
job on the real Slurm cluster is in tests/dssr_slurm/test_singularity_on_slurm.py."""

import json

import pytest

from dssr_core.testing import wait_until
from dssr_singularity.credentials import b64
from dssr_singularity.executor import SingularityExecutor

pytestmark = pytest.mark.slow
APP = "nvcr.io/nvidia/pytorch:23.10-py3"
INIT_PASSWORD = "init-secret-6d1f"


@pytest.fixture
def server(dssr_server, double_env, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**double_env,
           "JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_BAREMETAL_EXECUTOR": "singularity",
           "JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state"),
           "JARVICE_JOB_SCRATCH_DIR": str(scratch),
           "JARVICE_SINGULARITY_TMPDIR": str(tmp_path / "sing-tmp"),
           "JARVICE_DOCKER_USERNAME": b64("_json_key"), "JARVICE_DOCKER_PASSWORD": b64(INIT_PASSWORD)}
    return dssr_server(env)


def run(server, name, command, **template_facts):
    api = server.api()
    template = SingularityExecutor.template_for(command, image=APP, cores=2)
    answer = api.submit(name, template, executor="singularity")
    assert answer.status == 200, answer.text
    jobid, fscript = answer.json
    job = {"name": name, "number": 1, "jobid": jobid}
    wait_until(lambda: all([name, jobid] not in api.get(p).json for p in ("/queued", "/running")),
               60, what=f"{name} to end")
    return api.post("/exitstatus", job).json, fscript


def test_a_container_job_succeeds_through_the_api(server, double_log):
    (rc, _, (output, banner)), fscript = run(server, "sing-ok", "echo hello from the container")
    assert rc == 0, output
    assert "hello from the container" in output
    assert output.rstrip().splitlines()[-1] == "JARVICE_CMD_SUCCESS"
    assert INIT_PASSWORD not in fscript and b64(INIT_PASSWORD) not in fscript
    calls = double_log()
    pulls = [c["argv"] for c in calls if "pull" in c["argv"]]
    assert any(a.endswith("docker://us-docker.pkg.dev/jarvice-system/images/initv2:jarvice-master")
               for argv in pulls for a in argv)
    assert any(a == f"docker://{APP}" for argv in pulls for a in argv)
    execs = [c["argv"] for c in calls if "exec" in c["argv"]]
    assert execs and all("--overlay" in argv or "--writable-tmpfs" in argv for argv in execs)
    assert all("-B" in argv or "--bind" in argv for argv in execs)
    assert INIT_PASSWORD not in json.dumps(calls)


def test_a_failing_container_command_fails_the_job(server):
    (rc, _, (output, banner)), _ = run(server, "sing-fail", "echo about to fail; exit 4")
    assert rc == 1
    assert "about to fail" in output
    assert "JARVICE_CMD_SUCCESS" not in output
    assert "FAILED" in banner
