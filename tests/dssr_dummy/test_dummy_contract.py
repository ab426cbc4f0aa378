"""The dummy connector passes the connector contract suite of dssr_core.testing.

The dummy is not a scheduler: it refuses no job and has no walltime, so those two tests are not
opted in to (the run's summary lists them).
"""

import pytest

from dssr_core.testing import ConnectorContract

#: Jobs the contract's dummy runs at once: the suite's tests run at most two; a third waits.
SLOTS = 2


class TestDummyContract(ConnectorContract):
    job_timeout = 30

    @pytest.fixture
    def settings(self, dummy):
        """The dummy's settings: a fresh state dir, 2 s kill grace, :data:`SLOTS` jobs at once."""
        return {"JARVICE_DUMMY_STATE_DIR": str(dummy.state_dir), "JARVICE_DUMMY_KILL_GRACE": "2",
                "JARVICE_DUMMY_MAX_RUNNING": str(SLOTS)}

    @pytest.fixture
    def connector(self, dummy, settings):
        """A dummy connector; its jobs are killed after the test."""
        return dummy.connect(**settings)

    @pytest.fixture
    def serve_env(self, settings):
        return {"JARVICE_BAREMETAL_CONNECTOR": "dummy", **settings}

    @pytest.fixture
    def fill_scheduler(self):
        """:data:`SLOTS` jobs that sleep: the next one waits for a slot."""
        return lambda submit: [submit("sleep 300") for _ in range(SLOTS)]

    @pytest.fixture
    def unreachable_connector(self, dummy, tmp_path):
        """A dummy whose job database is gone: a closed connector has no store, the dummy's
        only backend (it answers ClusterUnavailable as a lost database would)."""
        connector = dummy.connect(JARVICE_DUMMY_STATE_DIR=str(tmp_path / "elsewhere"))
        connector.close()
        return connector
