"""What a connector that drives a scheduler's commands on a login node needs, whatever the scheduler.

- :mod:`dssr_core.remote.ssh`: SSH to the cluster with paramiko (one pooled connection per user,
  timeouts, ``quote_command``) and the settings that say where and how
- :mod:`dssr_core.remote.hostkeys`: how the login node's host key is checked
- :mod:`dssr_core.remote.users`: the users ID mapping (e-mail -> cluster account and key)

Part of the plugin API: the Slurm connectors use it, and so may a connector for another family.
"""

from dssr_core.remote import ssh, users

#: The settings of SSH to a login node and of the users ID mapping, declared here once for every
#: connector that uses them (DSSR lists them with its own; a plugin does not declare them again).
SETTINGS = (users.MAPPING_FILE, *ssh.SETTINGS)
