"""The upstream-like job runs for real on this machine, with the singularity test double first
on PATH: the output, the exit code, and what the double was asked to do."""

import hashlib
import json
import subprocess

import pytest

from dssr_core.models import ScriptRequest
from dssr_singularity.credentials import b64
from dssr_singularity.executor import SingularityExecutor

INIT_IMAGE = "docker://us-docker.pkg.dev/jarvice-system/images/initv2:jarvice-master"
APP_IMAGE = "docker://nvcr.io/nvidia/pytorch:23.10-py3"


@pytest.fixture
def run_job(executor_for, tmp_path, double_env):
    """run_job(command, settings={}, env={}, template=None) -> CompletedProcess of the job."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    base_settings = {"JARVICE_JOB_SCRATCH_DIR": str(scratch),
                     "JARVICE_SINGULARITY_TMPDIR": str(tmp_path / "sing-tmp"),
                     "JARVICE_DOCKER_USERNAME": b64("_json_key"),
                     "JARVICE_DOCKER_PASSWORD": b64("init-secret")}

    def run(command="true", settings=None, env=None, template=None, cores=2):
        executor = executor_for(**{**base_settings, **(settings or {})})
        template = template or SingularityExecutor.template_for(
            command, image=APP_IMAGE.removeprefix("docker://"), cores=cores)
        script = tmp_path / "job.sh"
        script.write_text(executor.render(ScriptRequest("job", 1, 1, template)).script)
        return subprocess.run(["bash", str(script)], cwd=tmp_path, env={**double_env, **(env or {})},
                              capture_output=True, text=True, timeout=60)
    run.scratch = scratch
    run.tmp = tmp_path / "sing-tmp"
    return run


def calls(double_log, command):
    return [c for c in double_log() if command in c["argv"]]


def option_values(argv, flag):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_a_job_that_succeeds_prints_the_marker(run_job, double_log):
    result = run_job("echo cores=$JARVICE_CPU_CORES port=$JARVICE_SERVICE_PORT in=$(pwd) > out.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "JARVICE_CMD_SUCCESS"
    assert (run_job.scratch / "out.txt").read_text() == \
        f"cores=2 port=2228 in={run_job.scratch}\n"
    # the work directory is removed; the image cache stays, with the lock of its pulls
    assert [path.name for path in run_job.tmp.iterdir()] == ["singularity-cache-alice"]

    init_pull, app_pull = calls(double_log, "pull")
    assert init_pull["argv"][0] == "-s" and init_pull["argv"][-1] == INIT_IMAGE
    assert app_pull["argv"][-1] == APP_IMAGE
    assert init_pull["argv"][-2].endswith("/init.sif") and app_pull["argv"][-2].endswith("/app.sif")
    assert init_pull["credentials"]["SINGULARITY_DOCKER_PASSWORD"]
    assert init_pull["docker_username_sha256"] == sha("_json_key")    # decoded from base64
    assert not app_pull["credentials"]["SINGULARITY_DOCKER_USERNAME"]

    (overlay,) = calls(double_log, "overlay")
    assert overlay["argv"][1:4] == ["overlay", "create", "--size"] and overlay["argv"][4] == "600"
    (run,) = calls(double_log, "exec")
    argv = run["argv"]
    assert option_values(argv, "--overlay") == [overlay["argv"][5]]
    assert "--writable-tmpfs" not in argv
    assert option_values(argv, "-B") == [str(run_job.scratch)]
    assert option_values(argv, "--pwd") == [str(run_job.scratch)]
    assert option_values(argv, "--env") == ["JARVICE_CPU_CORES=2", "JARVICE_JOB_RANK=0"]
    assert argv[-4].endswith("/app.sif") and argv[-3:-1] == ["/bin/sh", "-c"]
    assert run["containerenv"] == {"SINGULARITYENV_JARVICE_SERVICE_PORT": "2228",
                                   "SINGULARITYENV_JARVICE_SSH_PORT": "2227"}
    for call in double_log():                                  # the double never saw secrets
        assert "init-secret" not in json.dumps(call)


def test_overlay_zero_uses_a_writable_tmpfs(run_job, double_log):
    result = run_job(settings={"JARVICE_SINGULARITY_OVERLAY_SIZE": "0"})
    assert result.returncode == 0, result.stderr
    assert calls(double_log, "overlay") == []
    (run,) = calls(double_log, "exec")
    assert "--writable-tmpfs" in run["argv"] and "--overlay" not in run["argv"]


def test_the_global_scratch_is_bound_too_and_verbosity_reaches_singularity(run_job, double_log,
                                                                           tmp_path):
    global_scratch = tmp_path / "global"
    global_scratch.mkdir()
    result = run_job(settings={"JARVICE_JOB_GLOBAL_SCRATCH_DIR": str(global_scratch),
                               "JARVICE_SINGULARITY_VERBOSE": "true"})
    assert result.returncode == 0, result.stderr
    (run,) = calls(double_log, "exec")
    assert option_values(run["argv"], "-B") == [str(run_job.scratch), str(global_scratch)]
    assert all(call["argv"][0] == "-v" for call in double_log())
    assert "[dssr-singularity rank 0] pulling the app image" in result.stdout


def test_the_app_credentials_reach_only_the_app_pull(run_job, double_log, template):
    secret = json.dumps({"server": "nvcr.io", "username": "jobuser", "password": "job-secret"})
    job = template(JOBOBJ_REPO=APP_IMAGE, JOBOBJ_DOCKER_SECRET=secret,
                   JARVICE_CMD="env > env.txt")
    result = run_job(template=job, env={"DSSR_SINGULARITY_DOUBLE_REQUIRE_AUTH": "nvcr.io"})
    assert result.returncode == 0, result.stderr
    init_pull, app_pull = calls(double_log, "pull")
    assert app_pull["docker_username_sha256"] == sha("jobuser")
    assert init_pull["docker_username_sha256"] == sha("_json_key")
    seen_by_app = (run_job.scratch / "env.txt").read_text()
    assert "JARVICE_SERVICE_PORT=2228" in seen_by_app
    for value in ("job-secret", b64("job-secret"), "init-secret", b64("init-secret"), "jobuser"):
        assert value not in seen_by_app


def test_proxies_reach_the_pulls(run_job, double_log):
    result = run_job(settings={"JARVICE_SLURM_HTTP_PROXY": "http://proxy:3128",
                               "JARVICE_BAREMETAL_NO_PROXY": "localhost,.cluster"})
    assert result.returncode == 0, result.stderr
    for call in calls(double_log, "pull"):
        assert call["env"]["http_proxy"] == "http://proxy:3128"
        assert call["env"]["no_proxy"] == "localhost,.cluster"
        assert "https_proxy" not in call["env"]


def test_other_ranks_succeed_silently(run_job):
    result = run_job(env={"PROCESS_PROCID": "1"})
    assert result.returncode == 0, result.stderr
    assert "JARVICE_CMD_SUCCESS" not in result.stdout


def test_a_failing_command_fails_the_job_without_the_marker(run_job, double_log):
    result = run_job("echo about to fail; exit 7")
    assert result.returncode == 7
    assert "about to fail" in result.stdout
    assert "JARVICE_CMD_SUCCESS" not in result.stdout
    assert "JARVICE_CMD exited with code 7" in result.stderr
    assert [path.name for path in run_job.tmp.iterdir()] == ["singularity-cache-alice"]


def test_a_failing_pull_stops_the_job_before_it_runs(run_job, double_log):
    result = run_job(env={"DSSR_SINGULARITY_DOUBLE_FAIL_PULL": "pytorch"})
    assert result.returncode == 1
    assert "manifest unknown" in result.stderr
    assert f"cannot pull the app image {APP_IMAGE}" in result.stderr
    assert "JARVICE_CMD_SUCCESS" not in result.stdout
    assert calls(double_log, "exec") == []


def test_an_init_image_that_needs_credentials_fails_without_them(run_job, double_log):
    result = run_job(settings={"JARVICE_DOCKER_USERNAME": "", "JARVICE_DOCKER_PASSWORD": ""},
                     env={"DSSR_SINGULARITY_DOUBLE_REQUIRE_AUTH": "jarvice-system"})
    assert result.returncode == 1
    assert "authentication required" in result.stderr
    assert "cannot pull the init image" in result.stderr
    assert len(double_log()) == 1
