"""The docs tell the truth: every hook is documented, every setting is in the reference,
and the connector of "Writing a connector" passes the contract suite."""

import inspect
import os
import re
import signal
import types
from pathlib import Path

import attrs
import pytest

from dssr_core import hookspecs
from dssr_core.connector import Connector
from dssr_core.models import Submission
from dssr_core.settings import Settings
from dssr_core.testing import ConnectorContract

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: ``settings.get*("NAME"`` and helpers called as ``helper(settings, "NAME"``.
SETTING_CALL = re.compile(
    r"""(?:settings\.get(?:_int|_float|_bool|_list|_log_level)?\(|\(settings,)\s*["']([A-Z][A-Z0-9_]+)["']""")
LEGACY_SPELLING = re.compile(r"""legacy=\(([^)]*)\)""")
#: Variables of the process environment that code reads, not settings of DSSR.
PROCESS_ENVIRONMENT = {"HOME", "XDG_DATA_HOME", "USER", "PATH", "TMPDIR"}


def hook_names():
    return [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("dssr_")]


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented(hook):
    text = (DOCS / "hooks.md").read_text()
    assert f"## `{hook}" in text, f"docs/hooks.md has no section for {hook}"
    spec = getattr(hookspecs, hook)
    for parameter in inspect.signature(spec).parameters:
        assert f"`{parameter}`" in text, f"docs/hooks.md does not describe {hook}'s {parameter}"
    assert "versionadded" in spec.__doc__ and "Example" in spec.__doc__


def settings_in_code():
    names = set()
    for source in ROOT.glob("dssr_*/src/**/*.py"):
        text = source.read_text()
        names.update(SETTING_CALL.findall(text))
        for group in LEGACY_SPELLING.findall(text):
            names.update(re.findall(r"[A-Z][A-Z0-9_]+", group))
    return sorted(names - PROCESS_ENVIRONMENT)


@pytest.mark.parametrize("name", settings_in_code())
def test_every_setting_is_in_the_reference(name):
    assert f"`{name}`" in (DOCS / "settings.md").read_text(), f"docs/settings.md lacks {name}"


def _documented_connector_module():
    text = (DOCS / "writing-a-connector.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    module = types.ModuleType("dssr_local_from_docs")
    exec(compile(code, "docs/writing-a-connector.md", "exec"), module.__dict__)
    return module


class TestTheDocumentedConnector(ConnectorContract):
    job_timeout = 30

    @pytest.fixture
    def settings(self, tmp_path):
        return Settings.from_env({"LOCAL_JOB_DIR": str(tmp_path)})

    @pytest.fixture
    def module(self):
        return _documented_connector_module()

    @pytest.fixture
    def connector(self, module, settings, tmp_path):
        yield module.LocalConnector.from_settings(settings)
        for started in tmp_path.glob("*/started"):  # the process groups of the jobs
            try:
                os.killpg(int(started.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass

    @pytest.fixture
    def restart_connector(self, module, settings):
        return lambda: module.LocalConnector.from_settings(settings)


def test_the_guide_lists_every_field_of_a_submission_and_every_abstract_method():
    text = (DOCS / "writing-a-connector.md").read_text()
    table_rows = "\n".join(line for line in text.splitlines() if line.startswith("| `"))
    for field in attrs.fields(Submission):
        assert f"| `{field.name}` |" in table_rows, f"the guide does not list Submission.{field.name}"
    for method in sorted(Connector.__abstractmethods__):
        assert f"`{method}(" in table_rows, f"writing-a-connector.md does not list the abstract {method}"
    defaults = [name for name, value in vars(Connector).items()
                if callable(value) and not name.startswith("_") and name not in Connector.__abstractmethods__]
    for method in defaults + ["from_settings"]:
        assert f"`{method}(" in table_rows, f"writing-a-connector.md does not list the default {method}"


def test_the_testing_page_lists_every_contract_test_knob_fixture_and_helper():
    import dssr_core.testing
    from dssr_core.testing import plugin

    text = (DOCS / "testing.md").read_text()
    suite = [name for name in vars(ConnectorContract) if not name.startswith("_")]
    plugin_fixtures = [name for name in ("free_port", "dssr_server") if hasattr(plugin, name)]
    assert len(plugin_fixtures) == 2
    for name in suite + plugin_fixtures + dssr_core.testing.__all__:
        assert f"`{name}" in text, f"docs/testing.md does not mention {name}"
