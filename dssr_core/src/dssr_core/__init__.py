"""DSSR core: the plugin framework and the JARVICE legacy downstream API.

What connector and executor authors may import is the plugin API, versioned by
:data:`PLUGIN_API_VERSION` (docs/hooks.md, "The plugin API and its promise"): the hookspecs
(:mod:`dssr_core.hookspecs`), the base classes :class:`Connector` and :class:`Executor`, the
models (:mod:`dssr_core.models`), the errors (:mod:`dssr_core.errors`), the settings
(:class:`Setting`, ``Settings.read``/``raw``) and the testing kit (:mod:`dssr_core.testing`).
The rest of ``dssr_core`` (the HTTP listeners, the CLI) may change in any release.
"""

from dssr_core.connector import Connector
from dssr_core.declarations import Setting
from dssr_core.executor import Executor
from dssr_core.hookspecs import hookimpl
from dssr_core.models import ConnectorSpec, ExecutorSpec

__version__ = "0.2.0"
#: The plugin API's version, ``major.minor``: a minor release only adds to the API; a removal
#: or change is first deprecated for one release (a ``DeprecationWarning`` naming the new call).
PLUGIN_API_VERSION = "0.2"
__all__ = ["PLUGIN_API_VERSION", "Connector", "ConnectorSpec", "Executor", "ExecutorSpec", "Setting",
           "hookimpl", "__version__"]
