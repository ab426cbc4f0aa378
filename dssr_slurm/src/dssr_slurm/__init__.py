"""DSSR's Slurm connectors: ``slurm-cli`` (Slurm's commands over SSH) and ``slurmrestd`` (its REST API).

Shared by both:

- :mod:`dssr_slurm.base`: ``SlurmConnector``, the job logic (lookups, exit status, terminate,
  release, events, tail, info); each connector supplies only how Slurm is asked
- :mod:`dssr_slurm.jobspec`: a submission -> one typed job spec, and every rule of ``sbatch_`` devices
- :mod:`dssr_slurm.jobscript`: the srun wrapper and the job's files
- :mod:`dssr_slurm.states`: Slurm states -> running / queued / ended
- :mod:`dssr_slurm.snapshot`: the status snapshot shared by all threads
- :mod:`dssr_slurm.failures`: what a failed Slurm command says
- :mod:`dssr_slurm.files`: the job's output and files on the cluster, read and removed over SSH
- :mod:`dssr_slurm.jobs`, :mod:`dssr_slurm.nodelist`, :mod:`dssr_slurm.config`

SSH to the cluster (slurmrestd's tunnel and output access use it too), host keys and the users
ID mapping are :mod:`dssr_core.remote`'s, shared with other scheduler families.

Specific to ``slurm-cli``: the subpackage :mod:`dssr_slurm.commands`.

Specific to ``slurmrestd``: the subpackage :mod:`dssr_slurm.rest`.
"""

__version__ = "0.1.0"
