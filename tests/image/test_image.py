"""DSSR's image as the jarvice-helm chart runs it: built from the Containerfile on a debootstrap
base (no container registry is reachable here), started with exactly the environment the chart's
template sets, probed on 8080, and a Singularity job run through it on the real Slurm test
cluster (the singularity TEST DOUBLE first on the cluster's PATH: Singularity is not packaged
for Debian 12)."""

import json
import os
import re
import socket
import subprocess
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import jwt
import pytest
import requests

from dssr_core.testing import ApiClient, wait_until
from dssr_singularity.executor import SingularityExecutor

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "tests" / "doubles" / "singularity"
PORT = 8080  # the chart's containerPort, Service, NetworkPolicy and probes
URL = f"http://127.0.0.1:{PORT}"
APP = "nvcr.io/nvidia/pytorch:23.10-py3"
BEARER = jwt.encode({"email": "kirby@example.org", "preferred_username": "kirby"},
                    "upstream-signing-key-0123456789abcdef", algorithm="HS256")
PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def server_key(chart_env) -> tuple[str, str]:
    user, _, password = chart_env["JARVICE_SCHED_SERVER_KEY"].partition(":")
    return user, password


def refuse_if_taken(port: int) -> None:
    """Host networking binds the host's own port: fail clearly when something holds it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            pytest.fail(f"port {port} is taken on this host ({error.strerror}); the container listens "
                        f"on {port} as in the chart, with --network=host: stop what holds it "
                        f"(ss -ltnp 'sport = :{port}')", pytrace=False)


class Container:
    def __init__(self, podman, name: str):
        self.podman = podman
        self.name = name

    def logs(self) -> str:
        done = self.podman.run("logs", self.name, check=False)
        return (done.stdout + done.stderr)[-6000:]

    def running(self) -> bool:
        done = self.podman.run("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return done.stdout.strip() == "true"

    def wait_until_it_answers(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                pytest.fail(f"the container stopped:\n{self.logs()}", pytrace=False)
            try:
                if requests.get(f"{URL}/live", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        pytest.fail(f"the container did not answer /live on {PORT} within {timeout} s:\n{self.logs()}",
                    pytrace=False)


@pytest.fixture(scope="module")
def container(podman, image, chart_env):
    """The image running with the chart's environment only, on the host's network."""
    refuse_if_taken(PORT)
    name = f"dssr-image-test-{os.getpid()}"
    podman.run("rm", "--force", name, check=False)
    # `--env NAME` takes the value from podman's own environment: the key never enters argv.
    env_options = [option for key in chart_env for option in ("--env", key)]
    try:
        podman.run("run", "--detach", "--name", name, "--network=host", *env_options, image,
                   env=chart_env)
        started = Container(podman, name)
        started.wait_until_it_answers()
        yield started
    finally:
        podman.run("rm", "--force", name, check=False, timeout=60)


@pytest.fixture(scope="module")
def image_root(podman, image):
    """The image's files, mounted read-only from podman's storage."""
    root = podman.run("image", "mount", image).stdout.strip()
    try:
        yield Path(root)
    finally:
        podman.run("image", "unmount", image, check=False)


@pytest.fixture
def double_on_cluster(cluster_env):
    """The singularity double, first on the cluster's PATH (replaced atomically: other tests'
    jobs may be running it)."""
    bin_dir = Path(cluster_env["DSSR_CLUSTER_BIN"])
    with tempfile.NamedTemporaryFile(dir=bin_dir, prefix=".singularity-", delete=False) as copy:
        copy.write(DOUBLE.read_bytes())
    os.chmod(copy.name, 0o755)
    os.replace(copy.name, bin_dir / "singularity")


def test_the_image_runs_dssr_serve_as_a_non_root_user_on_8080(podman, image):
    inspected = json.loads(podman.run("image", "inspect", image).stdout)[0]["Config"]
    assert inspected["User"] == "10001:10001"
    assert inspected["Entrypoint"] == ["dssr"] and inspected["Cmd"] == ["serve"]
    assert "8080/tcp" in inspected["ExposedPorts"]
    env = dict(item.split("=", 1) for item in inspected["Env"])
    assert env["WAITRESS_BIND_ADDRESS"] == "0.0.0.0" and env["WAITRESS_PORT"] == "8080"
    assert not [key for key in env if key.startswith("PIP_")]


def test_no_pip_setting_ca_or_local_index_of_the_build_is_left_in_the_image(podman, image, image_root):
    leftovers = [str(path) for path in image_root.rglob("*")
                 if path.name in ("pip.conf", "pip.ini", "constraints.txt")
                 or (path.suffix == ".whl" and path.parent != image_root / "usr/share/python-wheels")]
    assert leftovers == []
    for build_only in ("opt/pypi", "opt/pypi-more", "opt/wheels", "etc/xdg/pip", "run/secrets", "src",
                       "root/.config/pip"):
        assert not (image_root / build_only).exists(), build_only
    history = podman.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "PIP_" not in history and "/opt/pypi" not in history


def test_the_image_trusts_only_the_certificates_debian_ships(image_root):
    """The build's CA bundle (this machine's, given to pip as a secret) stays out of the image."""
    shipped = {block for path in (image_root / "usr/share/ca-certificates").rglob("*.crt")
               for block in PEM_BLOCK.findall(path.read_text())}
    trusted = set(PEM_BLOCK.findall((image_root / "etc/ssl/certs/ca-certificates.crt").read_text()))
    assert shipped and trusted
    assert trusted <= shipped
    assert list((image_root / "usr/local/share/ca-certificates").glob("*")) == []


def test_the_probes_answer_on_8080_without_the_server_key(container, chart_env):
    live = requests.get(f"{URL}/live", timeout=5)
    assert live.status_code == 200
    ready = requests.get(f"{URL}/ready", timeout=5)
    assert ready.status_code == 200, f"{ready.status_code} {ready.text}\n{container.logs()}"
    assert "OK" in ready.text and version("dssr_core") in ready.text
    assert requests.get(f"{URL}/running", timeout=10).status_code == 401
    assert ApiClient.for_url(URL, auth=server_key(chart_env)).get("/running").status == 200


def test_a_singularity_job_runs_on_slurm_through_the_container(container, chart_env, double_on_cluster):
    api = ApiClient.for_url(URL, auth=server_key(chart_env))
    name = f"image-job-{os.getpid()}-{int(time.time())}"
    token = f"hello-from-the-image-{os.getpid()}"
    template = SingularityExecutor.template_for(f"echo {token} rank $PROCESS_PROCID of $JOB_NNODES",
                                                image=APP, cores=1)
    answer = api.submit(name, template, executor="singularity", bearer=BEARER)
    assert answer.status == 200, f"{answer.status} {answer.text}\n{container.logs()}"
    jobid, _ = answer.json
    try:
        assert slurm_job_name(jobid) == f"jarvice_{name}"
        wait_until(lambda: all([name, jobid] not in api.get(p).json for p in ("/queued", "/running")),
                   120, interval=1, what=f"{name} to end")
        rc, _, (output, _) = api.post("/exitstatus", {"name": name, "number": 1, "jobid": jobid}).json
    finally:
        subprocess.run(["scancel", str(jobid)], capture_output=True)
    assert rc == 0, output
    assert f"{token} rank 0 of 1" in output
    assert "JARVICE_CMD_SUCCESS" in output.splitlines()


def slurm_job_name(jobid) -> str:
    """The job's name as Slurm itself records it: the job is Slurm's, not a local process."""
    def look() -> str:
        done = subprocess.run(["sacct", "-X", "-n", "-P", "-j", str(jobid), "-o", "JobName"],
                              capture_output=True, text=True)
        return done.stdout.strip()
    return wait_until(look, 30, interval=0.5, what=f"Slurm to record job {jobid}")

