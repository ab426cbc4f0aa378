"""Fixtures for the singularity executor's tests: executors built from settings, upstream-like
job templates with chosen facts, and the rendered export block read back as a mapping."""

import base64
import json
import os
import pathlib
import shlex

import pytest

from dssr_core.models import RenderedJob, ScriptRequest
from dssr_core.settings import Settings
from dssr_singularity.executor import SingularityExecutor, job_template

DOUBLES = pathlib.Path(__file__).resolve().parents[1] / "doubles"

#: The facts of a plain upstream batch job; tests override or drop (None) what they need.
BASE_FACTS = {
    "JOBOBJ_APPDEFVERSION": "2",
    "JOBOBJ_INTERACTIVE": "False",
    "JOBOBJ_ARCH": None,
    "JOBOBJ_NAE": "solver",
    "JOBOBJ_REPO": "us-docker.pkg.dev/acme/apps/solver:1.2",
    "JARVICE_CPU_CORES": "4",
    "JARVICE_CMD": "/usr/local/bin/solve --input /data/in",
}


def upstream_template(**facts) -> str:
    """An upstream-like job: BASE_FACTS with ``facts`` applied (None drops a fact)."""
    merged = {**BASE_FACTS, **facts}
    return job_template({k: v for k, v in merged.items() if v is not None})


def exports(script: str) -> dict[str, str]:
    """The ``export K=V`` lines of a script, values unquoted as bash would."""
    found = {}
    for line in script.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            words = shlex.split(value) if value else [""]
            found[key] = words[0] if words else ""
    return found


@pytest.fixture
def executor_for():
    """executor_for(SETTING=value, ...) -> a SingularityExecutor built from those settings."""
    def build(**settings) -> SingularityExecutor:
        return SingularityExecutor.from_settings(
            Settings.from_env({k: str(v) for k, v in settings.items()}))
    return build


@pytest.fixture
def render(executor_for):
    """render(settings={...}, nodes=1, FACT=value, ...) -> (RenderedJob, exports mapping)."""
    def run(settings: dict | None = None, nodes: int = 1, **facts) -> tuple[RenderedJob, dict]:
        executor = executor_for(**(settings or {}))
        job = executor.render(ScriptRequest("job-20240101-alice-solver", 7, nodes,
                                            upstream_template(**facts)))
        return job, exports(job.script)
    return run


@pytest.fixture
def template():
    """template(FACT=value, ...) -> an upstream-like job template (None drops a fact)."""
    return upstream_template


@pytest.fixture
def ctrsecret():
    """ctrsecret({server: entry}) -> JOBOBJ_CTRSECRET: base64 of a Docker config.json."""
    def encode(auths: dict) -> str:
        return base64.b64encode(json.dumps({"auths": auths}).encode()).decode()
    return encode


@pytest.fixture
def singularity_double() -> pathlib.Path:
    """The singularity TEST DOUBLE's executable."""
    return DOUBLES / "singularity"


@pytest.fixture
def double_env(tmp_path):
    """A compute node's environment for job scripts, the singularity double first on PATH.

    The system directories come before the inherited PATH, as on a node: a version manager's
    shim for python3 would cost the double 100 ms per call.
    """
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{DOUBLES}:/usr/local/bin:/usr/bin:/bin:{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "USER": "alice",
        "LANG": "C.UTF-8",
        "DSSR_SINGULARITY_DOUBLE_LOG": str(tmp_path / "double.log"),
    }


@pytest.fixture
def double_log(double_env):
    """double_log() -> the double's calls so far, one dict per call."""
    def read() -> list[dict]:
        path = pathlib.Path(double_env["DSSR_SINGULARITY_DOUBLE_LOG"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]
    return read
