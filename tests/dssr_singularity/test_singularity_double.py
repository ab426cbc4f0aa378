"""The singularity TEST DOUBLE (tests/doubles/singularity) accepts what DSSR's scripts use,
with Singularity's syntax, and refuses the rest the way Singularity does."""

import json
import subprocess

import pytest


@pytest.fixture
def sing(singularity_double, double_env, tmp_path):
    """sing(*args, env={}) -> CompletedProcess of the double, run in tmp_path."""
    def run(*args, env=None):
        return subprocess.run([str(singularity_double), *args], cwd=tmp_path,
                              env={**double_env, **(env or {})}, capture_output=True, text=True,
                              timeout=30)
    return run


@pytest.fixture
def sif(sing, tmp_path):
    assert sing("-s", "pull", "app.sif", "docker://alpine:3.19").returncode == 0
    return tmp_path / "app.sif"


def test_it_says_it_is_a_test_double(singularity_double):
    head = singularity_double.read_text().splitlines()[:3]
    assert "TEST DOUBLE" in "\n".join(head)
    assert head[0] == "#!/usr/bin/env python3"


def test_version(sing):
    result = sing("--version")
    assert (result.returncode, result.stdout) == (0, "singularity-ce version 3.11.4 (dssr test double)\n")


@pytest.mark.parametrize("args, rc, message", [
    (["foo"], 1, 'Error: unknown command "foo" for "singularity"'),
    (["--bogus", "pull"], 1, 'Error for command "singularity": unknown flag: --bogus'),
    (["-x", "pull"], 1, "unknown shorthand flag: 'x' in -x"),
    (["pull", "--bogus", "a.sif", "docker://alpine"], 1,
     'Error for command "pull": unknown flag: --bogus'),
    (["pull", "a.sif", "b", "docker://alpine"], 1, "accepts between 1 and 2 arg(s), received 3"),
    (["pull", "a.sif", "shub://x/y"], 255, "FATAL:   Unsupported transport type: shub"),
    (["pull", "a.sif", "alpine"], 255, "FATAL:   dssr test double: give the source as docker://"),
    (["pull", "a.sif", "docker://Alpine:3"], 255, "invalid reference format"),
    (["pull", "a.sif", "docker://"], 255, "FATAL:   Bad URI docker://"),
    (["overlay", "grow", "x.img"], 1, 'Error: unknown command "grow" for "singularity overlay"'),
    (["overlay", "create", "--size", "10", "x.img"], 255,
     "FATAL:   image size must be equal or greater than 64 MiB"),
    (["overlay", "create", "--size", "big", "x.img"], 1, 'invalid argument "big" for "-s, --size"'),
    (["exec", "app.sif"], 1, "requires at least 2 arg(s), only received 1"),
    (["exec", "--pwd"], 1, "flag needs an argument: --pwd"),
    (["exec", "missing.sif", "true"], 255, "FATAL:   could not open image missing.sif"),
    (["exec", "--overlay", "none.img", "app.sif", "true"], 255, "failed to open overlay image"),
    (["exec", "-B", "/no/such/dir", "app.sif", "true"], 255, "mount source /no/such/dir doesn't exist"),
    (["exec", "-B", "/tmp:/mnt", "app.sif", "true"], 255, "cannot bind /tmp at another path"),
    (["exec", "--env", "NOEQUALS", "app.sif", "true"], 1, "must be formatted as key=value"),
    (["exec", "--pwd", "/no/such/dir", "app.sif", "true"], 255, "could not set working directory"),
    (["exec", "app.sif", "no-such-program"], 255, '"no-such-program": executable file not found'),
    (["exec", "--userns", "app.sif", "true"], 1, 'Error for command "exec": unknown flag: --userns'),
])
def test_it_refuses_like_singularity(sing, sif, args, rc, message):
    result = sing(*args)
    assert result.returncode == rc
    assert message in result.stderr


def test_pull_writes_the_url_and_will_not_overwrite_without_force(sing, sif):
    assert sif.read_text() == "DSSR-TEST-DOUBLE-SIF\ndocker://alpine:3.19\n"
    refused = sing("pull", "app.sif", "docker://alpine:3.20")
    assert refused.returncode == 255 and "will not overwrite" in refused.stderr
    assert sing("-q", "pull", "--force", "--disable-cache", "app.sif", "library://a/b/c:1").returncode == 0
    assert sif.read_text() == "DSSR-TEST-DOUBLE-SIF\nlibrary://a/b/c:1\n"
    assert sing("pull", "docker://ubuntu:22.04").returncode == 0
    assert (sif.parent / "ubuntu_22.04.sif").exists()


def test_exec_runs_the_command_on_the_host_with_the_containers_environment(sing, sif, tmp_path):
    assert sing("overlay", "create", "--size", "64", "o.img").returncode == 0
    result = sing("-s", "exec", "--overlay", "o.img", "--writable-tmpfs", "--nv",
                  "-B", f"{tmp_path},/tmp:/tmp:ro", "--bind", str(tmp_path),
                  "--env", "A=1,B=2", "--env", "C=3", "--pwd", "/tmp", str(sif),
                  "sh", "-c", 'echo "$A$B$C $X $(pwd) $SINGULARITY_NAME ${SINGULARITYENV_X:-gone}"',
                  env={"SINGULARITYENV_X": "x", "A": "host"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "123 x /tmp app.sif gone\n"


def test_exec_passes_the_exit_code_and_cleanenv_drops_the_host_environment(sing, sif):
    result = sing("exec", "--cleanenv", str(sif), "sh", "-c", 'echo "[$HOST_ONLY]"; exit 4',
                  env={"HOST_ONLY": "here"})
    assert (result.returncode, result.stdout) == (4, "[]\n")


def test_run_runs_the_rest_as_the_runscript(sing, sif):
    result = sing("run", "-e", str(sif), "echo", "ran")
    assert (result.returncode, result.stdout) == (0, "ran\n")


def test_every_call_is_logged_without_credentials(sing, double_log):
    env = {"SINGULARITY_DOCKER_USERNAME": "user-77", "SINGULARITY_DOCKER_PASSWORD": "pass-77",
           "SINGULARITYENV_FOO": "bar", "SINGULARITY_CACHEDIR": "/c"}
    sing("-s", "pull", "a.sif", "docker://alpine", env=env)
    sing("nonsense")
    first, second = double_log()
    assert first["argv"] == ["-s", "pull", "a.sif", "docker://alpine"]
    assert first["credentials"]["SINGULARITY_DOCKER_PASSWORD"] is True
    assert first["containerenv"] == {"SINGULARITYENV_FOO": "bar"}
    assert first["env"] == {"SINGULARITY_CACHEDIR": "/c"}
    assert second["argv"] == ["nonsense"]
    text = json.dumps(double_log())
    assert "pass-77" not in text and "user-77" not in text


def test_the_failure_knobs(sing):
    failed = sing("pull", "a.sif", "docker://alpine:3", env={"DSSR_SINGULARITY_DOUBLE_FAIL_PULL": "alp"})
    assert failed.returncode == 255 and "manifest unknown" in failed.stderr
    knob = {"DSSR_SINGULARITY_DOUBLE_REQUIRE_AUTH": "alpine"}
    denied = sing("pull", "a.sif", "docker://alpine:3", env=knob)
    assert denied.returncode == 255 and "authentication required" in denied.stderr
    allowed = sing("pull", "a.sif", "docker://alpine:3", env={
        **knob, "APPTAINER_DOCKER_USERNAME": "u", "APPTAINER_DOCKER_PASSWORD": "p"})
    assert allowed.returncode == 0, allowed.stderr
