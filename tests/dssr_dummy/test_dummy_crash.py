"""``dssr serve`` killed with SIGKILL in the middle of a burst of submits, then started again.

Every submit that was answered is a job the next server knows and runs exactly once, with its
true exit status; a submit that was not answered is sent again, as upstream does, and is
answered. (One that was saved but not answered, and ended before the retry, runs again: the
dummy takes a retried submit for the same job only while that job waits or runs.) The kill
falls at a different moment of the burst in each round.
"""

import os
import signal
import threading
import uuid

import pytest

from dssr_core.testing import shell_template, wait_until

pytestmark = pytest.mark.slow

SUBMITS = 24
ROUNDS = 3


def exit_code_of(index: int) -> int:
    return index % 3  # 0 COMPLETED, 1 and 2 FAILED


def body(marker_dir, name: str, index: int) -> str:
    # Each run of the job leaves a file of its own: two runs of one job would leave two.
    return (f"touch {marker_dir}/{name}.$$; echo ran {name}; sleep 0.5; "
            f"exit {exit_code_of(index)}")


def burst(api, names, marker_dir, answered: dict, kill_after: int, server) -> None:
    """Submit every name at once from threads; SIGKILL the server after ``kill_after`` answers."""
    lock = threading.Lock()

    def submit(index, name):
        try:
            answer = api.submit(name, shell_template(body(marker_dir, name, index)))
        except OSError:
            return  # the server died before it answered
        if answer.status != 200:
            return
        with lock:
            answered[name] = answer.json[0]
            if len(answered) == kill_after:
                os.kill(server.process.pid, signal.SIGKILL)

    threads = [threading.Thread(target=submit, args=item) for item in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    server.process.wait(10)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_kill_9_during_a_submit_burst_loses_no_answered_job(dssr_server, tmp_path, round_):
    env = {"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state"),
           "JARVICE_DUMMY_MAX_RUNNING": "0"}
    marker_dir = tmp_path / "runs"
    marker_dir.mkdir()
    server = dssr_server(env)
    api = server.api()
    names = [f"burst-{round_}-{index}-{uuid.uuid4().hex[:6]}" for index in range(SUBMITS)]
    answered: dict[str, str] = {}
    burst(api, names, marker_dir, answered, kill_after=4 + round_ * 7, server=server)
    assert server.process.returncode == -signal.SIGKILL
    print(f"\nround {round_}: {len(answered)} of {SUBMITS} submits answered before the kill")

    server.start()  # the same state dir: the start must not refuse it
    jobids = dict(answered)
    for index, name in enumerate(names):  # upstream sends the unanswered ones again
        if name not in answered:
            answer = api.submit(name, shell_template(body(marker_dir, name, index)))
            assert answer.status == 200, answer.text
            jobids[name] = answer.json[0]
    assert len(set(jobids.values())) == SUBMITS

    def all_ended():
        listed = {jobid for path in ("/running", "/queued") for _, jobid in api.get(path).json}
        return not listed & set(jobids.values())

    wait_until(all_ended, 120, what="every job to end")
    for index, name in enumerate(names):
        job = {"name": name, "number": 1, "jobid": jobids[name]}
        rc, _, (output, banner) = api.post("/exitstatus", job).json
        runs = len(list(marker_dir.glob(f"{name}.*")))
        # A job that was running when the server died ran on, and was found again by its pid.
        assert runs == 1 if name in answered else runs in (1, 2), f"{name} ran {runs} times"
        assert rc == (0 if exit_code_of(index) == 0 else 1), (name, rc, banner, output)
        assert output == f"ran {name}\n"
