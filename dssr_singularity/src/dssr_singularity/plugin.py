"""Registers the ``singularity`` executor with DSSR (entry point group ``dssr``)."""

import dssr_core
from dssr_core.models import ExecutorSpec
from dssr_singularity import executor
from dssr_singularity.executor import SingularityExecutor


@dssr_core.hookimpl
def dssr_register_executors():
    return [ExecutorSpec("singularity", SingularityExecutor,
                         "JARVICE apps in Singularity/Apptainer containers")]


@dssr_core.hookimpl
def dssr_declare_settings():
    return list(executor.SETTINGS)
