"""The connector contract suite against the test cluster's slurmrestd, jobs submitted as kirby."""

import pytest
from slurm_helpers import bearer_for

from dssr_core.testing import ConnectorContract

pytest_plugins = ["rest_fixtures"]

pytestmark = pytest.mark.slow


class TestSlurmRestContract(ConnectorContract):
    #: The cluster has one node, shared with other tests' jobs.
    job_timeout = 120.0
    #: Jobs are exclusive by default: on one node the suite's jobs would run one after another.
    job_devices = ["exclusive=False"]

    @pytest.fixture
    def connector(self, make_rest_connector):
        return make_rest_connector(JARVICE_SLURMRESTD_OUTPUT_ACCESS="ssh")

    @pytest.fixture
    def restart_connector(self, make_rest_connector):
        """A second connector on the same cluster and slurmrestd."""
        return lambda: make_rest_connector(JARVICE_SLURMRESTD_OUTPUT_ACCESS="ssh")

    @pytest.fixture
    def contract_bearer(self):
        """A JWT with kirby's e-mail, made with PyJWT and any key (DSSR reads it, it does not check it)."""
        return bearer_for("kirby@example.org")
