import re
import sys
import textwrap

import pluggy
import pytest

import dssr_core
from dssr_core.cli import main
from dssr_core.errors import JobNotFound, PluginError, SchedulerRejected
from dssr_core.models import ConnectorSpec, ExecutorSpec, ExitStatus
from dssr_core.plugins import PluginRegistry, make_registry


class _Backend(dssr_core.Connector):
    """A connector that knows no job: every abstract method implemented, nothing more."""

    def __init__(self, settings):
        pass

    def submit(self, submission):
        raise SchedulerRejected("The throwaway connector takes no job.")

    def running(self):
        return []

    queued = running

    def runstatus(self, job):
        raise JobNotFound(str(job))

    def exitstatus(self, job):
        return ExitStatus.unknown()

    def terminate(self, job):
        raise JobNotFound(str(job))

    release = terminate

    def check(self):
        return "throwaway"


class ThrowawayPlugin:
    @dssr_core.hookimpl
    def dssr_register_connectors(self):
        return [ConnectorSpec("throwaway", _Backend, "a connector that exists for one test")]


class ClashingPlugin:
    @dssr_core.hookimpl
    def dssr_register_connectors(self):
        return [ConnectorSpec("throwaway", _Backend, "claims the same name")]


def test_builtin_shell_executor_is_found_through_its_entry_point():
    registry = make_registry()
    shell = registry.select("executor", "shell")
    assert shell.distribution == "dssr_core"
    assert shell.spec.description


def test_a_plugin_registers_a_connector_by_name():
    registry = make_registry(load_entry_points=False, extra_plugins=(ThrowawayPlugin(),))
    assert registry.select("connector", "throwaway").spec.backend is _Backend


def test_unknown_name_lists_choices_and_the_install_command():
    registry = make_registry(extra_plugins=(ThrowawayPlugin(),))
    with pytest.raises(PluginError) as caught:
        registry.select("connector", "slurmrestd-typo")
    assert "throwaway" in caught.value.message
    assert "pip install" in caught.value.message
    with pytest.raises(PluginError, match=r"pip install \./dssr_slurm"):
        make_registry(load_entry_points=False).select("connector", "slurm-cli")


def test_two_plugins_claiming_one_name_fail_naming_both():
    registry = make_registry(load_entry_points=False,
                             extra_plugins=(ThrowawayPlugin(), ClashingPlugin()))
    with pytest.raises(PluginError, match="Two plugins register the connector 'throwaway'"):
        registry.select("connector", "throwaway")


def test_misspelled_hook_fails_loudly():
    class Misspelled:
        @dssr_core.hookimpl
        def dssr_register_conectors(self):
            return []

    with pytest.raises(pluggy.PluginValidationError):
        make_registry(load_entry_points=False, extra_plugins=(Misspelled(),))


@pytest.fixture
def broken_distribution(tmp_path, monkeypatch):
    """A real installed distribution whose plugin module fails on import."""
    dist_info = tmp_path / "dssr_broken-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: dssr_broken\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[dssr]\nbroken = dssr_broken_plugin\n")
    (tmp_path / "dssr_broken_plugin.py").write_text(textwrap.dedent("""
        raise ImportError("libfoo is missing")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("dssr_broken_plugin", None)


def test_broken_plugin_not_selected_is_logged_and_skipped(broken_distribution, caplog):
    registry = make_registry()
    assert registry.select("executor", "shell")
    assert "broken" in registry.broken
    assert "libfoo is missing" in caplog.text


def test_broken_plugin_selected_says_why(broken_distribution):
    with pytest.raises(PluginError, match="'broken' .*dssr_broken 1.0.* failed to load: ImportError: libfoo"):
        make_registry().select("connector", "broken")


def test_blocked_plugin_is_not_loaded_and_is_called_disabled():
    registry = make_registry(block=("shell",))
    assert "shell" not in registry.backends("executor")
    assert registry.disabled == {"shell": f"dssr_core {dssr_core.__version__}"}
    with pytest.raises(PluginError, match=r"plugin 'shell' \(dssr_core .*\) is installed but disabled by "
                                          "DSSR_DISABLE_PLUGINS: remove it from there"):
        registry.select("executor", "shell")
    with pytest.raises(PluginError, match="'podman' .* DSSR_DISABLE_PLUGINS disables shell"):
        registry.select("executor", "podman")


def test_dssr_plugins_lists_disabled_plugins_and_the_plugin_api(capsys, monkeypatch):
    monkeypatch.setenv("DSSR_DISABLE_PLUGINS", "singularity")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dssr_core {dssr_core.__version__}, plugin API {dssr_core.PLUGIN_API_VERSION}\n")
    assert re.search(r"^disabled +singularity +dssr_singularity .* by DSSR_DISABLE_PLUGINS$", out, re.M)
    assert not re.search(r"^executor +singularity", out, re.M)


def test_executor_registration():
    class ExecPlugin:
        @dssr_core.hookimpl
        def dssr_register_executors(self):
            return [ExecutorSpec("podman", dssr_core.Executor, "podman")]

    registry = make_registry(load_entry_points=False, extra_plugins=(ExecPlugin(),))
    assert set(registry.backends("executor")) == {"podman"}


def test_a_connector_class_with_abstract_methods_left_is_refused_by_name():
    class Unfinished(dssr_core.Connector):
        def submit(self, submission):
            raise NotImplementedError

    class UnfinishedPlugin:
        @dssr_core.hookimpl
        def dssr_register_connectors(self):
            return [ConnectorSpec("unfinished", Unfinished, "half a connector")]

    registry = make_registry(load_entry_points=False, extra_plugins=(UnfinishedPlugin(),))
    with pytest.raises(PluginError, match="its class Unfinished does not implement check, exitstatus, "
                                          "queued, release, running, runstatus, terminate"):
        registry.select("connector", "unfinished")


@pytest.mark.parametrize("name,backend,error", [
    ("podman", _Backend, "must be a subclass of dssr_core.Executor"),
    ("-podman", dssr_core.Executor, "name must be 1 to 50 letters"),
    ("podman", object, "must be a subclass of dssr_core.Executor"),
])
def test_a_spec_refuses_a_wrong_backend_or_name(name, backend, error):
    with pytest.raises((TypeError, ValueError), match=error):
        ExecutorSpec(name, backend, "an executor")


def test_the_backend_name_comes_from_the_spec_alone():
    """The class carries no name: the spec's is what users select and the key of hpc_script."""
    registry = make_registry()
    for kind in ("connector", "executor"):
        for name, backend in registry.backends(kind).items():
            assert backend.name == name
            assert "name" not in vars(backend.spec.backend)


class _SpecsWithAnArgument:
    """The hook specification as it would be the day it gains an argument."""

    @pluggy.HookspecMarker("dssr")
    def dssr_register_connectors(self, cluster):
        """Register connectors for ``cluster``."""


def test_hooks_are_called_through_pluggy_with_their_declared_arguments():
    class TakesTheArgument:
        @dssr_core.hookimpl
        def dssr_register_connectors(self, cluster):
            return [ConnectorSpec(f"on-{cluster}", _Backend, "takes the argument")]

    class TakesNone:
        @dssr_core.hookimpl
        def dssr_register_connectors(self):
            return [ConnectorSpec("plain", _Backend, "an older implementation")]

    manager = pluggy.PluginManager("dssr")
    manager.add_hookspecs(_SpecsWithAnArgument)
    manager.register(TakesTheArgument(), name="takes")
    manager.register(TakesNone(), name="plain")
    registry = PluginRegistry(manager, {}, {"takes": ("dssr_takes", "2.0"), "plain": ("dssr_plain", "1.0")})
    backends = registry.backends("connector", cluster="hpc1")
    assert {name: backend.distribution for name, backend in backends.items()} == {
        "on-hpc1": "dssr_takes", "plain": "dssr_plain"}


def test_a_plugin_whose_hook_fails_is_skipped_until_selected(caplog):
    class Failing:
        @dssr_core.hookimpl
        def dssr_register_connectors(self):
            raise RuntimeError("the PBS client library is too old")

    registry = make_registry(load_entry_points=False,
                             extra_plugins=(ThrowawayPlugin(), Failing()))
    assert set(registry.backends("connector")) == {"throwaway"}
    assert "the PBS client library is too old" in caplog.text
    failing = next(iter(registry.broken))
    with pytest.raises(PluginError, match="failed to load: RuntimeError: the PBS client library"):
        registry.select("connector", failing)
