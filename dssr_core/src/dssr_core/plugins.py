"""Plugin discovery and selection: the one place where names become backends."""

import importlib.metadata
import logging

import attrs
import pluggy

from dssr_core import hookspecs
from dssr_core.errors import PluginError
from dssr_core.models import ConnectorSpec, ExecutorSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dssr"
PROJECT = "dssr"

#: Where the plugins that ship with DSSR live, to tell users what to install.
KNOWN_DISTRIBUTIONS = {
    "dummy": "dssr_dummy",
    "slurm-cli": "dssr_slurm",
    "slurmrestd": "dssr_slurm",
    "gridengine": "dssr_gridengine",
    "singularity": "dssr_singularity",
    "shell": "dssr_core",
}

SPEC_TYPES = {"connector": ConnectorSpec, "executor": ExecutorSpec}


@attrs.frozen
class Backend:
    """A registered connector or executor with the distribution that brought it."""

    spec: ConnectorSpec | ExecutorSpec
    plugin: str
    distribution: str
    version: str

    @property
    def name(self) -> str:
        return self.spec.name


@attrs.frozen
class BrokenPlugin:
    entry_point: str
    distribution: str
    error: str


class PluginRegistry:
    """A plugin manager with its plugins loaded, and the backends they register."""

    def __init__(self, manager: pluggy.PluginManager, broken: dict[str, BrokenPlugin],
                 origins: dict[str, tuple[str, str]], disabled: dict[str, str] | None = None):
        self.manager = manager
        self.broken = broken
        #: Entry points not loaded because DSSR_DISABLE_PLUGINS names them -> their distribution.
        self.disabled = disabled or {}
        self._origins = origins

    def origin(self, plugin_name: str) -> tuple[str, str]:
        """The distribution and version that brought the plugin ``plugin_name``."""
        return self._origins.get(plugin_name, (plugin_name, ""))

    def backends(self, kind: str, **hook_arguments) -> dict[str, Backend]:
        """``kind`` is ``connector`` or ``executor``; fails when two plugins claim a name.

        The hook ``dssr_register_<kind>s`` is called through pluggy with ``hook_arguments``
        (by name, so an implementation may take fewer than the specification offers), one
        plugin at a time to know which distribution registered which name. A plugin whose
        hook fails is logged and kept in :attr:`broken` (an error only when selected).
        """
        found: dict[str, Backend] = {}
        spec_type = SPEC_TYPES[kind]
        for plugin_name, specs in self.answers(f"dssr_register_{kind}s", **hook_arguments):
            distribution, version = self.origin(plugin_name)
            wrong = [spec for spec in specs if not isinstance(spec, spec_type)]
            if wrong:
                self._hook_failed(plugin_name, f"dssr_register_{kind}s", TypeError(
                    f"it returned {wrong[0]!r:.80} where a {spec_type.__name__} belongs"))
                continue
            for spec in specs:
                backend = Backend(spec, plugin_name, distribution, version)
                if spec.name in found:
                    other = found[spec.name]
                    raise PluginError(
                        f"Two plugins register the {kind} {spec.name!r}: "
                        f"{other.distribution} {other.version} and {distribution} {version}. "
                        "Uninstall one of them, or block one with DSSR_DISABLE_PLUGINS."
                    )
                found[spec.name] = backend
        return found

    def answers(self, hook_name: str, **hook_arguments):
        """``(plugin name, answer)`` for each plugin that implements the hook, called through
        pluggy with ``hook_arguments`` (by name). A plugin whose hook raises is logged, kept in
        :attr:`broken` and skipped; an answer of None counts as empty."""
        hook = getattr(self.manager.hook, hook_name)
        implementations = hook.get_hookimpls()
        for implementation in implementations:
            others = [impl.plugin for impl in implementations if impl is not implementation]
            only_this = self.manager.subset_hook_caller(hook_name, remove_plugins=others)
            try:
                answers = only_this(**hook_arguments)
            except Exception as error:  # one plugin's bug must not hide the others
                self._hook_failed(implementation.plugin_name, hook_name, error)
                continue
            for answer in answers:
                yield implementation.plugin_name, answer or ()

    def _hook_failed(self, plugin_name: str, hook_name: str, error: Exception) -> None:
        distribution, version = self.origin(plugin_name)
        log.warning("plugin %s from %s failed in %s and is skipped: %s: %s",
                    plugin_name, distribution, hook_name, type(error).__name__, error)
        self.broken[plugin_name] = BrokenPlugin(
            plugin_name, f"{distribution} {version}".strip(), f"{type(error).__name__}: {error}")

    def select(self, kind: str, name: str) -> Backend:
        """The backend registered under ``name``, or a PluginError that says what to do."""
        backends = self.backends(kind)
        if name in backends:
            return _buildable(kind, backends[name])
        if name in self.broken:
            broken = self.broken[name]
            raise PluginError(
                f"The {kind} plugin {name!r} ({broken.distribution}) failed to load: "
                f"{broken.error}"
            )
        if name in self.disabled:
            raise PluginError(
                f"The {kind} plugin {name!r} ({self.disabled[name]}) is installed but disabled by "
                "DSSR_DISABLE_PLUGINS: remove it from there to use it."
            )
        installed = ", ".join(sorted(backends)) or "none"
        hint = KNOWN_DISTRIBUTIONS.get(name)
        install = (f"pip install ./{hint} (from a DSSR checkout)" if hint
                   else "pip install the distribution that provides it")
        disabled = (f" DSSR_DISABLE_PLUGINS disables {', '.join(sorted(self.disabled))}."
                    if self.disabled else "")
        raise PluginError(
            f"No {kind} named {name!r} is installed. Installed {kind}s: {installed}. "
            f"To add it: {install}.{disabled}"
        )


def _buildable(kind: str, backend: Backend) -> Backend:
    """``backend`` when its class implements every abstract method, else a PluginError naming them."""
    cls = backend.spec.backend
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise PluginError(
            f"The {kind} {backend.name!r} ({backend.distribution} {backend.version}) cannot be used: "
            f"its class {cls.__name__} does not implement {', '.join(missing)}."
        )
    return backend


def make_registry(*, block: tuple[str, ...] = (), load_entry_points: bool = True,
                  extra_plugins: tuple[object, ...] = ()) -> PluginRegistry:
    """Build the plugin manager: add the specs, apply blocks, load entry points, check.

    A plugin that fails to import is logged and skipped; it is an error only if selected.
    ``extra_plugins`` are registered as they are (tests use it for throw-away plugins).
    """
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    for name in block:
        manager.set_blocked(name)
    broken: dict[str, BrokenPlugin] = {}
    origins: dict[str, tuple[str, str]] = {}
    disabled: dict[str, str] = {}
    if load_entry_points:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if manager.is_blocked(entry_point.name):
                disabled[entry_point.name] = _origin(entry_point)
                continue
            _load(manager, entry_point, broken, origins)
    for plugin in extra_plugins:
        manager.register(plugin)
    manager.check_pending()
    return PluginRegistry(manager, broken, origins, disabled)


def _origin(entry_point) -> str:
    """``dssr_slurm 0.2.0``: the distribution and version that bring ``entry_point``."""
    dist = entry_point.dist
    return f"{dist.metadata['Name']} {dist.version}" if dist else "unknown"


def _load(manager, entry_point, broken, origins) -> None:
    dist = entry_point.dist
    distribution = dist.metadata["Name"] if dist else "unknown"
    version = dist.version if dist else ""
    if manager.get_plugin(entry_point.name) is not None:
        other = origins.get(entry_point.name, ("unknown", ""))[0]
        raise PluginError(
            f"Two distributions provide the plugin {entry_point.name!r}: "
            f"{other} and {distribution}. Uninstall one of them."
        )
    try:
        plugin = entry_point.load()
    except Exception as error:  # a broken plugin must not stop the others
        log.warning("plugin %s from %s failed to load and is skipped: %s: %s",
                    entry_point.name, distribution, type(error).__name__, error)
        broken[entry_point.name] = BrokenPlugin(
            entry_point.name, f"{distribution} {version}".strip(), f"{type(error).__name__}: {error}")
        return
    manager.register(plugin, name=entry_point.name)
    origins[entry_point.name] = (distribution, version)


def disabled_plugins(settings) -> tuple[str, ...]:
    """Entry-point names listed in ``DSSR_DISABLE_PLUGINS`` (comma-separated)."""
    return settings.disabled_plugins
