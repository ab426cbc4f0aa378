"""The contract suite itself: a connector that does nothing right passes none of it, the tests
a connector author does not opt in to are listed, and dssr_core's own input checks (which no
connector can pass or fail) are tested here, not in the suite."""

import inspect

import pytest

import dssr_core
from dssr_core.app import create_app
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, ConnectorContract, shell_template

pytest_plugins = ["pytester"]

#: Every method of a connector that DSSR calls for upstream; ``close`` (teardown) and
#: ``from_settings`` (building it) are not among them.
CALLED_METHODS = sorted(name for name, value in vars(dssr_core.Connector).items()
                        if callable(value) and not name.startswith("_") and name != "close")


def broken_connector_class(error: type[Exception] = RuntimeError) -> type:
    """A connector whose every method raises ``error``."""

    def broken(name):
        def method(self, *args, **kwargs):
            raise error(f"the broken connector's {name} is broken")
        return method

    def __init__(self, settings=None):
        pass

    return type("BrokenConnector", (dssr_core.Connector,),
                {"__init__": __init__, **{name: broken(name) for name in CALLED_METHODS}})


def contract_tests() -> list[str]:
    return sorted(name for name, _ in inspect.getmembers(ConnectorContract, inspect.isfunction)
                  if name.startswith("test_"))


BROKEN_SUITE = '''
import pytest

from dssr_core.testing import ConnectorContract
from test_contract_kit import broken_connector_class

Broken = broken_connector_class()


class TestBrokenConnector(ConnectorContract):
    job_timeout = 3
    hold_watch = 0.5
    {opt_ins}

    @pytest.fixture
    def connector(self):
        return Broken()

    @pytest.fixture
    def serve_env(self, tmp_path):
        return {{"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": str(tmp_path)}}
'''

OPT_INS = '''refused_job = {"cores": 1}
    walltime = "00:00:01"

    @pytest.fixture
    def fill_scheduler(self):
        return lambda submit: [submit("sleep 300")]

    @pytest.fixture
    def unreachable_connector(self):
        return Broken()
'''


@pytest.fixture
def run_suite(pytester):
    """``run_suite(opt_ins)``: the contract suite on the broken connector, in a pytest of its own."""

    def run(opt_ins: str):
        pytester.makepyfile(test_broken=BROKEN_SUITE.format(opt_ins=opt_ins))
        return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")

    return run


def test_no_contract_test_passes_a_connector_whose_every_method_raises(run_suite):
    """A test that a connector doing nothing right passes tests dssr_core, not the connector."""
    outcomes = run_suite(OPT_INS).parseoutcomes()
    assert outcomes.get("passed", 0) == 0, outcomes
    assert outcomes.get("skipped", 0) == 0, outcomes
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == len(contract_tests()), outcomes


def test_the_tests_not_opted_in_to_are_listed_at_the_end_of_the_run(run_suite):
    result = run_suite("")
    opted_out = ["refused_job", "walltime", "fill_scheduler", "unreachable_connector"]
    assert result.parseoutcomes().get("skipped") == len(opted_out)
    result.stdout.fnmatch_lines(["*connector contract: tests not opted in to*"])
    for knob in opted_out:
        result.stdout.fnmatch_lines([f"*test_broken.py::TestBrokenConnector::test_*: {knob} is None*"])


# dssr_core's own input checks: they answer before any connector is called ---------------------

@pytest.fixture
def api():
    settings = Settings.from_env({})
    connector = broken_connector_class()(settings)
    return ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings), executor_name="shell"))


@pytest.mark.parametrize("args", [
    {"name": "bad;name", "number": 1, "jobid": "1"},
    {"name": "ok", "number": "one", "jobid": "1"},
    {"name": "ok", "number": 1, "jobid": "$(touch /tmp/x)"},
    {"name": "ok", "number": 1},
])
def test_bad_job_reference_is_refused(api, args):
    for path in ("/runstatus", "/exitstatus", "/terminate", "/release", "/events"):
        answer = api.post(path, args)
        assert answer.status == 400, (path, answer.text)
        assert answer.json["description"]


def test_bad_submission_is_refused(api):
    answer = api.submit("-leading-dash", shell_template("true"))
    assert answer.status == 400
    assert "args.name" in answer.json["description"]
    answer = api.post("/submit", {"name": "ok", "number": 1, "nodes": 1,
                                  "hpc_script": {"shell": "%%% not base64"}})
    assert answer.status == 400
    assert "base64" in answer.json["description"]
