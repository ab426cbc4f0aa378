"""Hostile names, ids, paths and options through every endpoint of a live ``dssr serve``: each is
refused with a 4xx (a request method DSSR does not know: answered 200 and empty) and nothing runs (a
marker file that each of them would create never appears)."""

import os
import uuid
from urllib.parse import quote

import pytest
from slurm_helpers import bearer_for, template

pytestmark = pytest.mark.slow
MARKER = f"/tmp/dssr-hostile-{uuid.uuid4().hex[:8]}"
TOUCH = f"touch {MARKER}"
INJECTIONS = [f";{TOUCH}", f"$({TOUCH})", f"`{TOUCH}`", f"\n{TOUCH}", f"'; {TOUCH}; '", f'"; {TOUCH}; "',
              f"&& {TOUCH}", f"| {TOUCH}", f"-o{MARKER}", f"--wrap={TOUCH}"]
NAMES = [f"job{text}" for text in INJECTIONS] + [text for text in INJECTIONS if text.startswith("-")]
JOB_IDS = [f"12{text}" for text in INJECTIONS] + ["abc", "12a", "-1", "0x1f", "1_2", "1.2"]
SHELL_INJECTIONS = [text for text in INJECTIONS if not text.startswith("-o")]  # "x-o/tmp/..." is a fine value
DEVICES = ([f"sbatch_account=x{text}" for text in SHELL_INJECTIONS]
           + [f"partition=x{text}" for text in INJECTIONS]
           + [f"sbatch_wrap={TOUCH}", f"sbatch_comment=--wrap={TOUCH}", f"sbatch_x$({TOUCH})=1",
              f"sbatch_container=/tmp/{TOUCH}", "sbatch_export=ALL,LD_PRELOAD=/tmp/x.so",
              f"sbatch_bbf={MARKER}",
              f"sbatch_nodefile={MARKER}", "sbatch_chdir=/tmp", f"sbatch_output={MARKER}", "sbatch_uid=0"])
PATHS = ([f"/x{text}" for text in INJECTIONS if "\n" not in text]
         + [f"/x\n{TOUCH}", "/../..", "/..", "/x/../../etc"])
JOB_PATHS = ("/runstatus", "/exitstatus", "/terminate", "/release", "/events")
METHODS = ("tail", "info", "abort", "shutdown", "ping")


@pytest.fixture(scope="module")
def api(slurm_env, tmp_path_factory):
    from dssr_core.testing.plugin import DssrServer

    server = DssrServer(slurm_env, tmp_path_factory.mktemp("hostile") / "dssr.log").start()
    yield server.api()
    server.stop()
    assert not os.path.exists(MARKER), "a hostile value ran a command"


def assert_refused(answer, what):
    assert 400 <= answer.status < 500, (what, answer.status, answer.text)
    assert not os.path.exists(MARKER), what


@pytest.mark.parametrize("name", NAMES)
def test_hostile_names(api, name):
    assert_refused(api.submit(name, template("true"), bearer=bearer_for("kirby@example.org")), name)
    for path in JOB_PATHS:
        assert_refused(api.post(path, {"name": name, "number": 1, "jobid": "12"}), (path, name))
    for method in METHODS:
        assert_refused(api.post(f"/request/{quote(name, safe='')}/1/12/{method}", {"qs": {}}), (method, name))


@pytest.mark.parametrize("jobid", JOB_IDS)
def test_hostile_job_ids(api, jobid):
    for path in JOB_PATHS:
        assert_refused(api.post(path, {"name": "cli-hostile", "number": 1, "jobid": jobid}), (path, jobid))
    for method in METHODS:
        assert_refused(api.post(f"/request/cli-hostile/1/{quote(jobid, safe='')}/{method}", {"qs": {}}),
                       (method, jobid))


@pytest.mark.parametrize("device", DEVICES)
def test_hostile_devices(api, device):
    name = f"cli-hostile-{uuid.uuid4().hex[:6]}"
    answer = api.submit(name, template("true", devices=[device]), bearer=bearer_for("kirby@example.org"))
    assert_refused(answer, device)


@pytest.mark.parametrize("path", PATHS)
def test_hostile_data_paths(api, path):
    assert_refused(api.post("/request/pvcls", {"qs": {"path": [path], "details": ["true"]}}), path)


@pytest.mark.parametrize("text", INJECTIONS)
def test_hostile_tail_lines_methods_and_emails(api, text):
    assert_refused(api.post("/request/cli-hostile/1/12/tail", {"qs": {"lines": [f"5{text}"]}}), text)
    # A method DSSR does not know is answered 200 and empty, as the original; one with a '/' has no route.
    answer = api.post(f"/request/cli-hostile/1/12/{quote('x' + text, safe='')}", {"qs": {}})
    assert (answer.status, answer.text) == ((404, answer.text) if "/" in text else (200, "")), text
    assert not os.path.exists(MARKER), text
    bearer = bearer_for(f"x{text}@example.org".replace("\n", ""))
    assert_refused(api.submit("cli-hostile-mail", template("true"), bearer=bearer), text)
