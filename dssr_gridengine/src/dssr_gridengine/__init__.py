"""DSSR's ``gridengine`` connector: Grid Engine's commands over SSH on a login node.

- :mod:`dssr_gridengine.connector`: ``GridEngineConnector``, over :mod:`dssr_core.remote`'s job logic
- :mod:`dssr_gridengine.commands`: the command lines (``qsub``, ``qstat -xml``, ``qacct``, ...) and
  how their answers are read
- :mod:`dssr_gridengine.states`: Grid Engine's states and accounting -> the legacy API's states
- :mod:`dssr_gridengine.jobspec`: JARVICE's devices -> ``qsub`` options, or a refusal
- :mod:`dssr_gridengine.jobscript`: the batch script
- :mod:`dssr_gridengine.settings`: the settings only this connector reads
"""

__version__ = "0.2.0"
