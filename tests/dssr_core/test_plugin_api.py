"""The plugin API's promise: its version, and a connector written for 0.1 still runs in 0.2
(with DeprecationWarnings that name the new calls)."""

import importlib.metadata
import warnings

import connector_0_1
import pytest

import dssr_core
from dssr_core.app import create_app
from dssr_core.cli import main
from dssr_core.errors import SettingsError
from dssr_core.plugins import make_registry
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, shell_template, wait_until


def test_the_plugin_api_version_is_the_cores_major_and_minor(capsys):
    installed = importlib.metadata.version("dssr_core")
    assert dssr_core.__version__ == installed
    assert dssr_core.PLUGIN_API_VERSION == ".".join(installed.split(".")[:2])
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"dssr {installed} (plugin API {dssr_core.PLUGIN_API_VERSION})\n"


def test_a_connector_written_for_0_1_loads_and_runs_with_warnings_naming_the_new_calls(tmp_path):
    settings = Settings.from_env({"LOCAL_JOB_DIR": str(tmp_path)})
    registry = make_registry(load_entry_points=False, extra_plugins=(connector_0_1,))
    backend = registry.select("connector", "local")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        connector = backend.spec.backend.from_settings(settings)
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any("Connector.__init__(settings) is deprecated" in m and "super().__init__()" in m
               for m in messages), messages
    assert any("settings.get('LOCAL_JOB_DIR') is deprecated" in m and "settings.read(SETTING)" in m
               and "settings.raw('LOCAL_JOB_DIR')" in m for m in messages), messages
    # Both warnings point at the connector's own lines, where the author must change them.
    assert {w.filename for w in caught} == {connector_0_1.__file__}
    assert connector.settings is settings and connector.root == str(tmp_path)  # what 0.1 did

    api = ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings), executor_name="shell"))
    answer = api.submit("old-1", shell_template("echo café from 0.1"))
    assert answer.status == 200, answer.text
    job = {"name": "old-1", "number": 1, "jobid": answer.json[0]}

    def ended():
        status = api.post("/exitstatus", job).json
        return status if "COMPLETED" in status[2][1] else None

    rc, _, (output, _) = wait_until(ended, 30, what="the 0.1 connector's job to end")
    assert (rc, output) == (0, "café from 0.1\n")


def test_the_0_1_getters_answer_as_in_0_1_with_a_warning():
    settings = Settings.from_env({"OLD_NAME": " 7 ", "FLAG": "yes", "ITEMS": "a, b,,c", "LEVEL": "debug"})
    with pytest.warns(DeprecationWarning, match=r"settings.get\('NEW_NAME'\) is deprecated since DSSR 0.2"):
        assert settings.get("NEW_NAME", legacy=("OLD_NAME",)) == "7"
    with pytest.warns(DeprecationWarning):
        assert settings.get("UNSET", "fallback") == "fallback"
    with pytest.warns(DeprecationWarning, match="kind='int'"):
        assert settings.get_int("OLD_NAME", 1, minimum=0, maximum=10) == 7
    with pytest.warns(DeprecationWarning), pytest.raises(SettingsError, match="OLD_NAME must be at most 5"):
        settings.get_int("OLD_NAME", 1, maximum=5)
    with pytest.warns(DeprecationWarning):
        assert settings.get_bool("FLAG", False) is True
    with pytest.warns(DeprecationWarning):
        assert settings.get_list("ITEMS") == ("a", "b", "c")
    with pytest.warns(DeprecationWarning):
        assert settings.get_float("UNSET", 2.5) == 2.5
    with pytest.warns(DeprecationWarning):
        assert settings.get_log_level("LEVEL", 20) == 10


def test_a_connector_of_0_2_takes_no_settings_and_gets_no_warning():
    class Quiet(dssr_core.Connector):
        submit = running = queued = runstatus = exitstatus = terminate = release = check = None

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        connector = Quiet()
    assert not hasattr(connector, "settings")
