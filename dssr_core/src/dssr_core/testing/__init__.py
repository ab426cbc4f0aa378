"""What a connector author needs to prove a plugin: API helpers and the contract suite.

Use the suite by subclassing it in a test module and providing a ``connector`` fixture::

    from dssr_core.testing import ConnectorContract

    class TestMyConnector(ConnectorContract):
        @pytest.fixture
        def connector(self, tmp_path):
            connector = MyConnector.from_settings(Settings.from_env({...}))
            yield connector
            connector.close()

The fixtures ``dssr_server`` and ``free_port`` come with the pytest plugin that
``dssr_core`` installs (entry point ``pytest11``).
"""

from dssr_core.testing.api import ApiClient, encode_script, shell_template, wait_until

__all__ = ["ApiClient", "ConnectorContract", "encode_script", "shell_template", "wait_until"]


def __getattr__(name: str):
    # The contract suite needs pytest; the API helpers (benchmarks use them) do not.
    if name == "ConnectorContract":
        from dssr_core.testing.contract import ConnectorContract

        return ConnectorContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
