"""Registers the ``slurmrestd`` connector (entry point ``slurmrestd`` in the group ``dssr``)."""

import dssr_core
from dssr_core.models import ConnectorSpec
from dssr_slurm.rest import settings
from dssr_slurm.rest.connector import SlurmRestConnector


@dssr_core.hookimpl
def dssr_register_connectors():
    return [ConnectorSpec("slurmrestd", SlurmRestConnector, "Slurm over its REST API (slurmrestd)")]


@dssr_core.hookimpl
def dssr_declare_settings():
    """slurmrestd's own; the shared ones (SSH for the tunnel and ``ssh`` output access, the users ID
    mapping, the status interval) are :mod:`dssr_core.remote`'s."""
    return list(settings.SETTINGS)
