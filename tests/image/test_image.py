"""DSSR's image as the jarvice-helm chart runs it: built from the Containerfile on a debootstrap
base (no container registry is reachable here), started with exactly the environment the chart's
template sets, probed on 8080, and a Singularity job run through it on the real Slurm test
cluster (the singularity TEST DOUBLE first on the cluster's PATH: Singularity is not packaged
for Debian 12)."""

import json
import os
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import requests
from image_helpers import Container, refuse_if_taken, run_singularity_job, unique_name

from dssr_core.testing import ApiClient

pytestmark = pytest.mark.slow

PORT = 8080  # the chart's containerPort, Service, NetworkPolicy and probes
URL = f"http://127.0.0.1:{PORT}"
PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def server_key(chart_env) -> tuple[str, str]:
    user, _, password = chart_env["JARVICE_SCHED_SERVER_KEY"].partition(":")
    return user, password


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
        seconds = started.wait_until_it_answers(URL)
        print(f"\nthe container answered /live {seconds:.1f} s after podman run")
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


def test_the_image_runs_dssr_serve_as_a_non_root_user_on_8080(podman, image):
    config = json.loads(podman.run("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["dssr"] and config["Cmd"] == ["serve"]
    assert "8080/tcp" in config["ExposedPorts"] and "9464/tcp" in config["ExposedPorts"]  # API, metrics
    env = dict(item.split("=", 1) for item in config["Env"])
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


def test_the_image_has_openssh_for_the_proxy_of_interactive_jobs(image_root):
    assert (image_root / "usr/bin/ssh").is_file(), "the image has no /usr/bin/ssh (openssh-client)"


def test_the_image_trusts_only_the_certificates_debian_ships(image_root):
    """The build's CA bundle (this machine's, given to pip as a secret) stays out of the image."""
    shipped = {block for path in (image_root / "usr/share/ca-certificates").rglob("*.crt")
               for block in PEM_BLOCK.findall(path.read_text())}
    trusted = set(PEM_BLOCK.findall((image_root / "etc/ssl/certs/ca-certificates.crt").read_text()))
    assert shipped and trusted
    assert trusted <= shipped
    assert list((image_root / "usr/local/share/ca-certificates").glob("*")) == []


def test_the_probes_answer_on_8080_without_the_server_key(container, chart_env):
    assert requests.get(f"{URL}/live", timeout=5).status_code == 200
    ready = requests.get(f"{URL}/ready", timeout=5)
    assert ready.status_code == 200, f"{ready.status_code} {ready.text}\n{container.logs()}"
    assert "OK" in ready.text and version("dssr_core") in ready.text
    assert requests.get(f"{URL}/running", timeout=10).status_code == 401
    assert ApiClient.for_url(URL, auth=server_key(chart_env)).get("/running").status == 200


def test_a_singularity_job_runs_on_slurm_through_the_container(container, chart_env, double_on_cluster):
    api = ApiClient.for_url(URL, auth=server_key(chart_env))
    rc, output = run_singularity_job(api, unique_name("image-job"), container.logs)
    assert rc == 0, output
