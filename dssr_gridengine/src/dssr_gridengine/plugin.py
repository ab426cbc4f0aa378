"""Registers the ``gridengine`` connector (entry point ``gridengine`` in the group ``dssr``)."""

import dssr_core
from dssr_core.models import ConnectorSpec
from dssr_gridengine import settings
from dssr_gridengine.connector import GridEngineConnector


@dssr_core.hookimpl
def dssr_register_connectors():
    return [ConnectorSpec("gridengine", GridEngineConnector,
                          "Grid Engine over SSH (qsub, qstat, qacct, qdel, qrls)")]


@dssr_core.hookimpl
def dssr_declare_settings():
    """Its own settings; the shared ones (SSH, the users ID mapping, ...) are dssr_core.remote's."""
    return list(settings.SETTINGS)
