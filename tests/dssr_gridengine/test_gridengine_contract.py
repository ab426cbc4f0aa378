"""The connector contract suite against the real Grid Engine, jobs submitted as kirby."""

import jwt
import pytest

from dssr_core.testing import ConnectorContract

pytestmark = pytest.mark.slow


def bearer_for(email: str) -> str:
    """A JWT like upstream's bearer (DSSR reads its e-mail; the tests do not check signatures)."""
    return jwt.encode({"email": email}, "any-key-will-do-dssr-does-not-check-it", algorithm="HS256")


class TestGridEngineContract(ConnectorContract):
    #: The cluster has one host with 4 slots.
    job_timeout = 90.0
    job_devices = ["exclusive=False"]

    @pytest.fixture
    def connector(self, make_connector):
        return make_connector()

    #: Grid Engine's job listing carries no comment: the connector keeps no script fingerprint
    #: with a job, so a live name with another script is answered as a retry.
    tells_reused_names = False

    @pytest.fixture
    def serve_env(self, ge_env):
        """The same cluster: Grid Engine holds the jobs, each DSSR its own snapshot."""
        return ge_env

    @pytest.fixture
    def unreachable_connector(self, make_connector, free_port):
        """A connector whose login node is a closed port."""
        return make_connector(JARVICE_SLURM_CLUSTER_PORT=str(free_port), JARVICE_SLURM_COMMAND_TIMEOUT="3",
                              JARVICE_SLURM_SSH_CONNECT_TIMEOUT="2")

    @pytest.fixture
    def contract_bearer(self):
        return bearer_for("kirby@example.org")
