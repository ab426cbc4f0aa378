"""What a connector that drives a scheduler's commands on a login node needs, whatever the scheduler.

- :mod:`dssr_core.remote.base`: ``RemoteConnector``, the job logic (the snapshot, lookups by id
  and name, exit status and the job's files, terminate, release, events, tail, info, interactive
  jobs through SSH); a subclass supplies only how its scheduler is asked
- :mod:`dssr_core.remote.jobs`: ``JobRecord``, the ``jarvice_<name>`` scheme, job ids, the comment
  that remembers an interactive job's port and number
- :mod:`dssr_core.remote.states`: the legacy API's state names (Slurm's) -> running / queued / ended
- :mod:`dssr_core.remote.snapshot`: the status snapshot shared by all threads
- :mod:`dssr_core.remote.files`: a job's files and output, read and removed over SSH
- :mod:`dssr_core.remote.config`: scratch and data directories, status interval, service URL
- :mod:`dssr_core.remote.ssh`: SSH to the cluster with paramiko (one pooled connection per user,
  timeouts, ``quote_command``) and the settings that say where and how
- :mod:`dssr_core.remote.hostkeys`: how the login node's host key is checked
- :mod:`dssr_core.remote.users`: the users ID mapping (e-mail -> cluster account and key)

Part of the plugin API (docs/hooks.md): the Slurm and Grid Engine connectors use it, and so may a
connector for PBS or LSF. The settings keep the names the JARVICE chart gives them
(``JARVICE_SLURM_*``) whatever the scheduler.
"""

from dssr_core.remote import config, ssh, users

#: The settings of the job logic, of SSH to a login node and of the users ID mapping, declared here
#: once for every connector that uses them (DSSR lists them with its own; a plugin does not
#: declare them again).
SETTINGS = (*config.SETTINGS, users.MAPPING_FILE, *ssh.SETTINGS)
