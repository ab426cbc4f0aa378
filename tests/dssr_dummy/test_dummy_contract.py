"""The dummy connector passes the connector contract suite of dssr_core.testing."""

import pytest

from dssr_core.testing import ConnectorContract


class TestDummyContract(ConnectorContract):
    job_timeout = 30

    @pytest.fixture
    def connector(self, dummy):
        """A dummy connector on a fresh state dir (2 s kill grace); its jobs are killed after the test."""
        return dummy.connect()

    @pytest.fixture
    def restart_connector(self, dummy):
        return dummy.connect
