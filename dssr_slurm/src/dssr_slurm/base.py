"""The job logic both Slurm connectors share is :class:`dssr_core.remote.base.RemoteConnector`'s;
this names the scheduler in its messages."""

from dssr_core.remote.base import RemoteConnector


class SlurmConnector(RemoteConnector):
    """A connector to Slurm: the subclass supplies how Slurm is asked."""

    scheduler = "Slurm"
