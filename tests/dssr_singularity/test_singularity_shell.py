"""Rendered scripts are valid bash and pass shellcheck at its strictest default severity."""

import os
import shutil
import subprocess

import pytest

from dssr_core.models import ScriptRequest
from dssr_singularity.credentials import b64
from dssr_singularity.executor import SingularityExecutor

SETTINGS = [
    {},
    {"JARVICE_SINGULARITY_VERBOSE": "true", "JARVICE_SINGULARITY_OVERLAY_SIZE": "0"},
    {"JARVICE_JOB_SCRATCH_DIR": "/scratch", "JARVICE_JOB_GLOBAL_SCRATCH_DIR": "/global",
     "JARVICE_BAREMETAL_HTTP_PROXY": "http://u:p@proxy:3128", "JARVICE_SLURM_NO_PROXY": "a,b",
     "JARVICE_DOCKER_USERNAME": b64("_json_key"), "JARVICE_DOCKER_PASSWORD": b64("{'k': \"v\"}")},
]
COMMANDS = ["hostname", "echo \"$HOME\" '$x' `id` {a} && exit 3"]


def rendered(executor_for, settings, command):
    template = SingularityExecutor.template_for(command, image="nvcr.io/nvidia/x:1", cores=2)
    return executor_for(**settings).render(ScriptRequest("job", 1, 2, template)).script


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("command", COMMANDS)
def test_rendered_scripts_parse(executor_for, tmp_path, settings, command):
    path = tmp_path / "job.sh"
    path.write_text(rendered(executor_for, settings, command))
    subprocess.run(["bash", "-n", str(path)], check=True)


@pytest.fixture(scope="module")
def shellcheck() -> str:
    """Debian's shellcheck, installed when missing (as root; CI machines start without it)."""
    if shutil.which("shellcheck") is None:
        done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                               "-o", "DPkg::Lock::Timeout=600", "shellcheck"], capture_output=True,
                              text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        assert done.returncode == 0, f"apt-get install shellcheck failed:\n{done.stdout}{done.stderr}"
    return shutil.which("shellcheck")


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("command", COMMANDS)
def test_rendered_scripts_pass_shellcheck(shellcheck, executor_for, tmp_path, settings, command):
    path = tmp_path / "job.sh"
    path.write_text(rendered(executor_for, settings, command))
    # SC2016 (info) says `$x` in single quotes does not expand: the block quotes literal values
    # on purpose. Everything else, down to style, must pass.
    result = subprocess.run([shellcheck, "-S", "style", "-e", "SC2016", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
