"""DSSR's Slurm connectors.

Shared by every Slurm connector (``slurm-cli`` today, ``slurmrestd`` next):

- :mod:`dssr_slurm.users`: the users ID mapping (e-mail -> cluster account and key)
- :mod:`dssr_slurm.options`: job facts -> submission options
- :mod:`dssr_slurm.jobscript`: the srun wrapper and the job's files
- :mod:`dssr_slurm.states`: Slurm states -> running / queued / ended
- :mod:`dssr_slurm.snapshot`: the status snapshot shared by all threads
- :mod:`dssr_slurm.jobs`, :mod:`dssr_slurm.nodelist`, :mod:`dssr_slurm.config`

Specific to ``slurm-cli``: :mod:`dssr_slurm.ssh`, :mod:`dssr_slurm.cli_commands`,
:mod:`dssr_slurm.cli_connector`, :mod:`dssr_slurm.cli_plugin`.
"""

__version__ = "0.1.0"
