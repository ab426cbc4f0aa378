"""The connector contract suite against the real cluster, jobs submitted as kirby."""

import pytest
from slurm_helpers import bearer_for

from dssr_core.testing import ConnectorContract

pytestmark = pytest.mark.slow


class TestSlurmCliContract(ConnectorContract):
    #: Jobs are exclusive by default and the cluster has one node: they run one after another.
    job_timeout = 120.0

    @pytest.fixture
    def connector(self, make_connector):
        return make_connector()

    @pytest.fixture
    def contract_bearer(self):
        return bearer_for("kirby@example.org")
