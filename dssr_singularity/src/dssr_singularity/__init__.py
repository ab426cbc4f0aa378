"""DSSR's ``singularity`` executor: JARVICE apps in Singularity/Apptainer containers."""

from dssr_singularity.executor import SingularityConfig, SingularityExecutor

__version__ = "0.1.0"
__all__ = ["SingularityConfig", "SingularityExecutor", "__version__"]
