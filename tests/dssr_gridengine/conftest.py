"""A real Grid Engine (``DSSR_CLUSTER_SCHEDULER=gridengine tests/cluster/cluster.sh``) for the
gridengine connector's tests: brought up once per run, its own, so a test may stop its sshd or
qmaster (and the fixture starts them again)."""

import pytest
from gridengine_helpers import cluster, in_root, parse_exports

from dssr_core.settings import Settings
from dssr_gridengine.connector import GridEngineConnector


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
