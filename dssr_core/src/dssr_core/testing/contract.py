"""The connector contract suite: what upstream relies on, run against any connector."""

import re
import uuid

import pytest

from dssr_core.app import create_app
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing.api import ApiClient, shell_template, wait_until

HMS = re.compile(r"^\d{2,}:\d{2}:\d{2}$")


class ConnectorContract:
    """Subclass it and provide a ``connector`` fixture; override the knobs as needed."""

    #: Seconds a job may take to start and to end on this connector.
    job_timeout = 60.0
    #: Seconds a held job is watched to prove it does not start.
    hold_watch = 2.0

    @pytest.fixture
    def contract_bearer(self):
        """The bearer upstream sends with submissions; override for user mapping."""
        return None

    @pytest.fixture
    def api(self, connector):
        settings = Settings.from_env({})
        return ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings)))

    @pytest.fixture
    def submit(self, api, contract_bearer):
        def submit(body: str, *, hold: bool = False, name: str | None = None):
            name = name or f"contract-{uuid.uuid4().hex[:10]}"
            answer = api.submit(name, shell_template(body), hold=hold, bearer=contract_bearer)
            assert answer.status == 200, answer.text
            jobid, script = answer.json
            assert isinstance(jobid, str) and jobid
            assert isinstance(script, str) and script
            return {"name": name, "number": 1, "jobid": jobid}

        return submit

    # Helpers ----------------------------------------------------------------------------

    def wait_ended(self, api, job):
        wait_until(lambda: not self._listed(api, job), self.job_timeout, what=f"{job} to end")

    def wait_running(self, api, job):
        wait_until(lambda: self._in(api, "running", job), self.job_timeout, what=f"{job} to run")

    @staticmethod
    def _in(api, listing, job) -> bool:
        answer = api.get(f"/{listing}")
        assert answer.status == 200, answer.text
        return [job["name"], job["jobid"]] in answer.json

    def _listed(self, api, job) -> bool:
        return self._in(api, "queued", job) or self._in(api, "running", job)

    @staticmethod
    def exitstatus(api, job):
        answer = api.post("/exitstatus", job)
        assert answer.status == 200, answer.text
        rc, totaltime, (output, banner) = answer.json
        assert HMS.match(totaltime), totaltime
        return rc, output, banner

    # The contract -----------------------------------------------------------------------

    def test_job_that_succeeds_reports_its_output(self, api, submit):
        job = submit('echo "contract says hello to $DSSR_JOB_NAME"')
        self.wait_ended(api, job)
        rc, output, banner = self.exitstatus(api, job)
        assert rc == 0
        assert f"contract says hello to {job['name']}" in output
        assert banner == "<< termination state: COMPLETED -- see STDOUT for job errors >>"

    def test_exitstatus_collects_the_jobs_files(self, api, submit):
        job = submit("echo collect-me")
        self.wait_ended(api, job)
        assert "collect-me" in self.exitstatus(api, job)[1]
        assert "collect-me" not in self.exitstatus(api, job)[1]
        assert api.post(f"/request/{job['name']}/1/{job['jobid']}/tail", {"qs": {}}).status == 404

    def test_job_that_fails_with_exit_code_3(self, api, submit):
        job = submit("echo about to fail; exit 3")
        self.wait_ended(api, job)
        rc, output, banner = self.exitstatus(api, job)
        assert rc == 1
        assert "about to fail" in output
        assert "FAILED" in banner

    def test_running_job_is_listed_with_status_and_output(self, api, submit):
        job = submit("echo started; sleep 60")
        self.wait_running(api, job)
        assert not self._in(api, "queued", job)
        nodes, elapsed, ident, extra = api.post("/runstatus", job).json
        assert nodes and all(isinstance(node, str) for node in nodes)
        assert HMS.match(elapsed)
        assert ident == f"{job['name']}/1/{job['jobid']}"
        assert extra is None
        tail = wait_until(lambda: self._tail(api, job), self.job_timeout, what="output")
        assert "started" in tail
        api.post("/terminate", job)
        self.wait_ended(api, job)
        assert self.exitstatus(api, job)[0] == -15

    @staticmethod
    def _tail(api, job):
        answer = api.post(f"/request/{job['name']}/1/{job['jobid']}/tail", {"qs": {"lines": ["5"]}})
        return answer.text if answer.status == 200 and answer.text.strip() else None

    def test_terminate_through_request_abort(self, api, submit):
        job = submit("sleep 60")
        self.wait_running(api, job)
        answer = api.post(f"/request/{job['name']}/1/{job['jobid']}/abort", {"qs": {}})
        assert answer.status == 200
        self.wait_ended(api, job)
        assert self.exitstatus(api, job)[0] == -15

    def test_held_job_waits_until_released(self, api, submit):
        import time

        job = submit("echo released-and-ran", hold=True)
        wait_until(lambda: self._in(api, "queued", job), self.job_timeout, what="held job queued")
        time.sleep(self.hold_watch)
        assert self._in(api, "queued", job)
        assert not self._in(api, "running", job)
        assert api.post("/release", job).json is True
        self.wait_ended(api, job)
        rc, output, _ = self.exitstatus(api, job)
        assert rc == 0
        assert "released-and-ran" in output

    def test_retried_submit_returns_the_same_job(self, api, submit):
        job = submit("sleep 60")
        again = submit("sleep 60", name=job["name"])
        assert again["jobid"] == job["jobid"]
        api.post("/terminate", job)
        self.wait_ended(api, job)
        self.exitstatus(api, job)

    def test_unknown_job(self, api, submit):
        job = {"name": "contract-never-submitted", "number": 1, "jobid": "987654"}
        assert api.post("/runstatus", job).json == [None, None, None, None]
        rc, output, banner = self.exitstatus(api, job)
        assert rc == -9
        assert output == ""
        assert api.post("/request/contract-never-submitted/1/987654/tail", {"qs": {}}).status == 404
        assert api.post("/terminate", job).json is True

    @pytest.mark.parametrize("args", [
        {"name": "bad;name", "number": 1, "jobid": "1"},
        {"name": "ok", "number": "one", "jobid": "1"},
        {"name": "ok", "number": 1, "jobid": "$(touch /tmp/x)"},
        {"name": "ok", "number": 1},
    ])
    def test_bad_job_reference_is_refused(self, api, args):
        for path in ("/runstatus", "/exitstatus", "/terminate", "/release", "/events"):
            answer = api.post(path, args)
            assert answer.status == 400, (path, answer.text)
            assert answer.json["description"]

    def test_bad_submission_is_refused(self, api):
        answer = api.submit("-leading-dash", shell_template("true"))
        assert answer.status == 400
        assert "args.name" in answer.json["description"]
        answer = api.post("/submit", {"name": "ok", "number": 1, "nodes": 1,
                                      "hpc_script": {"shell": "%%% not base64"}})
        assert answer.status == 400
        assert "base64" in answer.json["description"]
