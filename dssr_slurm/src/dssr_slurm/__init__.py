"""DSSR's Slurm connectors: ``slurm-cli`` (Slurm's commands over SSH) and ``slurmrestd`` (its REST API).

Shared by both:

- :mod:`dssr_slurm.base`: ``SlurmConnector``, over :mod:`dssr_core.remote`'s job logic
- :mod:`dssr_slurm.jobspec`: a submission -> one typed job spec, and every rule of ``sbatch_`` devices
- :mod:`dssr_slurm.jobscript`: the srun wrapper
- :mod:`dssr_slurm.failures`: what a failed Slurm command says
- :mod:`dssr_slurm.nodelist`: Slurm's node lists

What is not Slurm's (the job logic, states, the status snapshot, the job's files, SSH to the
cluster, host keys, the users ID mapping and the settings of all these) is
:mod:`dssr_core.remote`'s, shared with other scheduler families.

Specific to ``slurm-cli``: the subpackage :mod:`dssr_slurm.commands`.

Specific to ``slurmrestd``: the subpackage :mod:`dssr_slurm.rest`.
"""

__version__ = "0.1.0"
