"""The connector contract suite against the real cluster, jobs submitted as kirby."""

import pytest
from slurm_helpers import bearer_for

from dssr_core.testing import ConnectorContract

pytestmark = pytest.mark.slow


class TestSlurmCliContract(ConnectorContract):
    #: The cluster has one node, shared with other tests' jobs.
    job_timeout = 120.0
    #: Jobs are exclusive by default: on one node the suite's jobs would run one after another.
    job_devices = ["exclusive=False"]

    @pytest.fixture
    def connector(self, make_connector):
        return make_connector()

    @pytest.fixture
    def restart_connector(self, make_connector):
        """A second connector on the same cluster: Slurm holds the jobs, the connector its snapshot."""
        return make_connector

    @pytest.fixture
    def contract_bearer(self):
        return bearer_for("kirby@example.org")
