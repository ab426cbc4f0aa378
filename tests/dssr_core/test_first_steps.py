"""What a new user meets first, on real ``dssr serve`` processes (the dummy connector): the
client commands' settings, text in UTF-8 on both listeners, a name reused for another job,
ended jobs, ``--port 0``, SIGTERM, and an https:// URL against the plain-HTTP port."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys

import pytest

from dssr_core.cli import main
from dssr_core.cli.server import listen_on, load_settings
from dssr_core.testing import shell_template, wait_until
from dssr_core.testing.plugin import DssrServer

pytestmark = pytest.mark.slow
USER, PASSWORD = "upstream", "s3cret"
KEY = f"{USER}:{PASSWORD}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two servers with a key: the API alone (waitress), and behind the front listener."""
    root = tmp_path_factory.mktemp("first-steps")
    started = {}
    try:
        for label, extra in (("waitress", {}), ("front", {"DSSR_FRONT_LISTENER": "true"})):
            env = {"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_SCHED_SERVER_KEY": KEY,
                   "JARVICE_DUMMY_STATE_DIR": str(root / label), **extra}
            started[label] = DssrServer(env, root / f"{label}.log", auth=(USER, PASSWORD)).start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def client_env(monkeypatch, tmp_path):
    """No setting of the test run's environment reaches the client commands."""
    for name in [name for name in os.environ
                 if name.startswith(("JARVICE_", "DSSR_", "WAITRESS_"))]:
        monkeypatch.delenv(name)
    return monkeypatch


def dssr(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_client_commands_read_the_key_and_port_from_dssr_config(servers, client_env, tmp_path, capsys):
    server = servers["waitress"]
    config = tmp_path / "dssr.yaml"
    config.write_text(f"JARVICE_SCHED_SERVER_KEY: {KEY}\nWAITRESS_PORT: {server.port}\n")
    client_env.setenv("DSSR_CONFIG", str(config))
    assert dssr(capsys, "running")[0] == 0
    client_env.delenv("DSSR_CONFIG")
    assert dssr(capsys, "queued", "--config", str(config))[0] == 0
    code, _, err = dssr(capsys, "queued", "--server", server.url)
    assert code == 1 and "refused the credentials" in err


def test_a_key_without_a_colon_is_one_sentence_and_exit_2(servers, client_env, capsys):
    client_env.setenv("JARVICE_SCHED_SERVER_KEY", "no-colon")
    code, out, err = dssr(capsys, "running", "--server", servers["waitress"].url)
    assert (code, out) == (2, "")
    assert err == "dssr: JARVICE_SCHED_SERVER_KEY must be of the form user:password.\n"


@pytest.mark.parametrize("listener", ["waitress", "front"])
def test_text_answers_say_utf_8(servers, client_env, capsys, listener):
    server = servers[listener]
    api = server.api()
    answer = api.submit(f"utf8-{listener}", shell_template("echo café; sleep 60"))
    assert answer.status == 200, answer.text
    job = {"name": f"utf8-{listener}", "number": 1, "jobid": answer.json[0]}
    def output():
        answer = api.request(job, "tail")
        return answer if answer.status == 200 and answer.text == "café\n" else None

    tail = wait_until(output, 30, what="the job's output")
    assert tail.content_type == "text/plain; charset=utf-8"
    client_env.setenv("JARVICE_SCHED_SERVER_KEY", KEY)
    assert dssr(capsys, "tail", "--server", server.url, f"utf8-{listener}/1/{job['jobid']}")[1] == "café\n"
    api.post("/terminate", job)


def test_a_name_reused_for_another_script_is_a_409_and_a_retry_its_job(servers):
    api = servers["waitress"].api()
    first = api.submit("twin", shell_template("sleep 60"), hold=True)
    retry = api.submit("twin", shell_template("sleep 60"), hold=True)
    other = api.submit("twin", shell_template("sleep 61"), hold=True)
    jobid = first.json[0]
    assert retry.status == 200 and retry.json[0] == jobid
    assert other.status == 409
    assert other.json["description"].startswith(f"A job named twin is live already (job id {jobid})")
    assert api.post("/terminate", {"name": "twin", "number": 1, "jobid": jobid}).json is True


def test_ended_jobs_are_listed_until_collected(servers, client_env, capsys):
    server = servers["waitress"]
    api = server.api()
    jobid = api.submit("ends", shell_template("true")).json[0]
    wait_until(lambda: ["ends", jobid] in api.get("/ended").json, 30, what="the job in /ended")
    client_env.setenv("JARVICE_SCHED_SERVER_KEY", KEY)
    code, out, _ = dssr(capsys, "ended", "--server", server.url)
    assert code == 0 and re.search(rf"^ends +{jobid}$", out, re.M)
    api.post("/exitstatus", {"name": "ends", "number": 1, "jobid": jobid})
    assert ["ends", jobid] not in api.get("/ended").json


@pytest.mark.parametrize("listener", ["waitress", "front"])
def test_an_https_url_on_the_plain_port_is_closed_at_once_with_a_hint(servers, listener):
    server = servers[listener]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    # DSSR_CHANNEL_TIMEOUT is 30 s: a listener that waited for a request line would time this out.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            context.wrap_socket(sock, server_hostname="127.0.0.1")
    wait_until(lambda: "began a TLS handshake (an https:// URL?) on this plain-HTTP port" in server.log(),
               10, what="the hint in the log")
    assert server.api().get("/live").status == 200


def test_serve_on_port_0_logs_the_port_it_got_and_sigterm_a_line(tmp_path):
    env = {**os.environ, "JARVICE_BAREMETAL_CONNECTOR": "dummy",
           "JARVICE_DUMMY_STATE_DIR": str(tmp_path / "state")}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "dssr_core", "serve", "--port", "0"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        def served():
            text = log_path.read_text()
            return text if "Init done" in text else None

        text = wait_until(served, 30, what="the init report")
        port = int(re.search(r"listen: 127\.0\.0\.1:(\d+) with", text).group(1))
        assert port != 0
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /live HTTP/1.0\r\n\r\n")
            assert re.match(rb"HTTP/1\.[01] 200 ", sock.recv(100))
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "SIGTERM: stopping; running jobs keep running" in log_path.read_text()


def test_with_only_a_third_party_connector_the_default_is_that_one(client_env):
    # three disabled: slurm-cli stands for the one connector a third party installed.
    client_env.setenv("DSSR_DISABLE_PLUGINS", "dummy,slurmrestd,gridengine")
    settings = load_settings(type("Args", (), {})())
    assert settings.connector == "slurm-cli"
    assert settings.connector_reason == "the only connector installed (the default dummy is not)"
    client_env.setenv("DSSR_DISABLE_PLUGINS", "dummy")  # two left: which one is not guessed
    assert load_settings(type("Args", (), {})()).connector == "dummy"


def test_port_0_on_a_name_of_two_addresses_is_one_port(monkeypatch):
    two = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, 0))
           for address in ("127.0.0.1", "127.0.0.2")]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args: two)
    sockets = listen_on("both.example", 0)
    try:
        assert [sock.getsockname()[0] for sock in sockets] == ["127.0.0.1", "127.0.0.2"]
        assert len({sock.getsockname()[1] for sock in sockets}) == 1
    finally:
        for sock in sockets:
            sock.close()
