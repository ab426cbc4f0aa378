"""Fixtures for the Slurm tests: the real single-host cluster and connectors pointed at it.

``cluster_env`` runs ``tests/cluster/cluster.sh up`` once per test run (it is idempotent) and
reads ``cluster.sh env``. When the cluster cannot be brought up, the tests that need it FAIL:
they never skip.
"""

import shlex
import subprocess
import time
from pathlib import Path

import pytest

from dssr_core.settings import Settings
from dssr_slurm.commands.connector import SlurmCliConnector

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "tests" / "cluster" / "cluster.sh"
#: Job names of these tests start with one of these (contract-..., cli-...), so that the
#: cleanup at the end cancels only what these tests left behind.
TEST_JOB_PREFIXES = ("jarvice_contract-", "jarvice_cli-")


def cluster(command: str, timeout: float = 900) -> str:
    """Run ``cluster.sh <command>``; fail the test with its output when it fails."""
    done = subprocess.run(["bash", str(CLUSTER_SH), command], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"cluster.sh {command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}",
                    pytrace=False)
    return done.stdout


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


@pytest.fixture(scope="session")
def cluster_env():
    """The cluster's settings (JARVICE_SLURM_*, DSSR_CLUSTER_DIR, ...), the cluster up."""
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    cluster("up")
    env = parse_exports(cluster("env"))
    assert env.get("JARVICE_SLURM_CLUSTER_ADDR"), "cluster.sh env printed no JARVICE_SLURM_CLUSTER_ADDR"
    yield env
    cancel_test_jobs(submitted_since=started)


def cancel_test_jobs(submitted_since: str) -> None:
    """Cancel what these tests left running: their names, submitted during this run only."""
    listing = subprocess.run(["squeue", "-h", "-a", "-o", "%i %j %V"], capture_output=True, text=True)
    ids = []
    for line in listing.stdout.splitlines():
        words = line.split()
        if len(words) == 3 and words[1].startswith(TEST_JOB_PREFIXES) and words[2] >= submitted_since:
            ids.append(words[0])
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


@pytest.fixture(scope="session")
def slurm_env(cluster_env):
    """Settings for a slurm-cli DSSR on the test cluster (a short status interval for speed)."""
    return {**cluster_env, "JARVICE_BAREMETAL_CONNECTOR": "slurm-cli", "JARVICE_SLURM_STATUS_INTERVAL": "0.5"}


@pytest.fixture
def make_connector(slurm_env):
    """A factory: ``make_connector(**overrides)`` builds a connector, closed after the test."""
    made = []

    def make(**overrides) -> SlurmCliConnector:
        connector = SlurmCliConnector.from_settings(Settings.from_env({**slurm_env, **overrides}))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture(scope="session")
def daemons(cluster_env):
    """Stop and start the cluster's daemons; whatever a test stopped is started again after it."""
    controller = Daemons()
    yield controller
    controller.restore()


class Daemons:
    def __init__(self):
        self.stopped: set[str] = set()

    def stop(self, daemon: str) -> None:
        cluster(f"stop-{daemon}", timeout=120)
        self.stopped.add(daemon)

    def start(self, daemon: str) -> None:
        cluster(f"start-{daemon}", timeout=180)
        self.stopped.discard(daemon)

    def restore(self) -> None:
        for daemon in sorted(self.stopped):
            self.start(daemon)
