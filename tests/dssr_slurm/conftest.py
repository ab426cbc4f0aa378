"""Fixtures for the Slurm tests: the real single-host clusters and connectors pointed at them.

Every test that uses ``cluster_env`` (directly or through ``slurm_env``, ``rest_env``,
``make_connector``, ...) runs once per Slurm version of ``DSSR_TEST_SLURM`` (comma-separated;
default all of :data:`slurm_helpers.SLURM_VERSIONS`), its id ending in ``[22.05]``, ``[24.11]``
or ``[26.05]``. ``cluster_env`` runs ``tests/cluster/cluster.sh up`` with that
``DSSR_CLUSTER_SLURM`` once per test run (it is idempotent) and reads ``cluster.sh env``; pytest
groups the tests by version, so one cluster is brought up after the other. When a cluster
cannot be brought up, the tests that need it FAIL: they never skip.
"""

import contextlib
import fcntl
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import slurm_helpers
from slurm_helpers import SERVED_API_VERSIONS, SLURM_VERSIONS, slurm

from dssr_core.settings import Settings
from dssr_core.testing import wait_until
from dssr_slurm.commands.connector import SlurmCliConnector

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "tests" / "cluster" / "cluster.sh"
#: Job names of these tests start with one of these (contract-..., cli-...), so that the
#: cleanup at the end cancels only what these tests left behind.
TEST_JOB_PREFIXES = ("jarvice_contract-", "jarvice_cli-", "jarvice_rest-")
#: Every job DSSR submits (tests, benches, the soak) has a name starting so.
DSSR_JOB_PREFIXES = ("jarvice_",)


def selected_versions() -> list[str]:
    """The Slurm versions of ``DSSR_TEST_SLURM`` (all when unset), checked."""
    text = os.environ.get("DSSR_TEST_SLURM", "")
    versions = [word.strip() for word in text.split(",") if word.strip()] or list(SLURM_VERSIONS)
    unknown = [version for version in versions if version not in SLURM_VERSIONS]
    if unknown:
        raise pytest.UsageError(f"DSSR_TEST_SLURM={text}: {', '.join(unknown)} is not one of "
                                f"{', '.join(SLURM_VERSIONS)}")
    return versions


def pytest_generate_tests(metafunc):
    """Each selected Slurm version; with ``served_api``, each API version its slurmrestd serves.

    ``@pytest.mark.slurm_versions("24.11", "26.05")`` keeps a test to those versions (for what
    22.05 cannot do); when none of them is selected, the test is deselected.
    ``@pytest.mark.one_slurm_version`` runs a test on the first selected version only: for what
    DSSR alone decides, where another version of Slurm would run the same thing again.
    """
    versions = selected_versions()
    if metafunc.definition.get_closest_marker("one_slurm_version") is not None:
        versions = versions[:1]
    marker = metafunc.definition.get_closest_marker("slurm_versions")
    if marker is not None:
        unknown = set(marker.args) - set(SLURM_VERSIONS)
        if unknown:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: slurm_versions{marker.args} names "
                                    f"{', '.join(sorted(unknown))}, not one of {', '.join(SLURM_VERSIONS)}")
        versions = [version for version in versions if version in marker.args]
    if "served_api" in metafunc.fixturenames:
        pairs = [(version, api) for version in versions for api in SERVED_API_VERSIONS[version]]
        metafunc.parametrize(("slurm_version", "served_api"), pairs, indirect=["slurm_version"],
                             scope="session", ids=[f"{version}-{api}" for version, api in pairs])
    elif "slurm_version" in metafunc.fixturenames:
        metafunc.parametrize("slurm_version", versions, indirect=True, scope="session")


def pytest_collection_modifyitems(config, items):
    """Deselect the tests whose ``slurm_versions`` are none of the selected versions."""
    unwanted = [item for item in items if item.get_closest_marker("slurm_versions") is not None
                and getattr(item, "callspec", None) is not None
                and item.callspec.params.get("slurm_version") not in SLURM_VERSIONS]
    if unwanted:
        config.hook.pytest_deselected(items=unwanted)
        items[:] = [item for item in items if item not in unwanted]


@pytest.fixture(scope="session")
def slurm_version(request) -> str:
    """The Slurm version the test runs on (``DSSR_CLUSTER_SLURM`` of its cluster)."""
    return request.param


def cluster(command: str, version: str = SLURM_VERSIONS[0], timeout: float = 900) -> str:
    """Run ``cluster.sh <command>`` for ``version`` (default: the host's 22.05); fail the test with
    its output when it fails."""
    done = subprocess.run(["bash", str(CLUSTER_SH), command], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "DSSR_CLUSTER_SLURM": version})
    if done.returncode != 0:
        pytest.fail(f"DSSR_CLUSTER_SLURM={version} cluster.sh {command} failed ({done.returncode}):\n"
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


@pytest.fixture(scope="session")
def cluster_env(slurm_version):
    """The cluster's settings (JARVICE_SLURM_*, DSSR_CLUSTER_DIR, ...), the cluster up; root's
    Slurm commands of the helpers (:func:`slurm_helpers.slurm`) then ask this cluster."""
    cluster("up", slurm_version)
    env = parse_exports(cluster("env", slurm_version))
    assert env.get("JARVICE_SLURM_CLUSTER_ADDR"), "cluster.sh env printed no JARVICE_SLURM_CLUSTER_ADDR"
    assert env.get("DSSR_CLUSTER_SLURM") == slurm_version, env.get("DSSR_CLUSTER_SLURM")
    slurm_helpers.use_cluster(env)
    with open(SESSIONS_LOCK, "a") as lock:
        cancel_leftover_jobs(lock)
        fcntl.flock(lock, fcntl.LOCK_SH)  # held while this run uses the clusters
        yield env
        cancel_test_jobs(lock)


#: Every test run holds this lock shared; the cleanup needs it alone.
SESSIONS_LOCK = "/tmp/dssr-test-cluster-sessions.lock"


def queued_job_ids(prefixes: tuple[str, ...]) -> set[str]:
    """The ids of the cluster's live jobs whose names start with one of ``prefixes``."""
    listing = slurm("squeue", "-h", "-a", "-o", "%i %j")
    return {words[0] for words in map(str.split, listing.stdout.splitlines())
            if len(words) == 2 and words[1].startswith(prefixes)}


@contextlib.contextmanager
def alone_on_the_clusters(lock):
    """True inside when no other test run uses the clusters (this run holds the lock alone), else
    False; afterwards the lock is held shared again."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        yield False
        return
    try:
        yield True
    finally:
        fcntl.flock(lock, fcntl.LOCK_SH)


def cancel_test_jobs(lock) -> None:
    """Cancel what the tests left running, unless another test run still uses the cluster (its
    jobs carry the same names): the last run to end cancels them all."""
    with alone_on_the_clusters(lock) as alone:
        if alone and (ids := queued_job_ids(TEST_JOB_PREFIXES)):
            slurm("scancel", *ids)


def cancel_leftover_jobs(lock) -> None:
    """A run that finds no other run on the clusters cancels every DSSR job (``jarvice_...``) left
    on this one, and waits for them to end: slurmctld keeps the jobs of a killed test run or bench
    across restarts, and a leftover job holding the node's cores fails every test that needs them."""
    with alone_on_the_clusters(lock) as alone:
        if alone and (ids := queued_job_ids(DSSR_JOB_PREFIXES)):
            slurm("scancel", *ids)
            wait_until(lambda: not ids & queued_job_ids(DSSR_JOB_PREFIXES), 120, interval=0.5,
                       what=f"the {len(ids)} jobs left by an earlier run to end")


@pytest.fixture(scope="session")
def slurm_env(cluster_env):
    """Settings for a slurm-cli DSSR on the test cluster (a short status interval for speed), with the
    shell executor the tests' scripts are written for (a Slurm connector's default is singularity)."""
    return {**cluster_env, "JARVICE_BAREMETAL_CONNECTOR": "slurm-cli", "JARVICE_BAREMETAL_EXECUTOR": "shell",
            "JARVICE_SLURM_STATUS_INTERVAL": "0.5"}


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
    controller = Daemons(cluster_env["DSSR_CLUSTER_SLURM"])
    yield controller
    controller.restore()


class Daemons:
    def __init__(self, version: str):
        self.version = version
        self.stopped: set[str] = set()

    def stop(self, daemon: str) -> None:
        cluster(f"stop-{daemon}", self.version, timeout=120)
        self.stopped.add(daemon)

    def start(self, daemon: str) -> None:
        cluster(f"start-{daemon}", self.version, timeout=180)
        self.stopped.discard(daemon)

    def restore(self) -> None:
        for daemon in sorted(self.stopped):
            self.start(daemon)
