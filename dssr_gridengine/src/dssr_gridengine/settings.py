"""The settings only the ``gridengine`` connector reads: how JARVICE's devices become ``qsub``
options on this site (Grid Engine leaves parallel environments and resources to the site).

The login node, the accounts, the users ID mapping, the status interval and the scratch
directory are :mod:`dssr_core.remote`'s settings, shared with the Slurm connectors.
"""

import re

import attrs

from dssr_core.errors import SettingsError
from dssr_core.settings import Setting

PARALLEL_ENVIRONMENT = Setting(
    "JARVICE_GRIDENGINE_PE", "the parallel environment a job that asks for more than one core gets its "
    "slots from (`qsub -pe <pe> <cores>`); its `allocation_rule` should be `$pe_slots` (one host)",
    default="smp")
MEMORY_RESOURCE = Setting(
    "JARVICE_GRIDENGINE_MEMORY_RESOURCE", "the resource a job's memory is asked as, per slot (`qsub -l "
    "<resource>=<MB>M`): `h_vmem` (a limit the job is killed at), `mem_free` or a consumable of the site's",
    default="h_vmem")
GPU_RESOURCE = Setting(
    "JARVICE_GRIDENGINE_GPU_RESOURCE", "the consumable resource that counts GPUs (`qsub -l <resource>=<n>`); "
    "unset: Grid Engine has no standard one, and jobs that ask for GPUs are refused")
EXCLUSIVE_RESOURCE = Setting(
    "JARVICE_GRIDENGINE_EXCLUSIVE_RESOURCE", "the boolean resource of the site's exclusive host access "
    "(`qsub -l <resource>=true`, relation `EXCL`); unset: jobs share hosts, as Grid Engine's default has "
    "no such resource")
#: Every setting the connector reads of its own.
SETTINGS = (PARALLEL_ENVIRONMENT, MEMORY_RESOURCE, GPU_RESOURCE, EXCLUSIVE_RESOURCE)
_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")


@attrs.frozen
class GridEngineOptions:
    """How devices become qsub options: a parallel environment and resource names (None: none)."""

    parallel_environment: str = "smp"
    memory_resource: str = "h_vmem"
    gpu_resource: str | None = None
    exclusive_resource: str | None = None

    @classmethod
    def from_settings(cls, settings) -> "GridEngineOptions":
        values = {setting: settings.read(setting) for setting in SETTINGS}
        for setting, value in values.items():
            if value is not None and not _NAME.match(value):
                raise SettingsError(f"{setting.name} must be a Grid Engine name (letters, digits, '_', '.', "
                                    f"'-'), not {value!r:.40}.")
        return cls(values[PARALLEL_ENVIRONMENT], values[MEMORY_RESOURCE], values[GPU_RESOURCE],
                   values[EXCLUSIVE_RESOURCE])

    def report(self) -> str:
        gpus = f"-l {self.gpu_resource}" if self.gpu_resource else "refused"
        exclusive = (f"-l {self.exclusive_resource}=true" if self.exclusive_resource
                     else "not asked (hosts shared)")
        return (f"cores -> -pe {self.parallel_environment}; memory -> -l {self.memory_resource}; "
                f"GPUs -> {gpus}; exclusive -> {exclusive}")
