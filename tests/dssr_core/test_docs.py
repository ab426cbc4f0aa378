"""The docs tell the truth: every hook is documented, every setting is in the reference,
and the connector of "Writing a connector" passes the contract suite."""

import inspect
import re
import types
from pathlib import Path

import pytest

from dssr_core import hookspecs
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
    def connector(self, tmp_path):
        module = _documented_connector_module()
        connector = module.LocalConnector.from_settings(Settings.from_env({"LOCAL_JOB_DIR": str(tmp_path)}))
        yield connector
        for jobid in list(connector.jobs):
            process = connector.jobs[jobid]["process"]
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
