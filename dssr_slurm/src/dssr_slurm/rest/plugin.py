"""Registers the ``slurmrestd`` connector (entry point ``slurmrestd`` in the group ``dssr``)."""

import dssr_core
from dssr_core.models import ConnectorSpec
from dssr_slurm.rest.connector import SlurmRestConnector


@dssr_core.hookimpl
def dssr_register_connectors():
    return [ConnectorSpec("slurmrestd", SlurmRestConnector, "Slurm over its REST API (slurmrestd)")]
