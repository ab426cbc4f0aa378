"""Every distribution builds a wheel and an sdist that ``twine check`` accepts, and each sibling's
wheel pins the core to the plugin API it was written for (``dssr_core>=0.2,<0.3``)."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import dssr_core

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = ("dssr_core", "dssr_dummy", "dssr_slurm", "dssr_gridengine", "dssr_singularity")
SIBLINGS = DISTRIBUTIONS[1:]
#: What each wheel must carry besides its modules (package data).
DATA_FILES = {"dssr_core": "dssr_core/openapi.json", "dssr_singularity": "dssr_singularity/job.sh"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """``{distribution: (wheel, sdist)}``, built once from a copy of each source folder (the
    editable installs' metadata stays out), with the venv's setuptools (no isolation: no index)."""
    work = tmp_path_factory.mktemp("dist")
    found = {}
    for name in DISTRIBUTIONS:
        source = work / "src" / name
        shutil.copytree(ROOT / name, source, ignore=shutil.ignore_patterns(
            "*.egg-info", "build", "dist", "__pycache__"))
        out = work / "out" / name
        subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
                       check=True, capture_output=True, text=True)
        (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
        found[name] = (wheel, sdist)
    return found


def test_every_distribution_is_version_0_2_0_as_the_core_says(built):
    for name, (wheel, sdist) in built.items():
        assert wheel.name.startswith(f"{name}-{dssr_core.__version__}-py3-none-any"), wheel.name
        assert sdist.name == f"{name}-{dssr_core.__version__}.tar.gz"


def test_twine_check_accepts_every_wheel_and_sdist(built):
    files = [str(path) for pair in built.values() for path in pair]
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == len(files)


@pytest.mark.parametrize("name", SIBLINGS)
def test_a_siblings_wheel_pins_the_core_to_its_plugin_api(built, name):
    requirement = next(req for req in map(Requirement, _metadata(built[name][0]).get_all("Requires-Dist"))
                       if req.name.replace("-", "_") == "dssr_core")
    api = Version(dssr_core.PLUGIN_API_VERSION)
    assert set(requirement.specifier) == set(Requirement(
        f"dssr_core>={api.major}.{api.minor},<{api.major}.{api.minor + 1}").specifier)
    assert requirement.specifier.contains(dssr_core.__version__)
    assert not requirement.specifier.contains("0.1.0") and not requirement.specifier.contains("0.3.0")


@pytest.mark.parametrize("name", list(DATA_FILES))
def test_the_wheels_carry_their_data_files(built, name):
    with zipfile.ZipFile(built[name][0]) as wheel:
        assert DATA_FILES[name] in wheel.namelist()


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        path = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(path).decode())
