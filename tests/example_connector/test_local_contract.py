import pytest

from dssr_core.settings import Settings
from dssr_core.testing import ConnectorContract
from dssr_local.plugin import LocalConnector


class TestLocalConnector(ConnectorContract):
    job_timeout = 30

    @pytest.fixture
    def environment(self, tmp_path):
        return {"LOCAL_JOB_DIR": str(tmp_path / "jobs"), "LOCAL_SLOTS": "2"}

    @pytest.fixture
    def connector(self, environment):
        connector = LocalConnector.from_settings(Settings.from_env(environment))
        yield connector
        connector.close()

    @pytest.fixture
    def serve_env(self, environment):
        """`dssr serve` on the same job folder: the restart test starts it, a process of its own."""
        return {"JARVICE_BAREMETAL_CONNECTOR": "local", **environment}

    @pytest.fixture
    def fill_scheduler(self):
        """Two jobs take both slots: the suite's next job waits for one."""
        return lambda submit: [submit("sleep 300"), submit("sleep 300")]

    @pytest.fixture
    def unreachable_connector(self, tmp_path):
        """Its job folder gone: the listings must say so, never answer an empty list."""
        gone = tmp_path / "gone"
        connector = LocalConnector.from_settings(Settings.from_env({"LOCAL_JOB_DIR": str(gone)}))
        gone.rmdir()
        return connector
