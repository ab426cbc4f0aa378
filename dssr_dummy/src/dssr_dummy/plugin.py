"""The ``dummy`` entry point of the ``dssr`` group: registers :class:`DummyConnector`."""

import dssr_core
from dssr_core.models import ConnectorSpec
from dssr_dummy import config
from dssr_dummy.connector import DummyConnector


@dssr_core.hookimpl
def dssr_register_connectors():
    return [ConnectorSpec("dummy", DummyConnector, "Runs jobs as local processes (no scheduler)")]


@dssr_core.hookimpl
def dssr_declare_settings():
    return list(config.SETTINGS)
