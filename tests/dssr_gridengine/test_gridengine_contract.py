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

    @pytest.fixture
    def restart_connector(self, make_connector):
        """A second connector on the same cluster: Grid Engine holds the jobs, the connector its snapshot."""
        return make_connector

    @pytest.fixture
    def contract_bearer(self):
        return bearer_for("kirby@example.org")
