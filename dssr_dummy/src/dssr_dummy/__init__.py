"""DSSR's ``dummy`` connector: jobs run as local processes, tracked in SQLite."""

from dssr_dummy.config import DummyConfig, TimerMode
from dssr_dummy.connector import DummyConnector

__version__ = "0.1.0"
__all__ = ["DummyConfig", "DummyConnector", "TimerMode", "__version__"]
