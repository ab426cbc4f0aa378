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
