"""The ``slurmrestd`` connector: Slurm over its REST API.

- :mod:`dssr_slurm.rest.connector`: ``SlurmRestConnector`` and the API version's choice
- :mod:`dssr_slurm.rest.versions`: one adapter per API version (paths, JSON in and out)
- :mod:`dssr_slurm.rest.client`: HTTP to slurmrestd; :mod:`dssr_slurm.rest.errors`: its answers' errors
- :mod:`dssr_slurm.rest.tokens`: the tokens it is sent; :mod:`dssr_slurm.rest.settings`: its settings
- :mod:`dssr_slurm.rest.files`, :mod:`dssr_slurm.rest.tunnel`
- :mod:`dssr_slurm.rest.plugin`: its registration (entry point ``slurmrestd``)
"""
