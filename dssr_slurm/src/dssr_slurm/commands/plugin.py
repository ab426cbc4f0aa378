"""Registers the ``slurm-cli`` connector (entry point ``slurm-cli`` in the group ``dssr``)."""

import dssr_core
from dssr_core.models import ConnectorSpec
from dssr_slurm.commands.connector import SlurmCliConnector


@dssr_core.hookimpl
def dssr_register_connectors():
    return [ConnectorSpec("slurm-cli", SlurmCliConnector,
                          "Slurm over SSH (sbatch, squeue, sacct, scancel, scontrol)")]

