"""DSSR's sessions: ``nox -s tests`` (every test), ``lint``, ``bench``."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

LOCAL_DISTRIBUTIONS = (
    "-e", "./dssr_core",
    "-e", "./dssr_dummy",
    "-e", "./dssr_slurm",
    "-e", "./dssr_gridengine",
    "-e", "./dssr_singularity",
)
# jsonschema: ApiClient checks every answer against openapi.json (dssr_core's testing extra);
# schemathesis (4.x: its API moves between majors) fuzzes dssr serve from that document.
TEST_TOOLS = ("pytest>=8", "pytest-timeout>=2.3", "jsonschema>=4.18", "schemathesis>=4.30,<5",
              "websockets>=13", "Pillow>=10")
CLUSTER = "tests/cluster/cluster.sh"


@nox.session
def tests(session):
    """Run every test: core, dummy, singularity, and the Slurm and Grid Engine end-to-end tests on
    real clusters."""
    session.install(*LOCAL_DISTRIBUTIONS, *TEST_TOOLS)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session):
    """Check the code with ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session
def bench(session):
    """Print figures: the API against a bare Falcon app, bearer checks, logging, memory under 8 MB
    bodies, Slurm, Grid Engine beside slurm-cli, the proxy of interactive jobs, a job in a real
    container (26.05)."""
    session.install(*LOCAL_DISTRIBUTIONS, "websockets>=13")
    session.run("python", "bench/bench_api.py", *session.posargs)
    session.run("python", "bench/bench_bearer.py")
    session.run("python", "bench/bench_logging.py")
    session.run("python", "bench/bench_body_memory.py")
    session.run("bash", CLUSTER, "up", external=True)
    session.run("python", "bench/bench_slurm_cli.py")
    session.run("python", "bench/bench_gridengine.py")  # brings its Grid Engine cluster up itself
    session.run("python", "bench/bench_slurmrestd.py")
    session.run("python", "bench/bench_proxy.py", "--slurm")
    # Real containers: Apptainer runs on the 26.05 cluster only.
    session.run("bash", CLUSTER, "up", external=True, env={"DSSR_CLUSTER_SLURM": "26.05"})
    session.run("python", "bench/bench_containers.py", env={"DSSR_CLUSTER_SLURM": "26.05"})
