"""Fixtures for the image test: podman set up by the project's script, the base and the image
built by deploy/, the test cluster's settings, and the environment the jarvice-helm chart gives
its Slurm scheduler's container."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DOUBLE = ROOT / "tests" / "doubles" / "singularity"
BASE_IMAGE = "localhost/dssr-base:bookworm"
IMAGE = "localhost/dssr:test"


def _slurm_test_module(name: str):
    """A module of tests/dssr_slurm (not an importable package): the cluster.sh helpers of its
    conftest, and the chart's environment that its chart tests use too."""
    sys.path.insert(0, str(ROOT / "tests" / "dssr_slurm"))  # its conftest imports slurm_helpers from there
    spec = importlib.util.spec_from_file_location(f"dssr_slurm_tests_{name}",
                                                  ROOT / "tests" / "dssr_slurm" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_slurm = _slurm_test_module("conftest")
_chart = _slurm_test_module("chart_environment")


class Podman:
    """podman with the project's containers.conf (runc, cgroupfs, no default ulimits)."""

    def __init__(self, containers_conf: str):
        self.env = {**os.environ, "CONTAINERS_CONF": containers_conf}

    def run(self, *args, env: dict | None = None, timeout: float = 120, check: bool = True):
        done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})})
        if check and done.returncode != 0:
            pytest.fail(f"podman {' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-4000:]}",
                        pytrace=False)
        return done

    def script(self, *argv, timeout: float = 900) -> float:
        """Run one of the project's scripts with this podman; its duration in seconds."""
        started = time.monotonic()
        done = subprocess.run(["bash", *map(str, argv)], capture_output=True, text=True, timeout=timeout,
                              env=self.env, cwd=ROOT)
        if done.returncode != 0:
            output = f"{done.stdout[-3000:]}\n{done.stderr[-4000:]}"
            pytest.fail(f"{argv[0]} failed ({done.returncode}):\n{output}", pytrace=False)
        return time.monotonic() - started


@pytest.fixture(scope="session")
def podman() -> Podman:
    done = subprocess.run(["bash", str(HERE / "setup-podman.sh")], capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        pytest.fail(f"setup-podman.sh failed:\n{done.stderr[-4000:]}", pytrace=False)
    return Podman(done.stdout.strip())


@pytest.fixture(scope="session")
def image(podman) -> str:
    """The image, built on the debootstrap base; the build's figures are printed (pytest -s)."""
    base_seconds = podman.script(ROOT / "deploy" / "build-base.sh", BASE_IMAGE)
    build_seconds = podman.script(ROOT / "deploy" / "build-image.sh", "--network=host",
                                  "--build-arg", f"BASE={BASE_IMAGE}", "--tag", IMAGE)
    size = podman.run("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip()
    print(f"\nimage {IMAGE}: {int(size) / 1e6:.0f} MB; "
          f"base {base_seconds:.1f} s, build {build_seconds:.1f} s")
    return IMAGE


@pytest.fixture(scope="session")
def cluster_env() -> dict[str, str]:
    """The test cluster's settings (cluster.sh env), the cluster up."""
    _slurm.cluster("up")
    return _slurm.parse_exports(_slurm.cluster("env"))


def login_node_host_key(known_hosts: str) -> str:
    """The login node's known_hosts line, as an operator would pin it."""
    lines = [line for line in Path(known_hosts).read_text().splitlines() if line and not line.startswith("#")]
    assert lines, f"{known_hosts} holds no host key"
    return lines[0]


class Environment(dict):
    """A container's environment; its repr names the variables only (one holds a private key)."""

    def __repr__(self) -> str:
        return f"Environment({', '.join(sorted(self))})"


@pytest.fixture(scope="session")
def chart_env(cluster_env) -> Environment:
    """Every variable templates/jarvice-slurm-scheduler.yaml sets with the chart's default values,
    for a downstream cluster with a server key, an ingress issuer and a root CA, pointed at the
    test cluster; plus
    JARVICE_SLURM_SSH_HOST_KEY, which an operator adds to the scheduler's env (the chart mounts
    no known_hosts file). Nothing else: no connector, no executor, no WAITRESS_*."""
    return Environment(_chart.chart_environment(
        cluster_env,
        JARVICE_SLURM_SSH_HOST_KEY=login_node_host_key(cluster_env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]),
        # No Keycloak here: with its token URL DSSR verifies bearers against the realm's keys,
        # and this test's bearer is the unsigned kind the identity tests refuse.
        JARVICE_KEYCLOAK_TOKEN_URL="",
    ))


@pytest.fixture
def double_on_cluster(cluster_env):
    """The singularity TEST DOUBLE, first on the cluster's PATH (replaced atomically: other
    tests' jobs may be running it)."""
    bin_dir = Path(cluster_env["DSSR_CLUSTER_BIN"])
    with tempfile.NamedTemporaryFile(dir=bin_dir, prefix=".singularity-", delete=False) as copy:
        copy.write(DOUBLE.read_bytes())
    os.chmod(copy.name, 0o755)
    os.replace(copy.name, bin_dir / "singularity")
