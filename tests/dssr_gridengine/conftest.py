"""A real Grid Engine (``DSSR_CLUSTER_SCHEDULER=gridengine tests/cluster/cluster.sh``) for the
gridengine connector's tests: brought up once per run, its own, so a test may stop its sshd or
qmaster (and the fixture starts them again)."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from dssr_gridengine.connector import GridEngineConnector

from dssr_core.settings import Settings

CLUSTER_SH = Path(__file__).resolve().parents[1] / "cluster" / "cluster.sh"
#: The names of these tests' jobs start with one of these (jarvice_ is the connector's prefix).
TEST_JOB_PREFIXES = ("jarvice_contract-", "jarvice_ge-")


def cluster(command: str, timeout: float = 900) -> str:
    """``DSSR_CLUSTER_SCHEDULER=gridengine cluster.sh <command>``; fail the test when it fails."""
    done = subprocess.run(["bash", str(CLUSTER_SH), command], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DSSR_CLUSTER_SCHEDULER": "gridengine"})
    if done.returncode != 0:
        pytest.fail(f"DSSR_CLUSTER_SCHEDULER=gridengine cluster.sh {command} failed ({done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


def in_root(env: dict[str, str], *command: str, user: str = "jarvice") -> subprocess.CompletedProcess:
    """A Grid Engine command as ``user`` over the cluster's sshd, as DSSR runs them."""
    keys = Path(env["DSSR_CLUSTER_DIR"]) / "keys"
    known_hosts = env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]
    port = env["JARVICE_SLURM_CLUSTER_PORT"]
    return subprocess.run(["ssh", "-F", "/dev/null", "-i", str(keys / user), "-p", port,
                           "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                           "-o", "LogLevel=ERROR", f"{user}@127.0.0.1", shlex.join(command)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def ge_cluster():
    """The cluster's settings (what `cluster.sh env` prints), the cluster up; at the end, what
    the tests left in Grid Engine deleted."""
    cluster("up")
    env = parse_exports(cluster("env"))
    assert env.get("JARVICE_BAREMETAL_CONNECTOR") == "gridengine", env
    yield env
    for user in ("kirby", "mario", "jarvice"):
        listing = in_root(env, "qstat", "-u", user)
        ids = [words[0] for words in map(str.split, listing.stdout.splitlines()[2:])
               if len(words) > 2 and words[2].startswith(("jarvice_co", "jarvice_ge"))]
        if ids:
            in_root(env, "qdel", *ids, user=user)


@pytest.fixture(scope="session")
def ge_env(ge_cluster):
    """Settings for a gridengine DSSR on the cluster: a short status interval, the shell executor."""
    return {**ge_cluster, "JARVICE_BAREMETAL_EXECUTOR": "shell", "JARVICE_SLURM_STATUS_INTERVAL": "0.5"}


@pytest.fixture
def make_connector(ge_env):
    """A factory: ``make_connector(**overrides)`` builds a connector, closed after the test."""
    made = []

    def make(**overrides) -> GridEngineConnector:
        connector = GridEngineConnector.from_settings(Settings.from_env({**ge_env, **overrides}))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def daemons(ge_cluster):
    """Stop and start the cluster's sshd and qmaster (its own: no other test uses them); what a
    test stopped is started again after it."""
    stopped = set()

    class Daemons:
        def stop(self, daemon: str) -> None:
            cluster(f"stop-{daemon}", timeout=120)
            stopped.add(daemon)

        def start(self, daemon: str) -> None:
            cluster(f"start-{daemon}", timeout=180)
            stopped.discard(daemon)

    yield Daemons()
    for daemon in sorted(stopped):
        cluster(f"start-{daemon}", timeout=180)
