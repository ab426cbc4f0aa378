"""A full upstream-like Singularity job through DSSR's HTTP API on the real Slurm cluster:
slurm-cli submits it as the mapped user, Slurm runs it under srun, and the singularity TEST
DOUBLE (first on the cluster's PATH; Apptainer is not packaged for Debian 12 or trixie) logs what
the job asked of it. On 22.05 and 24.11 only: 26.05 runs real Apptainer (test_containers.py)."""

import json
import pwd
import shutil
from pathlib import Path

import jwt
import pytest

from dssr_core.testing import wait_until
from dssr_core.testing.plugin import DssrServer
from dssr_singularity.credentials import b64
from dssr_singularity.executor import SingularityExecutor

pytestmark = [pytest.mark.slow, pytest.mark.slurm_versions("22.05", "24.11")]
DOUBLE = Path(__file__).resolve().parents[1] / "doubles" / "singularity"
APP = "nvcr.io/nvidia/pytorch:23.10-py3"
INIT_PASSWORD = "init-secret-on-slurm"
KIRBY = jwt.encode({"email": "kirby@example.org"}, "upstream-signing-key-0123456789abcdef", algorithm="HS256")


@pytest.fixture
def double_log(cluster_env):
    """The double, first on the cluster's PATH; returns a reader of kirby's call log."""
    shutil.copy(DOUBLE, Path(cluster_env["DSSR_CLUSTER_BIN"]) / "singularity")
    log = Path(pwd.getpwnam("kirby").pw_dir) / ".singularity-double.log"
    log.unlink(missing_ok=True)
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def api(slurm_env, tmp_path_factory):
    """One ``dssr serve`` that the module's tests share (one per Slurm version)."""
    env = {**slurm_env, "JARVICE_BAREMETAL_EXECUTOR": "singularity",
           "JARVICE_DOCKER_USERNAME": b64("_json_key"), "JARVICE_DOCKER_PASSWORD": b64(INIT_PASSWORD),
           "JARVICE_SINGULARITY_OVERLAY_SIZE": "0"}
    server = DssrServer(env, tmp_path_factory.mktemp("singularity") / "dssr-serve.log").start()
    yield server.api()
    server.stop()


def run(api, name, command, cores):
    template = SingularityExecutor.template_for(command, image=APP, cores=cores)
    answer = api.submit(name, template, executor="singularity", bearer=KIRBY)
    assert answer.status == 200, answer.text
    jobid, fscript = answer.json
    assert INIT_PASSWORD not in fscript and b64(INIT_PASSWORD) not in fscript
    job = {"name": name, "number": 1, "jobid": jobid}
    wait_until(lambda: all([name, jobid] not in api.get(p).json for p in ("/queued", "/running")),
               90, what=f"{name} to end")
    return api.post("/exitstatus", job).json


@pytest.mark.parametrize("cores", [1, 2])
def test_a_container_job_runs_on_slurm(api, double_log, cores):
    command = "echo rank $PROCESS_PROCID of $JOB_NNODES"
    rc, _, (output, banner) = run(api, f"cli-sing-ok-{cores}", command, cores)
    assert rc == 0, output
    assert "rank 0 of 1" in output
    assert "JARVICE_CMD_SUCCESS" in output.splitlines()
    calls = double_log()
    assert {c["argv"][-1] for c in calls if "pull" in c["argv"]} >= {
        "docker://us-docker.pkg.dev/jarvice-system/images/initv2:jarvice-master", f"docker://{APP}"}
    execs = [c["argv"] for c in calls if "exec" in c["argv"]]
    assert execs and all("--writable-tmpfs" in argv for argv in execs)
    assert INIT_PASSWORD not in json.dumps(calls)


def test_a_failing_container_command_fails_on_slurm(api, double_log):
    rc, _, (output, banner) = run(api, "cli-sing-fail", "echo about to fail; exit 4", 1)
    assert rc == 1
    assert "about to fail" in output
    assert "JARVICE_CMD_SUCCESS" not in output.splitlines()
    assert "rank 0 did not print JARVICE_CMD_SUCCESS" in output
