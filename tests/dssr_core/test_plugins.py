import sys
import textwrap

import pluggy
import pytest

import dssr_core
from dssr_core.errors import PluginError
from dssr_core.models import ConnectorSpec, ExecutorSpec
from dssr_core.plugins import make_registry


class _Backend(dssr_core.Connector):
    name = "throwaway"


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


def test_blocked_plugin_is_not_loaded():
    registry = make_registry(block=("shell",))
    with pytest.raises(PluginError, match="No executor named 'shell'"):
        registry.select("executor", "shell")


def test_executor_registration():
    class ExecPlugin:
        @dssr_core.hookimpl
        def dssr_register_executors(self):
            return [ExecutorSpec("podman", dssr_core.Executor, "podman")]

    registry = make_registry(load_entry_points=False, extra_plugins=(ExecPlugin(),))
    assert set(registry.backends("executor")) == {"podman"}
