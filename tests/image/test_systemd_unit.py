"""deploy/dssr.service under a real systemd (PID 1 of a privileged container): its hardening
leaves DSSR able to start, log in to the test cluster over SSH and run a job there."""

import base64
import os
import shutil

import pytest
from image_helpers import Container, refuse_if_taken, run_singularity_job, unique_name

from dssr_core.testing import ApiClient
from dssr_core.testing.plugin import find_free_port

pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UNIT_IMAGE = "localhost/dssr-systemd-check:test"
SERVER_KEY = ("upstream", "unit-test-server-key")


@pytest.fixture(scope="module")
def unit_image(podman, image, tmp_path_factory):
    context = tmp_path_factory.mktemp("systemd-context")
    shutil.copy(os.path.join(HERE, "Containerfile.systemd"), context / "Containerfile")
    shutil.copy(os.path.join(ROOT, "deploy", "dssr.service"), context / "dssr.service")
    podman.run("build", "--network=host", "--build-arg", f"DSSR_IMAGE={image}",
               "--build-arg", "BASE=localhost/dssr-base:bookworm", "--tag", UNIT_IMAGE, str(context),
               timeout=600)
    return UNIT_IMAGE


def env_file(path, cluster_env, port: int) -> str:
    """/etc/dssr/dssr.env as deploy/dssr.env.example asks for it (the key base64, one line)."""
    key = cluster_env["JARVICE_SLURM_SSH_PKEY"]
    assert base64.b64decode(key).startswith(b"-----BEGIN")
    lines = {
        "JARVICE_SLURM_CLUSTER_ADDR": cluster_env["JARVICE_SLURM_CLUSTER_ADDR"],
        "JARVICE_SLURM_CLUSTER_PORT": cluster_env["JARVICE_SLURM_CLUSTER_PORT"],
        "JARVICE_SLURM_SSH_USER": cluster_env["JARVICE_SLURM_SSH_USER"],
        "JARVICE_SLURM_SSH_PKEY": key,
        "JARVICE_SLURM_SSH_KNOWN_HOSTS": "/etc/dssr/known_hosts",
        "JARVICE_BAREMETAL_CONNECTOR": "slurm-cli",
        "JARVICE_BAREMETAL_EXECUTOR": "singularity",
        "JARVICE_SCHED_SERVER_KEY": ":".join(SERVER_KEY),
        "WAITRESS_PORT": str(port),
    }
    path.write_text("".join(f"{name}={value}\n" for name, value in lines.items()))
    path.chmod(0o600)
    return str(path)


class Unit(Container):
    """The systemd container; ``journal()`` is dssr.service's journal."""

    def __init__(self, podman, name: str, url: str):
        super().__init__(podman, name)
        self.url = url

    def journal(self) -> str:
        done = self.podman.run("exec", self.name, "journalctl", "-u", "dssr", "--no-pager", check=False)
        return done.stdout[-6000:]

    def service_property(self, name: str) -> str:
        done = self.podman.run("exec", self.name, "systemctl", "show", "dssr", "--property", name, "--value")
        return done.stdout.strip()


@pytest.fixture
def unit(podman, unit_image, cluster_env, tmp_path):
    port = find_free_port()
    refuse_if_taken(port)
    name = f"dssr-unit-test-{os.getpid()}"
    podman.run("rm", "--force", name, check=False)
    settings = env_file(tmp_path / "dssr.env", cluster_env, port)
    known_hosts = cluster_env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]
    try:
        podman.run("run", "--detach", "--name", name, "--privileged", "--systemd=always", "--network=host",
                   "--volume", f"{settings}:/etc/dssr/dssr.env:ro",
                   "--volume", f"{known_hosts}:/etc/dssr/known_hosts:ro", unit_image)
        started = Unit(podman, name, f"http://127.0.0.1:{port}")
        started.wait_until_it_answers(started.url, logs=started.journal)
        yield started
    finally:
        podman.run("rm", "--force", name, check=False, timeout=60)


def test_the_hardened_unit_runs_a_job_on_slurm(unit, double_on_cluster):
    assert unit.service_property("ActiveState") == "active"
    main_pid = unit.service_property("MainPID")
    owner = unit.podman.run("exec", unit.name, "stat", "--format", "%U", f"/proc/{main_pid}").stdout.strip()
    assert owner == "dssr"
    rc, output = run_singularity_job(ApiClient.for_url(unit.url, auth=SERVER_KEY), unique_name("unit-job"),
                                     unit.journal)
    assert rc == 0, output
    assert unit.service_property("NRestarts") == "0"
