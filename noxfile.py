"""DSSR's sessions: ``nox -s tests`` (every test), ``lint``, ``bench``, ``mutants``."""

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
# schemathesis (4.x: its API moves between majors) fuzzes dssr serve from that document;
# build, twine and setuptools: tests/test_distributions.py builds every wheel and sdist
# without isolation (no index needed) and checks them.
TEST_TOOLS = ("pytest>=8", "pytest-timeout>=2.3", "jsonschema>=4.18", "schemathesis>=4.30,<5",
              "websockets>=13", "Pillow>=10", "build>=1.2", "twine>=5", "setuptools>=68")
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
    """Print figures: the API against a bare Falcon app, the metrics on and off, bearer checks,
    logging, memory under 8 MB bodies, Slurm, Slurm with 10,000 jobs queued, Grid Engine beside
    slurm-cli, the proxy of interactive jobs, a job in a real container (26.05)."""
    session.install(*LOCAL_DISTRIBUTIONS, "websockets>=13")
    session.run("python", "bench/bench_api.py", *session.posargs)
    session.run("python", "bench/bench_metrics.py")
    session.run("python", "bench/bench_bearer.py")
    session.run("python", "bench/bench_logging.py")
    session.run("python", "bench/bench_body_memory.py")
    session.run("bash", CLUSTER, "up", external=True)
    session.run("python", "bench/bench_slurm_cli.py")
    session.run("python", "bench/bench_gridengine.py")  # brings its Grid Engine cluster up itself
    session.run("python", "bench/bench_slurmrestd.py")
    # Both Slurm connectors with 0, 1,000 and 10,000 held jobs queued, on 26.05 then 22.05.
    session.run("python", "bench/bench_scale.py", "--n", "0,1000,10000", "--slurm", "26.05,22.05")
    session.run("python", "bench/bench_proxy.py", "--slurm")
    # Real containers: Apptainer runs on the 26.05 cluster only.
    session.run("bash", CLUSTER, "up", external=True, env={"DSSR_CLUSTER_SLURM": "26.05"})
    session.run("python", "bench/bench_containers.py", env={"DSSR_CLUSTER_SLURM": "26.05"})


@nox.session
def mutants(session):
    """Mutation testing of the contract suite: deliberate bugs in the dummy connector and the docs'
    example connector; reports which the suite catches (``nox -s mutants -- local`` for one)."""
    session.install(*LOCAL_DISTRIBUTIONS, *TEST_TOOLS)
    session.run("python", "tests/mutation/mutants.py", *session.posargs)


@nox.session
def soak(session):
    """The soak: two dssr serve replicas behind haproxy on a private Slurm cluster, faults on a
    schedule, checked against sacct; p50/p99 per endpoint and a verdict (exit 1 on FAIL).
    Length and connectors by flags: `nox -s soak -- --minutes 60 --connector slurmrestd`."""
    session.install(*LOCAL_DISTRIBUTIONS)
    session.run("python", "bench/soak.py", *session.posargs)
