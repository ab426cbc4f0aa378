"""The ``slurm-cli`` connector: Slurm's commands (sbatch, squeue, sacct, scancel, scontrol) over SSH.

- :mod:`dssr_slurm.commands.connector`: ``SlurmCliConnector``
- :mod:`dssr_slurm.commands.programs`: the command lines it runs (sbatch's arguments
  of a job spec among them) and how their answers are read
- :mod:`dssr_slurm.commands.plugin`: its registration (entry point ``slurm-cli``)
"""
