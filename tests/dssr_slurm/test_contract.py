"""The connector contract suite against the real cluster, jobs submitted as kirby."""

import pytest
from slurm_helpers import bearer_for, fill_the_node

from dssr_core.testing import ConnectorContract

pytestmark = pytest.mark.slow

#: Fail fast where the suite makes an outage (a closed port): seconds, not the defaults' minute.
FAST = {"JARVICE_SLURM_COMMAND_TIMEOUT": "3", "JARVICE_SLURM_SSH_CONNECT_TIMEOUT": "2"}


class TestSlurmCliContract(ConnectorContract):
    #: The cluster has one node, shared with other tests' jobs.
    job_timeout = 120.0
    #: Jobs are exclusive by default: on one node the suite's jobs would run one after another.
    job_devices = ["exclusive=False"]
    #: More cores than the node has: sbatch refuses the job (EnforcePartLimits=ALL).
    refused_job = {"cores": 4096}
    #: Slurm's time limits are whole minutes, and slurmctld looks at them every 30 s or so.
    walltime = "00:01:00"

    @pytest.fixture
    def connector(self, make_connector):
        return make_connector()

    @pytest.fixture
    def serve_env(self, slurm_env):
        """The same cluster: Slurm holds the jobs, each DSSR its own snapshot."""
        return slurm_env

    @pytest.fixture
    def contract_bearer(self):
        return bearer_for("kirby@example.org")

    @pytest.fixture
    def fill_scheduler(self):
        return fill_the_node

    @pytest.fixture
    def unreachable_connector(self, make_connector, free_port):
        """A connector whose login node is a closed port."""
        return make_connector(JARVICE_SLURM_CLUSTER_PORT=str(free_port), **FAST)

    @pytest.mark.one_slurm_version
    def test_job_past_its_walltime_ends_timeout(self, api, contract_bearer):
        """A minute and more of waiting: once, for what DSSR maps (slurmctld ends the job)."""
        super().test_job_past_its_walltime_ends_timeout(api, contract_bearer)
