"""When a daemon of the cluster is down the status endpoints answer the truth or 503 with a
sentence, never an empty list or a made-up state; once the daemon is back the next call works,
DSSR not restarted. These tests stop the shared cluster's daemons: run them on their own."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import attrs
import pytest
from slurm_helpers import (
    SHARED,
    bearer_for,
    job_of,
    slurm,
    squeue_field,
    template,
    wait_ended,
    wait_gone_from_squeue,
    wait_running,
)

from dssr_core.testing import ApiClient, wait_until
from dssr_core.testing.plugin import DssrServer

pytest_plugins = ["rest_fixtures"]
pytestmark = pytest.mark.slow


# The fault matrix (docs/reliability.md): each daemon stopped while upstream polls, then started
# again, DSSR not restarted. A job runs (both connectors' DSSRs ask about it) and each DSSR has an
# ended job (gone from squeue and from DSSR's snapshot: only accounting knows it). Every
# answer is the true one or a 503 with a sentence: never an empty list while the job runs, never
# a made-up exit status, and no job and no output is lost. A third DSSR, slurm-cli with the default
# timeouts, is asked during the sshd and slurmctld outages: its 503 names the cause, and its next
# call once the daemon is back works.

#: daemon -> the connectors it concerns
OUTAGES = {
    "sshd": ("slurm-cli",),
    "slurmctld": ("slurm-cli", "slurmrestd"),
    "slurmdbd": ("slurm-cli", "slurmrestd"),
    "mariadb": ("slurm-cli", "slurmrestd"),
    "slurmrestd": ("slurmrestd",),
}
#: With these down the controller still answers: listings are the truth, not an error.
ACCOUNTING = ("slurmdbd", "mariadb")
ENDED_RC = 3  # the ended jobs exit 3: FAILED, rc 1
ENDED_BODY = f"echo ending; exit {ENDED_RC}"
KIRBY = bearer_for("kirby@example.org")
#: Job names start with these (the test run's cleanup cancels what is left of them).
PREFIXES = {"slurm-cli": "cli", "slurmrestd": "rest"}
#: Short waits, so that an outage answers 503 in seconds (squeue and slurmrestd take 9 to 18 s to
#: give up on a stopped slurmctld) and a poll round stays short.
FAST = {"JARVICE_SLURM_COMMAND_TIMEOUT": "3", "JARVICE_SLURM_SSH_CONNECT_TIMEOUT": "2",
        "JARVICE_SLURMRESTD_TIMEOUT": "3", "JARVICE_SLURMRESTD_CONNECT_TIMEOUT": "2",
        "JARVICE_SLURMRESTD_RETRIES": "0"}
#: daemon -> the words of the 503 that name it, from the DSSR with the default timeouts (long
#: enough for squeue to give up with Slurm's own words; with FAST it is cut short first)
CAUSES = {"sshd": "Cannot reach the cluster over SSH", "slurmctld": "Unable to contact slurm controller"}


@attrs.define
class EndedJob:
    """A job that has ended with exit code 3, and whether an /exitstatus has answered its output
    (its files are removed then: later answers have the status without the output)."""

    job: dict
    words: str
    output_delivered: bool = False

    def check(self, answer, *, known: bool = False) -> None:
        """503 with a sentence (not when the answer is ``known``), or the true exit status:
        FAILED, rc 1, with the output the first time."""
        if answer.status == 503 and not known:
            _assert_sentence(answer, f"/exitstatus of {self.job['name']}")
            return
        assert answer.status == 200, (self.job["name"], answer.status, answer.text)
        rc, _, (output, banner) = answer.json
        assert (rc, "FAILED" in banner) == (1, True), answer.text
        assert (self.words in output) == (not self.output_delivered), (self.output_delivered, answer.text)
        self.output_delivered = True


@attrs.define
class Polled:
    """One connector's DSSR, with the running job and its own ended job, asked through every outage."""

    connector: str
    api: ApiClient
    interval: float
    running: dict
    ended: EndedJob


def _assert_sentence(answer, what: str) -> None:
    assert answer.status == 503, (what, answer.status, answer.text)
    description = answer.json["description"]
    assert description.endswith(".") and len(description.split()) > 3, (what, answer.text)


def _in_parallel(call, items: list) -> list:
    """``call`` on each item at once (the connectors are asked together); its results, in order."""
    with ThreadPoolExecutor(len(items)) as pool:
        return [future.result() for future in [pool.submit(call, item) for item in items]]


def _status_calls(api, running: dict) -> dict:
    """Upstream's status calls about ``running``, by name, not yet made."""
    return {
        "/running": lambda: api.get("/running"),
        "/queued": lambda: api.get("/queued"),
        "/runstatus": lambda: api.post("/runstatus", running),
        "/exitstatus": lambda: api.post("/exitstatus", running),
        "/gc": lambda: api.get("/gc"),
    }


def _answers_at_once(calls: dict) -> dict:
    """Every call of ``calls`` made at once; their answers, by name."""
    return dict(zip(calls, _in_parallel(lambda call: call(), list(calls.values())), strict=True))


@attrs.define
class Matrix:
    """The DSSRs the outages are watched through, and the running job they are all asked about."""

    polled: dict[str, Polled]  # connector -> its DSSR with FAST timeouts
    at_defaults: ApiClient  # a slurm-cli DSSR with the default timeouts
    running: dict


@pytest.fixture(scope="module")
def matrix(slurm_env, rest_env, tmp_path_factory) -> Matrix:
    """A DSSR per connector (not restarted by the matrix), each with its ended job, a slurm-cli DSSR
    with the default timeouts, and one running job all are asked about (one core of the test node
    stays free for the jobs of the cells)."""
    envs = {"slurm-cli": {**slurm_env, **FAST},
            "slurmrestd": {**rest_env, **FAST, "JARVICE_SLURMRESTD_OUTPUT_ACCESS": "ssh"},
            "defaults": slurm_env}
    logs = tmp_path_factory.mktemp("matrix")
    servers = {connector: DssrServer(env, logs / f"{connector}.log") for connector, env in envs.items()}
    running = None
    try:
        _in_parallel(lambda server: server.start(), list(servers.values()))
        apis = {connector: server.api() for connector, server in servers.items()}
        at_defaults = apis.pop("defaults")
        ended = {connector: EndedJob(_submit(api, f"{PREFIXES[connector]}-matrix-ended", ENDED_BODY),
                                     "ending") for connector, api in apis.items()}
        running = _submit(apis["slurm-cli"], "cli-matrix-run", "sleep 900")
        polled = [Polled(connector, api, float(envs[connector]["JARVICE_SLURM_STATUS_INTERVAL"]), running,
                         ended[connector]) for connector, api in apis.items()]
        _in_parallel(_wait_ready, polled)
        wait_running(at_defaults, running)
        yield Matrix({each.connector: each for each in polled}, at_defaults, running)
    finally:
        if running is not None:  # a failed matrix must not leave its 900 s job holding the node
            slurm("scancel", running["jobid"])
        for server in servers.values():
            server.stop()


def _submit(api: ApiClient, prefix: str, body: str) -> dict:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    return job_of(name, api.submit(name, template(body, devices=SHARED), bearer=KIRBY))


def _wait_ready(polled: Polled) -> None:
    """The running job runs; the ended job has left squeue, and DSSR's snapshot is newer than that."""
    wait_running(polled.api, polled.running)
    wait_gone_from_squeue(polled.ended.job["jobid"])
    time.sleep(polled.interval + 0.1)
    assert [polled.running["name"], polled.running["jobid"]] in polled.api.get("/running").json


def _poll(polled: Polled, seen: EndedJob | None, daemon: str) -> None:
    """One round of upstream's calls while ``daemon`` is down, all at once, each checked."""
    api, running = polled.api, polled.running
    calls = _status_calls(api, running)
    calls["/exitstatus ended"] = lambda: api.post("/exitstatus", polled.ended.job)
    if seen is not None:
        calls["/exitstatus seen"] = lambda: api.post("/exitstatus", seen.job)
    answers = _answers_at_once(calls)
    if daemon in ACCOUNTING:  # the controller answers: the truth, not an error
        assert [running["name"], running["jobid"]] in answers["/running"].json, answers["/running"].text
        assert answers["/queued"].status == 200, answers["/queued"].text
        assert [running["name"], running["jobid"]] not in answers["/queued"].json, answers["/queued"].text
        assert answers["/runstatus"].json[0] == ["localhost"], answers["/runstatus"].text
        rc, _, (_, banner) = answers["/exitstatus"].json
        assert (rc, "RUNNING" in banner) == (-9, True), answers["/exitstatus"].text
        assert answers["/gc"].json == {"status": "OK"}, answers["/gc"].text
    else:
        for path in ("/running", "/queued", "/runstatus", "/exitstatus"):
            _assert_sentence(answers[path], path)
        assert answers["/gc"].status == 500 and answers["/gc"].json == {"status": "BAD"}
    polled.ended.check(answers["/exitstatus ended"])
    if seen is not None:  # DSSR saw it end: the state it saw, and the output, collected now
        seen.check(answers["/exitstatus seen"], known=True)


def _seen_ended(polled: Polled) -> EndedJob:
    """A job that has just ended, in squeue still and in DSSR's snapshot as ended."""
    job = _submit(polled.api, f"{PREFIXES[polled.connector]}-matrix-seen", f"echo seen; exit {ENDED_RC}")
    wait_until(lambda: squeue_field(job["jobid"], "%T") == "FAILED", 60, what=f"{job['name']} to fail")
    time.sleep(polled.interval + 0.1)
    assert polled.api.get("/queued").status == 200  # a snapshot with the job FAILED in it
    assert squeue_field(job["jobid"], "%T") == "FAILED", "the job left squeue too early for this test"
    return EndedJob(job, "seen")


def _recovered(polled: Polled, daemon: str) -> None:
    """Once the daemon is back: the cluster answers, the job runs on, the ended job's output is kept."""
    api, running = polled.api, polled.running
    wait_until(lambda: api.get("/gc").status == 200, 60, what=f"DSSR to see the cluster after {daemon}")
    wait_until(lambda: api.get("/running").status == 200, 60, what="/running to answer again")
    assert [running["name"], running["jobid"]] in api.get("/running").json  # not lost
    rc, _, (_, banner) = api.post("/exitstatus", running).json
    assert (rc, "RUNNING" in banner) == (-9, True)
    if not polled.ended.output_delivered:
        tail = api.request(polled.ended.job, "tail")
        assert tail.status == 200 and "ending" in tail.text, tail.text


def _cause_named(matrix: Matrix, daemon: str) -> None:
    """With the default timeouts, while ``daemon`` is down: every status call is a 503 whose
    sentence names the cause, in DSSR's or Slurm's words."""
    api, running = matrix.at_defaults, matrix.running
    answers = _answers_at_once(_status_calls(api, running))
    for path in ("/running", "/queued", "/runstatus", "/exitstatus"):
        assert answers[path].status == 503, (path, answers[path].text)
        assert CAUSES[daemon] in answers[path].json["description"], (path, answers[path].text)
    assert answers["/gc"].status == 500 and answers["/gc"].json == {"status": "BAD"}


def _works_at_once(matrix: Matrix) -> None:
    """With the default timeouts, the first calls once the daemon is back: the truth, no 503."""
    api, running = matrix.at_defaults, matrix.running
    assert api.get("/gc").json == {"status": "OK"}
    assert [running["name"], running["jobid"]] in api.get("/running").json
    assert api.post("/runstatus", running).json[0] == ["localhost"]


@pytest.mark.parametrize("daemon", list(OUTAGES))
def test_a_daemon_stopped_and_started_during_polling_loses_nothing(matrix, daemons, daemon):
    polled = [matrix.polled[connector] for connector in OUTAGES[daemon]]
    # slurmctld down, SSH up: a job DSSR saw end is answered from what it saw, output included.
    seen = _in_parallel(_seen_ended, polled) if daemon == "slurmctld" else [None] * len(polled)
    daemons.stop(daemon)
    try:
        time.sleep(max(each.interval for each in polled) + 0.1)  # let the snapshots age
        with ThreadPoolExecutor(1) as pool:  # the default timeouts' answers (up to 18 s) come meanwhile
            named = [pool.submit(_cause_named, matrix, daemon)] if daemon in CAUSES else []
            for _ in range(2):  # upstream polls on
                _in_parallel(lambda pair: _poll(*pair, daemon), list(zip(polled, seen, strict=True)))
            for future in named:
                future.result()
    finally:
        daemons.start(daemon)
    if daemon in CAUSES:
        _works_at_once(matrix)
    _in_parallel(lambda each: _recovered(each, daemon), polled)


def test_after_the_outages_the_jobs_end_with_their_true_status(matrix):
    """The ended job's output, kept through every outage, comes with its exit status; the
    running job, terminated through the DSSR with the default timeouts, is -15 for all three."""
    _in_parallel(lambda polled: polled.ended.check(polled.api.post("/exitstatus", polled.ended.job),
                                                   known=True), list(matrix.polled.values()))
    assert matrix.at_defaults.post("/terminate", matrix.running).json is True
    for api in [polled.api for polled in matrix.polled.values()] + [matrix.at_defaults]:
        wait_ended(api, matrix.running)
        assert api.post("/exitstatus", matrix.running).json[0] == -15
