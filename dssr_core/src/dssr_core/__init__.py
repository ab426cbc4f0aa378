"""DSSR core: the plugin framework and the JARVICE legacy downstream API."""

from dssr_core.connector import Connector
from dssr_core.declarations import Setting
from dssr_core.executor import Executor
from dssr_core.hookspecs import hookimpl
from dssr_core.models import ConnectorSpec, ExecutorSpec

__version__ = "0.2.0"
__all__ = ["Connector", "ConnectorSpec", "Executor", "ExecutorSpec", "Setting", "hookimpl", "__version__"]
