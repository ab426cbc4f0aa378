"""The docs tell the truth: every hook is documented, the settings reference is what the
declarations say, and the code of "Writing a connector" is the example connector that
tests/example_connector runs through the contract suite."""

import importlib
import inspect
import pkgutil
import re
import subprocess
from pathlib import Path

import attrs
import pytest

from dssr_core import hookspecs
from dssr_core.catalogue import Declared, declared_settings, markdown_tables
from dssr_core.connector import Connector
from dssr_core.models import Submission
from dssr_core.plugins import make_registry
from dssr_core.settings import Setting
from dssr_core.testing import ConnectorContract

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DOCUMENTED_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \|", re.M)
#: The distributions of this repository: every Setting their modules define must be declared.
DISTRIBUTIONS = ("dssr_core", "dssr_dummy", "dssr_slurm", "dssr_gridengine", "dssr_singularity")


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


@pytest.fixture(scope="module")
def declared():
    return declared_settings(make_registry())


def test_the_reference_has_each_distribution_table_as_declared(declared):
    text = (DOCS / "settings.md").read_text()
    for distribution, table in markdown_tables(declared).items():
        assert table in text, (f"docs/settings.md's table of {distribution} is not what its settings "
                               "declare: replace it with the one `dssr settings --markdown` prints")


def test_the_reference_names_no_setting_that_is_not_declared(declared):
    rows = DOCUMENTED_ROW.findall((DOCS / "settings.md").read_text())
    assert len(rows) == len(set(rows)), "docs/settings.md has a setting twice"
    assert sorted(set(rows) - {entry.setting.name for entry in declared}) == []


def defined_settings(distribution: str) -> dict[str, Setting]:
    """Every module-level Setting of the distribution's package, by name."""
    package = importlib.import_module(distribution)
    found = {}
    for module_info in pkgutil.walk_packages(package.__path__, f"{distribution}."):
        if module_info.name.endswith(".__main__"):  # importing it would run the command
            continue
        module = importlib.import_module(module_info.name)
        found.update({value.name: value for value in vars(module).values() if isinstance(value, Setting)})
    return found


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_every_setting_the_code_defines_is_declared_by_its_distribution(declared, distribution):
    """A Setting that a module defines (or imports from dssr_core) but no hook returns would be
    read and yet missing from `dssr settings` and the reference."""
    declarations = {entry.setting.name: entry for entry in declared}
    defined = defined_settings(distribution)
    assert defined, f"{distribution} defines no Setting"
    assert sorted(name for name, setting in defined.items()
                  if declarations.get(name) not in (Declared(setting, distribution),
                                                    Declared(setting, "dssr_core"))) == []


#: The example connector of docs/writing-a-connector.md and its contract module, run as tests.
EXAMPLE = ROOT / "tests" / "example_connector"


def test_the_guide_shows_the_example_connector_that_the_tests_run():
    """The guide shows tests/example_connector's plugin and contract module as code blocks,
    character for character: the code a reader copies is the code the suite proves."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "writing-a-connector.md").read_text(), re.S)
    for path in (EXAMPLE / "src" / "dssr_local" / "plugin.py", EXAMPLE / "test_local_contract.py"):
        assert path.read_text() in blocks, (
            f"docs/writing-a-connector.md does not show {path.relative_to(EXAMPLE)} as it is: change both")


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


CONFLICT_MARKER = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)


def test_no_file_holds_a_merge_conflict_marker():
    """A merge resolved by hand once left its markers in the README; git would not object."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tracked = [ROOT / name for name in listed.decode().split("\0")
               if name and not name.startswith("tests/dssr_slurm/recorded/") and (ROOT / name).is_file()]
    marked = [str(path.relative_to(ROOT)) for path in tracked
              if CONFLICT_MARKER.search(path.read_text(errors="replace"))]
    assert marked == []


def test_every_page_of_docs_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    unlinked = [page.name for page in DOCS.glob("*.md") if f"docs/{page.name}" not in readme]
    assert unlinked == []
