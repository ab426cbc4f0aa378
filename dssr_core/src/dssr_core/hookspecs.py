"""Hook specifications of DSSR (pluggy project ``dssr``).

Hooks REGISTER backends; the operations live on the registered classes
(:class:`dssr_core.connector.Connector`, :class:`dssr_core.executor.Executor`).
"""

import pluggy

hookspec = pluggy.HookspecMarker("dssr")
hookimpl = pluggy.HookimplMarker("dssr")


@hookspec
def dssr_register_connectors():
    """Register connectors: the backends that talk to a scheduler.

    Every plugin's answer is collected; a name claimed by two plugins is an error at start.

    :return: a list of :class:`dssr_core.models.ConnectorSpec`.

    Example::

        @dssr_core.hookimpl
        def dssr_register_connectors():
            return [ConnectorSpec("pbs", PbsConnector, "PBS Pro over SSH")]

    .. versionadded:: 0.1
    """


@hookspec
def dssr_register_executors():
    """Register executors: the backends that turn upstream's script into the script to run.

    Every plugin's answer is collected; a name claimed by two plugins is an error at start.

    :return: a list of :class:`dssr_core.models.ExecutorSpec`.

    Example::

        @dssr_core.hookimpl
        def dssr_register_executors():
            return [ExecutorSpec("podman", PodmanExecutor, "Podman containers")]

    .. versionadded:: 0.1
    """


@hookspec
def dssr_declare_settings():
    """Declare the settings a plugin reads, so that ``dssr settings`` and the docs list them.

    Every plugin's answer is collected. One name declared differently by two plugins, or by a
    plugin and DSSR itself, is an error at start. The plugin reads its settings through the
    same declarations, with ``settings.read(SETTING)`` in its backends' ``from_settings``.

    :return: a list of :class:`dssr_core.declarations.Setting`.

    Example::

        PBS_SERVER = Setting("PBS_SERVER", "the PBS server's host name")

        @dssr_core.hookimpl
        def dssr_declare_settings():
            return [PBS_SERVER]

    .. versionadded:: 0.2
    """
