"""``dssr serve`` and ``dssr check`` as processes, and the client commands against a real server."""

import os
import socket
import subprocess
import sys

import pytest

from dssr_core.cli import main
from dssr_core.testing import wait_until

pytestmark = pytest.mark.slow
KEY = "slurm-downstream:Pass1234"


@pytest.fixture
def env(tmp_path):
    return {"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state")}


def dssr_process(*args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "dssr_core", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def dssr(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_next_to_a_running_server_asks_it(dssr_server, env):
    server = dssr_server(env)
    check = dssr_process("check", env={**env, "WAITRESS_PORT": str(server.port)})
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("+----- dummy connector init report -----+\n")
    assert "first connection: OK" in check.stdout
    assert f"made by the server running at {server.url}" in check.stdout


def test_check_sends_the_server_key(dssr_server, env):
    server = dssr_server({**env, "JARVICE_SCHED_SERVER_KEY": KEY})
    check = dssr_process("check", env={**env, "WAITRESS_PORT": str(server.port),
                                       "JARVICE_SCHED_SERVER_KEY": KEY})
    assert check.returncode == 0, check.stderr
    assert "HTTP Basic" in check.stdout
    wrong = dssr_process("check", env={**env, "WAITRESS_PORT": str(server.port),
                                       "JARVICE_SCHED_SERVER_KEY": "slurm-downstream:wrong"})
    assert wrong.returncode == 1
    assert "JARVICE_SCHED_SERVER_KEY" in wrong.stderr and "Traceback" not in wrong.stderr


def test_check_of_other_backends_is_made_here(dssr_server, env, tmp_path):
    server = dssr_server(env)
    other = {"JARVICE_DUMMY_STATE_DIR": str(tmp_path / "other"), "WAITRESS_PORT": str(server.port),
             "JARVICE_BAREMETAL_EXECUTOR": "singularity"}
    check = dssr_process("check", env=other)
    assert check.returncode == 0, check.stderr
    assert "runs connector dummy with executor shell; checking dummy with singularity here" in check.stderr
    assert "executor: singularity" in check.stdout and "made by the server" not in check.stdout


def test_check_without_a_server_builds_the_connector_here(env, free_port):
    check = dssr_process("check", env={**env, "WAITRESS_PORT": str(free_port)})
    assert check.returncode == 0, check.stderr
    assert "first connection: OK" in check.stdout and "made by the server" not in check.stdout
    explicit = dssr_process("check", "--server", f"127.0.0.1:{free_port}", env=env)
    assert explicit.returncode == 1
    assert "no DSSR server answers there" in explicit.stderr


def test_serve_on_a_taken_port_says_so_before_init_done(env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = dssr_process("serve", env={**env, "WAITRESS_PORT": str(port)})
    assert serve.returncode == 1
    assert "Traceback" not in serve.stderr and "Init done" not in serve.stderr
    assert serve.stderr.strip().splitlines()[-1] == (
        f"dssr: Cannot listen on 127.0.0.1:{port}: Address already in use; another server has "
        "that port (a dssr serve already running?): stop it, or choose another port with "
        "--port or WAITRESS_PORT.")


def test_serve_answers_check_on_its_api(dssr_server, env):
    answer = dssr_server(env).api().get("/check")
    assert answer.status == 200
    assert answer.json["ok"] is True
    assert (answer.json["connector"], answer.json["executor"]) == ("dummy", "shell")


def test_two_submits_in_one_second_are_two_jobs(dssr_server, env, capsys):
    server = dssr_server(env)
    jobs = [dssr(capsys, "submit", "--command", "true", "--hold", "--server", server.url)[1].strip()
            for _ in range(2)]
    assert len({job.split("/")[2] for job in jobs}) == 2, jobs


def test_listings_have_a_header_and_the_apis_order(dssr_server, env, capsys):
    server = dssr_server(env)
    host_port = server.url.removeprefix("http://")
    code, job, _ = dssr(capsys, "submit", "--command", "true", "--hold", "--name", "held-one",
                        "--server", host_port)
    assert code == 0
    jobid = job.strip().split("/")[2]
    code, out, _ = dssr(capsys, "queued", "--server", host_port)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "JOBID"]
    assert [row.split() for row in rows] == [["held-one", jobid]]
    assert dssr(capsys, "running", "--server", host_port)[1].split() == ["NAME", "JOBID"]


def test_exitstatus_of_an_unknown_job_fails_with_a_sentence(dssr_server, env, capsys):
    server = dssr_server(env)
    code, out, err = dssr(capsys, "exitstatus", "never-submitted/1/12345", "--server", server.url)
    assert (code, out) == (1, "")
    assert "knows no job never-submitted/1/12345" in err
    code, _, err = dssr(capsys, "status", "never-submitted/1/12345", "--server", server.url)
    assert code == 1 and "neither waits nor runs" in err


def test_exitstatus_of_an_ended_job_prints_it_once(dssr_server, env, capsys):
    server = dssr_server(env)
    job = dssr(capsys, "submit", "--command", "echo ended-well", "--server", server.url)[1].strip()
    name, _, jobid = job.split("/")
    wait_until(lambda: [name, jobid] not in server.api().get("/running").json + server.api().get(
        "/queued").json, 30, what="the job to end")
    code, out, _ = dssr(capsys, "exitstatus", job, "--server", server.url)
    assert code == 0 and "ended-well" in out and "COMPLETED" in out
    assert dssr(capsys, "exitstatus", job, "--server", server.url)[0] == 1
