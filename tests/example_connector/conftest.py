"""The example connector of docs/writing-a-connector.md, ``dssr_local``, as its author would have
it: importable (``src/dssr_local``), and installed for ``dssr serve`` (its entry point), without
a pip install.

``dssr_local`` is imported from ``PYTHONPATH`` when it is there (the mutation script puts a
changed copy there), else from ``src/``.
"""

import os
import signal
import sys
from pathlib import Path

import pytest

try:
    import dssr_local.plugin  # noqa: F401 (a copy on PYTHONPATH)
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent / "src"))
    import dssr_local.plugin  # noqa: F401

#: The folder that holds the ``dssr_local`` package in use.
SOURCE = Path(sys.modules["dssr_local"].__file__).parent.parent


@pytest.fixture(scope="session")
def local_plugin_path(tmp_path_factory) -> str:
    """A ``PYTHONPATH`` on which ``dssr serve`` finds ``dssr_local`` and its entry point (group
    ``dssr``, name ``local``), as ``pip install ./dssr_local`` would give it."""
    site = tmp_path_factory.mktemp("site")
    info = site / "dssr_local-0.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dssr_local\nVersion: 0.2.0\n")
    (info / "entry_points.txt").write_text("[dssr]\nlocal = dssr_local.plugin\n")
    return os.pathsep.join(filter(None, [str(SOURCE), str(site), os.environ.get("PYTHONPATH")]))


@pytest.fixture(autouse=True)
def installed_and_cleaned_up(local_plugin_path, monkeypatch, tmp_path):
    """``dssr serve`` finds ``local``; after the test, the jobs' process groups are killed (a
    failed test leaves its jobs running)."""
    monkeypatch.setenv("PYTHONPATH", local_plugin_path)
    yield
    for started in tmp_path.rglob("started"):
        try:
            os.killpg(int(started.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
