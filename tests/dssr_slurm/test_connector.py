"""The connector in-process against the real cluster: the shared snapshot's cost, the success
marker under real srun, what is kept while a job runs, and what the init report shows."""

import base64
import subprocess
import sys
import threading
import uuid

import attrs
import pytest
from slurm_helpers import SHARED, bearer_for, job_of, template, wait_ended, wait_running

from dssr_core.app import create_app
from dssr_core.errors import ClusterUnavailable
from dssr_core.remote.files import SshFiles
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, wait_until

pytestmark = pytest.mark.slow
KIRBY = bearer_for("kirby@example.org")


class MarkerExecutor(ShellExecutor):
    """The shell executor, with a success marker as the singularity executor has."""

    def render(self, request):
        return attrs.evolve(super().render(request), success_marker="DSSR_TEST_SUCCESS")


def app_for(connector, executor_class=ShellExecutor):
    settings = Settings.from_env({})
    return ApiClient.for_app(create_app(settings, connector, executor_class(settings), executor_name="shell"))


def test_concurrent_polls_cost_one_squeue(make_connector):
    connector = make_connector(JARVICE_SLURM_STATUS_INTERVAL="2")
    api = app_for(connector)
    connector.check()
    before = connector.ssh.commands_run
    answers = []
    threads = [threading.Thread(target=lambda path=path: answers.append(api.get(path).status))
               for path in ("/running", "/queued") * 8]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [200] * 16
    assert connector.ssh.commands_run - before == 1
    api.post("/runstatus", {"name": "cli-x", "number": 1, "jobid": "1"})
    assert connector.ssh.commands_run - before == 1  # /runstatus reads the same snapshot


def test_the_success_marker_decides_under_real_srun(make_connector):
    api = app_for(make_connector(), MarkerExecutor)
    results = {}
    for label, body in (("printed", "echo DSSR_TEST_SUCCESS"), ("silent", "echo no marker; exit 0")):
        name = f"cli-marker-{label}-{uuid.uuid4().hex[:6]}"
        results[label] = job_of(name, api.submit(name, template(body, devices=SHARED),
                                                 bearer=KIRBY))
    for job in results.values():
        wait_ended(api, job)
    printed = api.post("/exitstatus", results["printed"]).json
    silent = api.post("/exitstatus", results["silent"]).json
    assert printed[0] == 0 and "COMPLETED" in printed[2][1]
    assert silent[0] == 1 and "FAILED" in silent[2][1]
    assert "did not print DSSR_TEST_SUCCESS" in silent[2][0]


def test_exitstatus_of_a_running_job_keeps_its_files(make_connector, slurm_env):
    api = app_for(make_connector())
    name = f"cli-keep-{uuid.uuid4().hex[:6]}"
    job = job_of(name, api.submit(name, template("echo kept; sleep 60", devices=SHARED),
                                  bearer=KIRBY))
    wait_running(api, job)
    rc, _, (output, banner) = api.post("/exitstatus", job).json
    assert rc == -9 and "RUNNING" in banner and output == ""
    tail = wait_until(lambda: _output(api, job), 30, what="the output, still there")
    assert tail == "kept\n"
    api.post("/terminate", job)
    wait_ended(api, job)
    rc, _, (output, _) = api.post("/exitstatus", job).json
    assert rc == -15 and "kept" in output


class LosesTheNextAnswer:
    """A test double of the SSH pool (a connection that drops at a chosen moment cannot be timed
    from outside): runs every command on the real cluster, but loses the answer of the next one,
    as a connection that dropped after the command ran would."""

    def __init__(self, pool):
        self.pool = pool
        self.settings = pool.settings
        self.armed = True

    def run(self, account, command, **options):
        result = self.pool.run(account, command, **options)
        if self.armed:
            self.armed = False
            raise ClusterUnavailable("SSH to the cluster failed (the test lost this answer).")
        return result


def test_an_exitstatus_whose_answer_was_lost_leaves_the_output_for_the_next(make_connector):
    connector = make_connector()
    api = app_for(connector)
    name = f"cli-lost-{uuid.uuid4().hex[:6]}"
    job = job_of(name, api.submit(name, template("echo kept", devices=SHARED), bearer=KIRBY))
    wait_ended(api, job)
    lossy = LosesTheNextAnswer(connector.ssh)
    connector.files = SshFiles(lossy, connector.accounts.for_owner)
    answer = api.post("/exitstatus", job)
    assert answer.status == 503 and not lossy.armed, answer.text
    rc, _, (output, banner) = api.post("/exitstatus", job).json
    assert (rc, "COMPLETED" in banner, output) == (0, True, "kept\n")
    assert _output(api, job) is None  # then removed


def test_the_init_report_shows_no_secret(make_connector, slurm_env):
    connector = make_connector()
    text = "\n".join(f"{label}: {value}" for label, value in connector.report())
    key_text = base64.b64decode(slurm_env["JARVICE_SLURM_SSH_PKEY"]).decode()
    assert "with 2 users (kirby, mario)" in text
    assert slurm_env["JARVICE_SLURM_SSH_KNOWN_HOSTS"] in text
    assert "PRIVATE" not in text and key_text.splitlines()[1][:20] not in text
    assert slurm_env["JARVICE_SLURM_SSH_PKEY"][:40] not in text


def test_dssr_check_shows_the_pinned_host_key_by_its_fingerprint(slurm_env, tmp_path):
    known_hosts = slurm_env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]
    line = open(known_hosts).read().strip()
    printed = subprocess.run(["ssh-keygen", "-l", "-f", known_hosts], capture_output=True, text=True,
                             check=True)
    env = {**slurm_env, "JARVICE_SLURM_SSH_HOST_KEY": line,
           "JARVICE_SLURM_SSH_KNOWN_HOSTS": str(tmp_path / "none")}
    done = subprocess.run([sys.executable, "-m", "dssr_core", "check"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"host key: pinned by JARVICE_SLURM_SSH_HOST_KEY: ssh-ed25519 {printed.stdout.split()[1]} "
            "(the known_hosts file is not read)\n") in done.stdout
    assert "first connection: OK" in done.stdout
    assert line.split()[2] not in done.stdout + done.stderr  # fingerprints only


def _output(api, job):
    answer = api.post(f"/request/{job['name']}/1/{job['jobid']}/tail", {"qs": {}})
    return answer.text if answer.status == 200 else None
