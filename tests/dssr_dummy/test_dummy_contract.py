"""The dummy connector passes the connector contract suite of dssr_core.testing."""

import pytest

from dssr_core.settings import Settings
from dssr_core.testing import ConnectorContract
from dssr_dummy import DummyConnector


class TestDummyContract(ConnectorContract):
    job_timeout = 30

    @pytest.fixture
    def connector(self, tmp_path):
        connector = DummyConnector.from_settings(
            Settings.from_env({"JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state")}))
        yield connector
        connector.close()
