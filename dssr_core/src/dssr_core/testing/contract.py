"""The connector contract suite: what upstream relies on, run against any connector.

Subclass :class:`ConnectorContract` in a test module and provide two fixtures, ``connector``
and ``serve_env`` (see their docstrings); override the knobs (class attributes) as your
scheduler needs, and opt in to the tests of what your scheduler can do (``fill_scheduler``,
``unreachable_connector``, ``refused_job``, ``walltime``). A test you do not opt in to is
skipped with a reason that starts with :data:`OPT_OUT` (``pytest -rs`` and the summary at the
end of the run list them). docs/testing.md lists everything.
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
from dssr_core.errors import ClusterUnavailable
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing.api import ApiClient, shell_template, wait_until
from dssr_core.testing.plugin import OPT_OUT

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
    """Subclass it and provide the ``connector`` and ``serve_env`` fixtures."""

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
    #: Opt-in: keyword arguments of :func:`shell_template` (``cores``, ``devices``) for a job
    #: your scheduler refuses at submission (e.g. ``{"cores": 4096}``); ``None``: it refuses none.
    refused_job: dict | None = None
    #: Opt-in: a ``JOBOBJ_WALLTIME`` (``HH:MM:SS``) your scheduler enforces within
    #: ``job_timeout``; ``None``: it does not end jobs at their walltime.
    walltime: str | None = None
    #: Whether the connector tells a retried submit from another script under a live job's name
    #: (it keeps the script's fingerprint with the job: ``check_retried_submit``); ``False`` opts
    #: out of the 409 test, and the end of the run lists it.
    tells_reused_names = True

    # Fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def connector(self):
        """The connector under test, built as DSSR builds it. Provide it in your subclass."""
        pytest.fail("Provide a `connector` fixture: the connector under test, closed after the test.")

    @pytest.fixture
    def serve_env(self):
        """The settings (environment variables) with which ``dssr serve`` serves the connector
        on the same state as ``connector`` (its state directory, its cluster): at least
        ``JARVICE_BAREMETAL_CONNECTOR``. The restart test stops ``connector`` and starts that
        server, a process of its own, as DSSR starts again after an upgrade."""
        pytest.fail("Provide a `serve_env` fixture: the environment with which `dssr serve` serves "
                    "your connector on the same state as `connector` (it replaces `restart_connector`, "
                    "which the suite no longer calls).")

    @pytest.fixture
    def fill_scheduler(self):
        """Opt-in: ``fill(submit)`` submits, with the suite's ``submit`` fixture, the jobs that
        take every slot the suite's next job could run in, and returns them (they must run,
        e.g. ``sleep 300``; the suite terminates them). ``None``: the connector cannot make a
        job wait for resources."""
        return None

    @pytest.fixture
    def unreachable_connector(self):
        """Opt-in: a connector like ``connector`` whose scheduler cannot be reached (pointed at
        a closed port, say), closed after the test. ``None``: the suite cannot make an outage."""
        return None

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
        """``submit(body, hold=False, name=None, marked=False, devices=None)``: the job as
        ``{name, number, jobid}``.

        ``marked`` submits through :class:`MarkerShellExecutor`; ``devices`` replaces
        :attr:`job_devices` for this job. After the test every job it submitted is terminated:
        a failed test leaves nothing running on a shared cluster.
        """
        submitted = []

        def submit(body: str, *, hold: bool = False, name: str | None = None, marked: bool = False,
                   devices: list[str] | None = None):
            job = self.submit_to(marker_api if marked else api, body, contract_bearer,
                                 hold=hold, name=name, devices=devices)
            submitted.append(job)
            return job

        yield submit
        for job in submitted:
            try:
                api.post("/terminate", job)
            except Exception:  # the test's own failure is the one to report
                pass

    # Helpers ----------------------------------------------------------------------------

    @staticmethod
    def api_for(connector, executor_class=ShellExecutor) -> ApiClient:
        settings = Settings.from_env({})
        app = create_app(settings, connector, executor_class(settings), executor_name=EXECUTOR_NAME)
        return ApiClient.for_app(app)

    def submit_to(self, api, body: str, bearer, *, hold: bool = False, name: str | None = None,
                  devices: list[str] | None = None, walltime: str | None = None) -> dict:
        """Submit ``body`` through ``api`` as upstream does; the job as ``{name, number, jobid}``.
        ``devices`` replaces :attr:`job_devices`; ``walltime`` is its ``JOBOBJ_WALLTIME``."""
        name = name or self.unique_name()
        template = shell_template(body, devices=self.job_devices if devices is None else devices,
                                  walltime=walltime)
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

    @staticmethod
    def opt_out(what: str) -> None:
        """Skip the test: the subclass has not opted in to ``what`` (the report lists it)."""
        pytest.skip(f"{OPT_OUT} {what}")

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

    def test_reused_name_with_another_script_is_409(self, api, submit, contract_bearer):
        """A submit of a live job's name with another script is another job that reuses the name,
        not a retry: 409 with a sentence naming the live job, which stays as it was."""
        if not self.tells_reused_names:
            self.opt_out("tells_reused_names is False: the connector keeps no script fingerprint")
        job = submit("sleep 60", hold=True)
        other = shell_template("sleep 61", devices=self.job_devices)
        answer = api.submit(job["name"], other, executor=EXECUTOR_NAME, hold=True, bearer=contract_bearer)
        assert answer.status == 409, answer.text
        assert job["jobid"] in answer.json["description"]
        listed = [row for row in api.get("/queued").json + api.get("/running").json if row[0] == job["name"]]
        assert listed == [[job["name"], job["jobid"]]]
        assert self.terminate_and_collect(api, job) == [-15]

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

    def test_restart_keeps_running_held_and_ended_jobs(self, connector, serve_env, dssr_server,
                                                        contract_bearer):
        """DSSR restarts (upgrades, a pod moved, a second replica) while upstream's jobs run,
        wait and wait to be collected: ``dssr serve``, a process of its own on the same state,
        must know them all, and again after it restarted itself."""
        api = self.api_for(connector)
        ended = self.submit_to(api, "echo ended-before-restart", contract_bearer)
        running = self.submit_to(api, "echo running-across-restart; sleep 300", contract_bearer)
        held = self.submit_to(api, "echo held-across-restart", contract_bearer, hold=True)
        self.wait_ended(api, ended)
        self.wait_running(api, running)
        connector.close()
        key = serve_env.get("JARVICE_SCHED_SERVER_KEY")
        server = dssr_server(serve_env, auth=tuple(key.split(":", 1)) if key else None)
        api = server.api()
        assert self._in(api, "running", running), server.log()[-2000:]
        assert self._in(api, "queued", held)
        served = self.submit_to(api, "echo held-by-the-server", contract_bearer, hold=True)
        server.restart()
        api = server.api()
        assert self._in(api, "running", running)
        assert self._in(api, "queued", held) and self._in(api, "queued", served)
        assert "running-across-restart" in self.wait_output(api, running, "running-across-restart")
        rc, output, _ = self.exitstatus(api, ended)
        assert (rc, "ended-before-restart" in output) == (0, True), output
        assert self.terminate_and_collect(api, running) == [-15]
        for job, words in ((held, "held-across-restart"), (served, "held-by-the-server")):
            assert api.post("/release", job).json is True
            self.wait_ended(api, job)
            rc, output, _ = self.exitstatus(api, job)
            assert (rc, words in output) == (0, True), output

    def test_check_and_gc_on_a_healthy_cluster(self, api, connector, submit, unreachable_connector):
        """Operators run `dssr check`, upstream calls /gc regularly: both succeed on a healthy
        cluster, and /gc leaves an ended job that upstream has not collected yet alone. The
        check is a live test: where the suite can make an outage, it must see it."""
        summary = connector.check()
        assert isinstance(summary, str) and summary.strip() and "\n" not in summary.strip(), summary
        if unreachable_connector is not None:
            with pytest.raises(ClusterUnavailable):
                unreachable_connector.check()
        job = submit("echo kept-until-collected")
        self.wait_ended(api, job)
        answer = api.get("/gc")
        assert (answer.status, answer.json) == (200, {"status": "OK"})
        rc, output, _ = self.exitstatus(api, job)
        assert (rc, "kept-until-collected" in output) == (0, True), output

    def test_two_live_jobs_each_tail_their_own_output(self, api, submit):
        """Upstream shows the output of each of a user's jobs while they run: a tail must be
        the output of the job asked for, never of another live job."""
        first = submit("echo output-of-the-first; sleep 300")
        second = submit("echo output-of-the-second; sleep 300")
        self.wait_running(api, first)
        self.wait_running(api, second)

        def both_tails():
            tails = [self._tail(api, job) or "" for job in (first, second)]
            return tails if all("output-of-the-" in tail for tail in tails) else None

        first_tail, second_tail = wait_until(both_tails, self.job_timeout, what="output of both jobs")
        assert "output-of-the-first" in first_tail and "-second" not in first_tail, first_tail
        assert "output-of-the-second" in second_tail and "-first" not in second_tail, second_tail
        assert self.terminate_and_collect(api, first, second) == [-15, -15]

    def test_job_waiting_for_resources_is_queued_not_running(self, api, submit, fill_scheduler):
        """A job that waits for a free slot (not only a held one) is in /queued, not /running,
        and /runstatus gives the waiting shape; it runs once a slot is free."""
        if fill_scheduler is None:
            self.opt_out("fill_scheduler is None: the connector cannot make a job wait for resources")
        fillers = fill_scheduler(submit)
        assert fillers, "fill_scheduler submitted no job"
        for job in fillers:
            self.wait_running(api, job)
        waiting = submit("echo ran-once-a-slot-was-free")
        wait_until(lambda: self._listed(api, waiting), self.job_timeout, what=f"{waiting} listed")
        deadline = time.monotonic() + self.hold_watch
        while time.monotonic() < deadline:
            assert not self._in(api, "running", waiting), "a job waiting for a slot is listed running"
            assert self._in(api, "queued", waiting)
            nodes, elapsed, ident, extra = api.post("/runstatus", waiting).json
            assert (elapsed, ident, extra) == ("00:00:00", f"{waiting['name']}/1/{waiting['jobid']}", None)
            time.sleep(0.2)
        assert self.terminate_and_collect(api, *fillers) == [-15] * len(fillers)
        self.wait_ended(api, waiting)
        rc, output, _ = self.exitstatus(api, waiting)
        assert (rc, "ran-once-a-slot-was-free" in output) == (0, True), output

    def test_scheduler_refusal_is_422(self, api, contract_bearer):
        """A job the scheduler refuses is a 422 with the scheduler's sentence, and no job."""
        if self.refused_job is None:
            self.opt_out("refused_job is None: no job that the scheduler refuses")
        name = self.unique_name()
        template = shell_template("echo never-runs", **{"devices": self.job_devices, **self.refused_job})
        answer = api.submit(name, template, executor=EXECUTOR_NAME, bearer=contract_bearer)
        assert answer.status == 422, answer.text
        assert answer.json["description"].strip(), answer.text
        assert name not in api.job_names("queued") | api.job_names("running")

    def test_scheduler_outage_is_503_never_an_empty_list(self, unreachable_connector, contract_bearer):
        """Upstream takes an empty /running as "every job ended": a scheduler that cannot be
        reached is a 503 with a sentence on the listings and /submit, and /gc is 500 ``BAD``."""
        if unreachable_connector is None:
            self.opt_out("unreachable_connector is None: the suite cannot make an outage")
        api = self.api_for(unreachable_connector)
        answer = api.get("/gc")
        assert (answer.status, answer.json) == (500, {"status": "BAD"}), answer.text
        answers = {path: api.get(path) for path in ("/running", "/queued")}
        answers["/submit"] = api.submit(self.unique_name(), shell_template("true", devices=self.job_devices),
                                        executor=EXECUTOR_NAME, bearer=contract_bearer)
        for path, answer in answers.items():
            assert answer.status == 503, (path, answer.status, answer.text)
            assert answer.json["description"].strip(), (path, answer.text)

    def test_job_past_its_walltime_ends_timeout(self, api, contract_bearer):
        """A job that outlives its walltime (``JOBOBJ_WALLTIME``) is ended by the scheduler and
        reported ``TIMEOUT`` with its output."""
        if self.walltime is None:
            self.opt_out("walltime is None: the connector does not end jobs at their walltime")
        job = self.submit_to(api, "echo started-before-the-walltime; sleep 600", contract_bearer,
                             walltime=self.walltime)
        self.wait_running(api, job)
        self.wait_ended(api, job)
        rc, output, banner = self.exitstatus(api, job)
        assert "TIMEOUT" in banner, banner
        assert "started-before-the-walltime" in output

    def test_unknown_job(self, api, submit):
        job = {"name": "contract-never-submitted", "number": 1, "jobid": "987654"}
        assert api.post("/runstatus", job).json == [None, None, None, None]
        rc, output, banner = self.exitstatus(api, job)
        assert rc == -9
        assert output == ""
        assert api.request(job, "tail").status == 404
        assert api.post("/terminate", job).json is True

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
