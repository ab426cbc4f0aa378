"""The connector contract suite: what upstream relies on, run against any connector.

Subclass :class:`ConnectorContract` in a test module and provide two fixtures, ``connector``
and ``restart_connector`` (see their docstrings); override the knobs (class attributes) as your
scheduler needs. docs/testing.md lists everything.
"""

import json
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import attrs
import pytest

from dssr_core import metrics
from dssr_core.app import create_app, openapi_document_bytes
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing.api import ApiClient, shell_template, wait_until

HMS = re.compile(r"^\d{2,}:\d{2}:\d{2}$")
#: The name the suite's executors are served under: the key of ``hpc_script`` it sends.
EXECUTOR_NAME = "shell"


class MarkerShellExecutor(ShellExecutor):
    """The shell executor with a success marker, as the singularity executor has
    (``JARVICE_CMD_SUCCESS``): a job succeeded only when it printed :attr:`success_marker`."""

    success_marker = "DSSR_CONTRACT_SUCCESS"

    def render(self, request):
        return attrs.evolve(super().render(request), success_marker=self.success_marker)


class ConnectorContract:
    """Subclass it and provide the ``connector`` and ``restart_connector`` fixtures."""

    #: Seconds a job may take to start and to end on this connector.
    job_timeout = 60.0
    #: Seconds a held job is watched to prove it does not start.
    hold_watch = 2.0
    #: How many submissions the concurrency tests send at the same instant.
    concurrent_submits = 4
    #: The names of the suite's jobs start with it (a cleanup after the tests can find them).
    job_name_prefix = "contract-"
    #: Upstream's pseudo-devices (``JOBOBJ_DEVICES``) of every job the suite submits, e.g.
    #: ``["exclusive=False"]`` to let the suite's jobs share a small cluster's nodes.
    job_devices: list[str] | None = None

    # Fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def connector(self):
        """The connector under test, built as DSSR builds it. Provide it in your subclass."""
        pytest.fail("Provide a `connector` fixture: the connector under test, closed after the test.")

    @pytest.fixture
    def restart_connector(self):
        """A function that builds a second instance of the connector on the same state as
        ``connector`` (its state directory, its cluster), as DSSR does when it starts again.
        The suite closes ``connector`` before calling it and closes what it returns."""
        pytest.fail("Provide a `restart_connector` fixture: a function that builds a new instance "
                    "of the connector on the same state as `connector`.")

    @pytest.fixture
    def contract_bearer(self):
        """The bearer upstream sends with submissions; override for user mapping."""
        return None

    @pytest.fixture
    def api(self, connector):
        """The HTTP app on ``connector`` with the shell executor."""
        return self.api_for(connector)

    @pytest.fixture
    def marker_api(self, connector):
        """The HTTP app on ``connector`` with :class:`MarkerShellExecutor`."""
        return self.api_for(connector, MarkerShellExecutor)

    @pytest.fixture
    def submit(self, api, marker_api, contract_bearer):
        """``submit(body, hold=False, name=None, marked=False)``: the job as ``{name, number, jobid}``.

        ``marked`` submits through :class:`MarkerShellExecutor`.
        """

        def submit(body: str, *, hold: bool = False, name: str | None = None, marked: bool = False):
            return self.submit_to(marker_api if marked else api, body, contract_bearer,
                                  hold=hold, name=name)

        return submit

    # Helpers ----------------------------------------------------------------------------

    @staticmethod
    def api_for(connector, executor_class=ShellExecutor) -> ApiClient:
        settings = Settings.from_env({})
        app = create_app(settings, connector, executor_class(settings), executor_name=EXECUTOR_NAME)
        return ApiClient.for_app(app)

    def submit_to(self, api, body: str, bearer, *, hold: bool = False, name: str | None = None) -> dict:
        """Submit ``body`` through ``api`` as upstream does; the job as ``{name, number, jobid}``."""
        name = name or self.unique_name()
        template = shell_template(body, devices=self.job_devices)
        answer = api.submit(name, template, executor=EXECUTOR_NAME, hold=hold, bearer=bearer)
        assert answer.status == 200, answer.text
        jobid, script = answer.json
        assert isinstance(jobid, str) and jobid
        assert isinstance(script, str) and script
        return {"name": name, "number": 1, "jobid": jobid}

    def unique_name(self) -> str:
        return f"{self.job_name_prefix}{uuid.uuid4().hex[:10]}"

    def wait_ended(self, api, job):
        wait_until(lambda: not self._listed(api, job), self.job_timeout, what=f"{job} to end")

    def wait_running(self, api, job):
        """Wait until ``job`` runs; fail at once when it has left the listings without running."""

        def running():
            if self._in(api, "running", job):
                return True
            if not self._in(api, "queued", job) and not self._in(api, "running", job):
                rc, output, banner = self.exitstatus(api, job)
                raise AssertionError(f"{job} ended before it was seen running: rc {rc}, {banner}")
            return False

        wait_until(running, self.job_timeout, what=f"{job} to run")

    def wait_output(self, api, job, text: str) -> str:
        """The tail of the job's output once it holds ``text``."""

        def tail_with_text():
            tail = self._tail(api, job)
            return tail if tail and text in tail else None

        return wait_until(tail_with_text, self.job_timeout, what=f"{text!r} in the output of {job}")

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

    @staticmethod
    def _tail(api, job, lines: int = 5):
        answer = api.request(job, "tail", {"lines": [str(lines)]})
        return answer.text if answer.status == 200 and answer.text.strip() else None

    def terminate_and_collect(self, api, *jobs) -> list[int]:
        """Terminate ``jobs``, wait until they ended and return their ``rc``s."""
        for job in jobs:
            assert api.post("/terminate", job).json is True
        for job in jobs:
            self.wait_ended(api, job)
        return [self.exitstatus(api, job)[0] for job in jobs]

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
        assert api.request(job, "tail").status == 404

    def test_job_that_fails_with_exit_code_3(self, api, submit):
        job = submit("echo about to fail; exit 3")
        self.wait_ended(api, job)
        rc, output, banner = self.exitstatus(api, job)
        assert rc == 1
        assert "about to fail" in output
        assert "FAILED" in banner

    def test_the_success_marker_decides(self, api, submit):
        """Upstream's Singularity jobs print JARVICE_CMD_SUCCESS when the app succeeded; a job
        that exits 0 without it failed (its app crashed) and must be reported FAILED (rc 1)."""
        silent = submit("echo the app crashed, its wrapper exits 0; exit 0", marked=True)
        printed = submit(f"echo working; echo {MarkerShellExecutor.success_marker}", marked=True)
        self.wait_ended(api, silent)
        self.wait_ended(api, printed)
        rc, output, banner = self.exitstatus(api, silent)
        assert (rc, "FAILED" in banner) == (1, True), (output, banner)
        assert "the app crashed" in output
        rc, output, banner = self.exitstatus(api, printed)
        assert (rc, banner) == (0, "<< termination state: COMPLETED -- see STDOUT for job errors >>")
        assert "working" in output

    def test_running_job_is_listed_with_status_and_output(self, api, submit):
        job = submit("echo started; sleep 60")
        self.wait_running(api, job)
        assert not self._in(api, "queued", job)
        nodes, elapsed, ident, extra = api.post("/runstatus", job).json
        assert nodes and all(isinstance(node, str) for node in nodes)
        assert HMS.match(elapsed)
        assert ident == f"{job['name']}/1/{job['jobid']}"
        assert extra is None
        assert "started" in self.wait_output(api, job, "started")
        assert self.terminate_and_collect(api, job) == [-15]

    def test_events_of_a_live_job_is_text(self, api, submit):
        """Upstream shows /events of a job in the portal: 200 with a JSON string of what the
        scheduler says, never a 500 for a job that runs or waits."""
        running = submit("sleep 60")
        held = submit("true", hold=True)
        self.wait_running(api, running)
        for job in (running, held):
            answer = api.post("/events", job)
            assert answer.status == 200, answer.text
            assert isinstance(answer.json, str) and job["jobid"] in answer.json, answer.json
        assert self.terminate_and_collect(api, running, held) == [-15, -15]

    def test_request_without_a_known_method_answers_200_empty(self, api, submit):
        """The original answers 200 with an empty body to a method it does not know, or none:
        upstream's portal shows a 4xx as an error."""
        job = submit("true", hold=True)
        for method in ("no-such-method", ""):
            answer = api.request(job, method)
            assert (answer.status, answer.text) == (200, ""), (method, answer.text)
        assert self.terminate_and_collect(api, job) == [-15]

    def test_terminate_through_request_abort(self, api, submit):
        job = submit("sleep 60")
        self.wait_running(api, job)
        answer = api.request(job, "abort")
        assert answer.status == 200
        self.wait_ended(api, job)
        assert self.exitstatus(api, job)[0] == -15

    def test_job_that_ignores_term_runs_until_it_is_gone(self, api, submit):
        """Upstream takes a job that left /running as ended and collects it: a job that ignores
        TERM must stay in /running until it is really gone (killed), and only then be -15."""
        job = submit("trap '' TERM; i=0; echo ignoring-term\n"
                     "while :; do i=$((i + 1)); echo \"tick $i\"; sleep 0.25; done")
        self.wait_running(api, job)
        self.wait_output(api, job, "tick")  # the trap is set: TERM is ignored from here on
        assert api.post("/terminate", job).json is True
        wait_until(lambda: not self._in(api, "running", job), self.job_timeout,
                   what=f"{job} to be killed")
        assert not self._in(api, "queued", job)
        before = self._tail(api, job, lines=2)
        time.sleep(1.0)  # four ticks
        assert self._tail(api, job, lines=2) == before, "the job still prints: it left /running alive"
        rc, output, banner = self.exitstatus(api, job)
        assert (rc, "CANCELLED" in banner) == (-15, True), banner
        assert "ignoring-term" in output

    def test_held_job_waits_until_released(self, api, submit):
        job = submit("echo released-and-ran", hold=True)
        wait_until(lambda: self._in(api, "queued", job), self.job_timeout, what="held job queued")
        time.sleep(self.hold_watch)
        assert self._in(api, "queued", job)
        assert not self._in(api, "running", job)
        nodes, elapsed, ident, extra = api.post("/runstatus", job).json
        assert isinstance(nodes, list) and (elapsed, ident, extra) == (
            "00:00:00", f"{job['name']}/1/{job['jobid']}", None)  # as the original answers
        assert api.post("/release", job).json is True
        self.wait_ended(api, job)
        rc, output, _ = self.exitstatus(api, job)
        assert rc == 0
        assert "released-and-ran" in output

    def test_retried_submit_returns_the_same_job(self, api, submit):
        job = submit("sleep 60")
        again = submit("sleep 60", name=job["name"])
        assert again["jobid"] == job["jobid"]
        self.terminate_and_collect(api, job)

    def test_concurrent_submits_of_distinct_names_are_distinct_jobs(self, api, submit):
        """Upstream submits many jobs at once from several threads: each is a job of its own."""
        with ThreadPoolExecutor(self.concurrent_submits) as pool:
            jobs = list(pool.map(lambda _: submit("true", hold=True), range(self.concurrent_submits)))
        assert len({job["jobid"] for job in jobs}) == self.concurrent_submits
        queued = api.get("/queued").json
        assert all([job["name"], job["jobid"]] in queued for job in jobs)
        assert self.terminate_and_collect(api, *jobs) == [-15] * self.concurrent_submits

    def test_concurrent_submits_of_one_name_are_one_job(self, api, submit):
        """Upstream retries a /submit that timed out while the first is still being served:
        the same name at the same instant must give one job, and every answer its id."""
        name = self.unique_name()
        with ThreadPoolExecutor(self.concurrent_submits) as pool:
            jobs = list(pool.map(lambda _: submit("true", hold=True, name=name),
                                 range(self.concurrent_submits)))
        assert len({job["jobid"] for job in jobs}) == 1, jobs
        listed = [row for row in api.get("/queued").json + api.get("/running").json if row[0] == name]
        assert listed == [[name, jobs[0]["jobid"]]]
        assert self.terminate_and_collect(api, jobs[0]) == [-15]

    def test_restart_keeps_running_held_and_ended_jobs(self, connector, restart_connector,
                                                        contract_bearer):
        """DSSR restarts (upgrades, a pod moved, a second replica) while upstream's jobs run,
        wait and wait to be collected: a new instance on the same state must know them all."""
        api = self.api_for(connector)
        ended = self.submit_to(api, "echo ended-before-restart", contract_bearer)
        running = self.submit_to(api, "echo running-across-restart; sleep 60", contract_bearer)
        held = self.submit_to(api, "echo held-across-restart", contract_bearer, hold=True)
        self.wait_ended(api, ended)
        self.wait_running(api, running)
        connector.close()
        second = restart_connector()
        try:
            api = self.api_for(second)
            assert self._in(api, "running", running)
            assert self._in(api, "queued", held)
            assert "running-across-restart" in self.wait_output(api, running, "running-across-restart")
            rc, output, _ = self.exitstatus(api, ended)
            assert (rc, "ended-before-restart" in output) == (0, True), output
            assert self.terminate_and_collect(api, running) == [-15]
            assert api.post("/release", held).json is True
            self.wait_ended(api, held)
            rc, output, _ = self.exitstatus(api, held)
            assert (rc, "held-across-restart" in output) == (0, True), output
        finally:
            second.close()

    def test_check_and_gc_on_a_healthy_cluster(self, api, connector, submit):
        """Operators run `dssr check`, upstream calls /gc regularly: both succeed on a healthy
        cluster, and /gc leaves an ended job that upstream has not collected yet alone."""
        summary = connector.check()
        assert isinstance(summary, str) and summary.strip()
        job = submit("echo kept-until-collected")
        self.wait_ended(api, job)
        answer = api.get("/gc")
        assert (answer.status, answer.json) == (200, {"status": "OK"})
        rc, output, _ = self.exitstatus(api, job)
        assert (rc, "kept-until-collected" in output) == (0, True), output

    def test_unknown_job(self, api, submit):
        job = {"name": "contract-never-submitted", "number": 1, "jobid": "987654"}
        assert api.post("/runstatus", job).json == [None, None, None, None]
        rc, output, banner = self.exitstatus(api, job)
        assert rc == -9
        assert output == ""
        assert api.request(job, "tail").status == 404
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

    # Last, so that it sees the labels of every test above when the suite runs whole ---------

    def test_no_metric_label_names_a_job_user_or_host(self, api, submit, contract_bearer):
        """Every ``dssr_*`` label value is from a small fixed set: after the jobs of the suite
        (and one more here, listed, asked about, ended), none names a job, user, e-mail or host."""
        job = submit("sleep 30")
        for path in ("/queued", "/running"):
            api.get(path)
        api.post("/runstatus", job)
        api.request(job, "tail")
        api.post("/terminate", job)
        named = {job["name"], self.job_name_prefix, socket.gethostname(), "localhost",
                 *bearer_names(contract_bearer)}
        assert_fixed_labels(metrics.exposition().decode(), named)


#: The route labels besides the API's paths: an unrouted refusal, a 404's, the proxy's.
_SPECIAL_ROUTES = {"unmatched", "unrouted", "job-proxy", "/request/{method}"}
#: Labels whose values are numbers by nature.
_NUMERIC_LABELS = {"code", "le", "quantile"}


def bearer_names(bearer: str | None) -> set[str]:
    """The user names and e-mail a bearer carries (unchecked: it is the suite's own)."""
    if not bearer:
        return set()
    from dssr_core.bearer import unchecked_claims

    claims = unchecked_claims(bearer)
    return {str(claims[key]) for key in ("email", "preferred_username", "sub") if claims.get(key)}


def assert_fixed_labels(exposition: str, named: set[str]) -> None:
    """AssertionError naming the sample when a ``dssr_*`` label value is not from a fixed set:
    a route that is not a template, a value that is a number (a job id or number), holds an
    ``@`` (an e-mail) or one of ``named`` (job names, users, hosts)."""
    from prometheus_client.parser import text_string_to_metric_families

    paths = json.loads(openapi_document_bytes())["paths"]
    routes = {path for path in paths if not path.startswith("/request/{")} | _SPECIAL_ROUTES
    for family in text_string_to_metric_families(exposition):
        if not family.name.startswith("dssr_"):
            continue
        for sample in family.samples:
            for label, value in sample.labels.items():
                where = f"{sample.name}{{{label}={value!r}}}"
                if label in _NUMERIC_LABELS:
                    continue
                if label == "route":
                    assert value in routes, f"{where}: a route label is a template"
                assert not value.isdigit(), f"{where}: a number (a job's id or number?) as a label"
                assert "@" not in value, f"{where}: an e-mail as a label"
                assert not any(name and name in value for name in named), f"{where}: names a job, user, host"
