"""The connector contract suite against the test cluster's slurmrestd, jobs submitted as kirby."""

import pytest
from slurm_helpers import bearer_for, fill_the_node

from dssr_core.testing import ConnectorContract

pytest_plugins = ["rest_fixtures"]

pytestmark = pytest.mark.slow

#: The connector's output access, for every connector and server of the suite.
OUTPUT = {"JARVICE_SLURMRESTD_OUTPUT_ACCESS": "ssh"}


class TestSlurmRestContract(ConnectorContract):
    #: The cluster has one node, shared with other tests' jobs.
    job_timeout = 120.0
    #: Jobs are exclusive by default: on one node the suite's jobs would run one after another.
    job_devices = ["exclusive=False"]
    #: More cores than the node has: slurmctld refuses the job (EnforcePartLimits=ALL).
    refused_job = {"cores": 4096}
    # walltime stays None: slurmctld ends the job whichever way it came (the slurm-cli suite
    # waits the minute once); this connector's TIMEOUT mapping is in test_states.py.

    @pytest.fixture
    def connector(self, make_rest_connector):
        return make_rest_connector(**OUTPUT)

    @pytest.fixture
    def serve_env(self, rest_env):
        """The same cluster and slurmrestd."""
        return {**rest_env, **OUTPUT}

    @pytest.fixture
    def contract_bearer(self):
        """A JWT with kirby's e-mail, made with PyJWT and any key (DSSR reads it, it does not check it)."""
        return bearer_for("kirby@example.org")

    @pytest.fixture
    def fill_scheduler(self):
        return fill_the_node

    @pytest.fixture
    def unreachable_connector(self, make_rest_connector, free_port):
        """A connector whose slurmrestd is a closed port."""
        return make_rest_connector(JARVICE_SLURMRESTD_URL=f"http://127.0.0.1:{free_port}",
                                   JARVICE_SLURMRESTD_TIMEOUT="3", JARVICE_SLURMRESTD_CONNECT_TIMEOUT="2",
                                   JARVICE_SLURMRESTD_RETRIES="0", **OUTPUT)
