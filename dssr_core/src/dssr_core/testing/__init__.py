"""What a connector author needs to prove a plugin: API helpers and the contract suite.

Use the suite by subclassing it in a test module and providing the ``connector`` and
``serve_env`` fixtures::

    from dssr_core.testing import ConnectorContract

    class TestMyConnector(ConnectorContract):
        @pytest.fixture
        def environment(self, tmp_path):
            return {"MY_STATE_DIR": str(tmp_path)}

        @pytest.fixture
        def connector(self, environment):
            connector = MyConnector.from_settings(Settings.from_env(environment))
            yield connector
            connector.close()

        @pytest.fixture
        def serve_env(self, environment):
            return {"JARVICE_BAREMETAL_CONNECTOR": "mine", **environment}

The fixtures ``dssr_server`` and ``free_port`` come with the pytest plugin that
``dssr_core`` installs (entry point ``pytest11``). docs/testing.md lists everything.
"""

from dssr_core.testing.api import ApiClient, encode_script, request_path, shell_template, wait_until

__all__ = ["ApiClient", "ConnectorContract", "MarkerShellExecutor", "encode_script", "request_path",
           "shell_template", "wait_until"]


def __getattr__(name: str):
    # The contract suite needs pytest; the API helpers (benchmarks use them) do not.
    if name in ("ConnectorContract", "MarkerShellExecutor"):
        from dssr_core.testing import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
