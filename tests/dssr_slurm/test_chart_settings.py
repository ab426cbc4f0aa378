"""The jarvice-helm chart's settings: each honoured, and DSSR started with only the chart's
environment picks slurm-cli with the singularity executor and answers."""

import base64
import logging
import subprocess
import sys
import time

import pytest
from chart_environment import SERVER_KEY, chart_environment
from rest_fixtures import cluster_token

from dssr_core.app import create_app
from dssr_core.cli.server import build_backends
from dssr_core.errors import SettingsError
from dssr_core.remote.config import RemoteConfig
from dssr_core.report import init_report
from dssr_core.settings import Settings
from dssr_core.testing import ApiClient
from dssr_core.testing.plugin import find_free_port
from dssr_singularity.executor import SingularityConfig
from dssr_slurm.commands.connector import SlurmCliConnector
from dssr_slurm.rest.settings import RestSettings
from dssr_slurm.rest.tokens import StaticToken, token_source

REST = {"JARVICE_SLURM_SSH_USER": "jarvice"}
URL = "http://slurm-login:6820"


def rest_settings(**values) -> RestSettings:
    return RestSettings.from_settings(Settings.from_env({**REST, **values}))


def static_token(user: str = "jarvice") -> str:
    import jwt

    return jwt.encode({"sun": user, "exp": int(time.time()) + 3600}, "k" * 32, algorithm="HS256")


# JARVICE_SLURMRESTD_URL --------------------------------------------------------------------


@pytest.mark.parametrize(("url", "where"), [
    ("http://slurm-login:6820", ("http", "slurm-login", 6820)),
    ("https://slurm.example.org:8443/", ("https", "slurm.example.org", 8443)),
    ("HTTP://10.0.0.5", ("http", "10.0.0.5", 80)),
    ("https://slurm.example.org", ("https", "slurm.example.org", 443)),
    ("http://[fd00::5]:6820", ("http", "fd00::5", 6820)),
])
def test_the_url_gives_scheme_host_and_port(url, where):
    rest = rest_settings(JARVICE_SLURMRESTD_URL=url, JARVICE_SLURM_SA_TOKEN=static_token())
    assert (rest.scheme, rest.address, rest.port) == where


@pytest.mark.parametrize(("url", "words"), [
    ("http://slurm-login:6820/slurm/v0.0.40", "has a path, and DSSR adds the API's paths itself"),
    ("http://slurm-login:6820?x=1", "has a path"),
    ("slurm-login:6820", "does not start with http:// or https://"),
    ("ftp://slurm-login", "does not start with http:// or https://"),
    ("http://:6820", "names no host"),
    ("http://slurm-login:99999", "is not a number from 1 to 65535"),
])
def test_a_url_that_is_not_scheme_host_and_port_is_refused_with_a_sentence(url, words):
    with pytest.raises(SettingsError) as refused:
        rest_settings(JARVICE_SLURMRESTD_URL=url, JARVICE_SLURM_SA_TOKEN=static_token())
    assert refused.value.message.startswith("JARVICE_SLURMRESTD_URL must be scheme, host and port only, "
                                            "such as http://slurm-login:6820")
    assert words in refused.value.message


def test_a_url_with_a_password_is_refused_without_showing_it():
    with pytest.raises(SettingsError) as refused:
        rest_settings(JARVICE_SLURMRESTD_URL="http://admin:hunter2@slurm-login:6820",
                      JARVICE_SLURM_SA_TOKEN=static_token())
    assert "hunter2" not in refused.value.message and "user name or password" in refused.value.message


def test_the_url_wins_over_the_split_settings_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        rest = rest_settings(JARVICE_SLURMRESTD_URL="https://rest.example.org:7000",
                             JARVICE_SLURMRESTD_ADDR="other.example.org", JARVICE_SLURMRESTD_PORT="6820",
                             JARVICE_SLURM_SA_TOKEN=static_token())
    assert rest.url == "https://rest.example.org:7000"
    assert "JARVICE_SLURMRESTD_URL is set, so JARVICE_SLURMRESTD_ADDR and JARVICE_SLURMRESTD_PORT are " \
           "ignored" in caplog.text


def test_without_url_or_address_the_sentence_names_both():
    with pytest.raises(SettingsError, match="Set JARVICE_SLURMRESTD_URL .* or JARVICE_SLURMRESTD_ADDR"):
        rest_settings(JARVICE_SLURM_SA_TOKEN=static_token())


# JARVICE_SLURM_SA_TOKEN ---------------------------------------------------------------------


def test_the_chart_sa_token_alone_means_static_tokens_named_by_that_spelling():
    rest = rest_settings(JARVICE_SLURMRESTD_URL=URL, JARVICE_SLURM_SA_TOKEN=static_token())
    assert (rest.token_mode, rest.token_setting) == ("static", "JARVICE_SLURM_SA_TOKEN")
    source = token_source(rest)
    assert isinstance(source, StaticToken) and source.service_user == "jarvice"
    assert "the service token of JARVICE_SLURM_SA_TOKEN for jarvice" in source.describe()


def test_a_key_file_means_minted_tokens_even_with_a_service_token(tmp_path):
    key = tmp_path / "jwt.key"
    key.write_bytes(b"k" * 32)
    rest = rest_settings(JARVICE_SLURMRESTD_URL=URL, JARVICE_SLURM_SA_TOKEN=static_token(),
                         JARVICE_SLURMRESTD_JWT_KEY_FILE=str(key))
    assert rest.token_mode == "mint"


def test_the_dssr_spelling_of_the_token_wins_over_the_charts():
    mine, charts = static_token("slurm"), static_token("jarvice")
    rest = rest_settings(JARVICE_SLURMRESTD_ADDR="rest", JARVICE_SLURMRESTD_TOKEN=mine,
                         JARVICE_SLURM_SA_TOKEN=charts)
    assert (rest.static_token, rest.token_setting) == (mine, "JARVICE_SLURMRESTD_TOKEN")


def test_neither_key_file_nor_token_is_one_sentence_naming_both():
    with pytest.raises(SettingsError) as refused:
        rest_settings(JARVICE_SLURMRESTD_URL=URL)
    assert "JARVICE_SLURMRESTD_JWT_KEY_FILE" in refused.value.message
    assert "JARVICE_SLURM_SA_TOKEN" in refused.value.message


# JARVICE_SLURM_SCRATCH_DIR, JARVICE_SLURM_SSH_USER_GROUP, JARVICE_CHOWN_WRAPPER ------------------


def test_the_charts_scratch_spelling_is_the_scratch_directory_of_connector_and_executor():
    settings = Settings.from_env({"JARVICE_SLURM_SCRATCH_DIR": "/scratch/jarvice/"})
    assert RemoteConfig.from_settings(settings).scratch_dir == "/scratch/jarvice"
    assert SingularityConfig.from_settings(settings).scratch_dir == "/scratch/jarvice/"
    both = Settings.from_env({"JARVICE_SLURM_SCRATCH_DIR": "/chart", "JARVICE_JOB_SCRATCH_DIR": "/dssr"})
    assert RemoteConfig.from_settings(both).scratch_dir == "/dssr"
    with pytest.raises(SettingsError, match="JARVICE_SLURM_SCRATCH_DIR must be an absolute directory path"):
        RemoteConfig.from_settings(Settings.from_env({"JARVICE_SLURM_SCRATCH_DIR": "scratch"}))


@pytest.fixture(scope="module")
def pem_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text()


def test_the_user_group_and_chown_wrapper_are_accepted_and_reported(pem_key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no users ID mapping here
    env = {"JARVICE_SLURM_CLUSTER_ADDR": "127.0.0.1", "JARVICE_SLURM_CLUSTER_PORT": "1",
           "JARVICE_SLURM_SSH_USER": "nimbix", "JARVICE_SLURM_SSH_PKEY": pem_key,
           "JARVICE_SLURM_SSH_KNOWN_HOSTS": str(tmp_path / "known_hosts")}
    report = dict(SlurmCliConnector.from_settings(Settings.from_env(
        {**env, "JARVICE_SLURM_SSH_USER_GROUP": "nimbix", "JARVICE_CHOWN_WRAPPER": "/usr/local/bin/jxe-chown"}
    )).report())
    assert report["service account group"] == ("nimbix (JARVICE_SLURM_SSH_USER_GROUP; not needed: jobs run "
                                               "as the mapped users)")
    assert report["chown wrapper"] == ("/usr/local/bin/jxe-chown (JARVICE_CHOWN_WRAPPER; not needed: DSSR "
                                       "runs no chown)")
    unset = dict(SlurmCliConnector.from_settings(Settings.from_env(env)).report())
    assert unset["chown wrapper"].startswith("not set (JARVICE_CHOWN_WRAPPER")


# The chart's whole environment ---------------------------------------------------------------


def test_the_charts_whole_environment_starts_and_its_empty_values_mean_the_defaults(pem_key, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)  # no users ID mapping here
    env = chart_environment({
        "JARVICE_SLURM_CLUSTER_ADDR": "login.example.org", "JARVICE_SLURM_CLUSTER_PORT": "22",
        "JARVICE_SLURM_SSH_USER": "nimbix", "JARVICE_JOB_SCRATCH_DIR": "/home/nimbix/scratch",
        "JARVICE_SLURM_SSH_PKEY": base64.b64encode(pem_key.encode()).decode()})
    assert [name for name, value in env.items() if value == ""], "the chart sets some settings empty"
    settings = Settings.from_env(env)
    assert (settings.connector, settings.executor) == ("slurm-cli", "singularity")
    assert settings.slurm_log_level == logging.WARNING and settings.log_level == logging.INFO
    connector_backend, executor_backend, connector, executor = build_backends(settings)
    try:
        config = executor.config
        assert (config.tmpdir, config.local_registry, config.http_proxy, config.overlay_mb) == (
            "/tmp", None, "", 640)
        assert connector.config.scratch_dir == "/home/nimbix/scratch"
    finally:
        connector.close()


@pytest.mark.slow
def test_only_the_charts_environment_runs_slurm_cli_with_singularity_and_it_answers(cluster_env):
    env = chart_environment(cluster_env, **known_hosts(cluster_env))
    settings = Settings.from_env(env)
    connector_backend, executor_backend, connector, executor = build_backends(settings)
    try:
        lines, ok = init_report(settings, connector_backend, executor_backend, connector, executor)
        assert ok, "\n".join(lines)
        report = "\n".join(lines)
        assert "connector: slurm-cli (dssr_slurm " in report
        assert "chosen because JARVICE_SLURM_CLIENT is ssh_client" in report
        assert "executor: singularity (dssr_singularity " in report
        assert "the default with the slurm-cli connector, as in the original DSSR" in report
        assert f"scratch dir: {cluster_env['JARVICE_JOB_SCRATCH_DIR']}" in report
        assert "overlay: 640 MB" in report and "singularity tmp dir: /tmp" in report
        assert "service account group: jarvice (JARVICE_SLURM_SSH_USER_GROUP" in report
        assert "log level: INFO, WARNING for the Slurm connectors" in report
        assert "settings read by no installed distribution: JARVICE_CLUSTER_TYPE, JARVICE_EXPERIMENTAL, " \
               "JARVICE_JOBS_INGRESS" in report
        assert "at https://slurm.example.com/job<number> (path-based)" in report
        assert "interactive jobs: proxied by the front listener on port " in report
        app = create_app(settings, connector, executor, executor_name=executor_backend.name)
        api = ApiClient.for_app(app, auth=SERVER_KEY)
        assert api.get("/running").status == 200 and api.get("/queued").status == 200
        assert ApiClient.for_app(app).get("/queued").status == 401
    finally:
        connector.close()


@pytest.mark.slow
def test_dssr_serve_with_only_the_charts_environment_answers(cluster_env, tmp_path):
    # As above, plus the port to listen on: the chart's container port is the image's business.
    env = chart_environment(cluster_env, **known_hosts(cluster_env), WAITRESS_PORT=str(find_free_port()))
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "dssr_core", "serve"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        api = ApiClient.for_url(f"http://127.0.0.1:{env['WAITRESS_PORT']}", auth=SERVER_KEY, timeout=10)
        assert _first_answer(api, "/running", server, log_path) == 200
    finally:
        server.terminate()
        server.wait(15)
    log = log_path.read_text()  # complete once the server has exited (the log is buffered)
    assert "connector: slurm-cli (dssr_slurm" in log and "executor: singularity (dssr_singularity" in log
    assert "first connection: OK" in log
    assert base64.b64decode(cluster_env["JARVICE_SLURM_SSH_PKEY"]).decode()[40:80] not in log


@pytest.mark.slow
def test_the_charts_slurmrestd_client_with_its_url_and_sa_token_answers(cluster_env):
    env = chart_environment(cluster_env, JARVICE_SLURM_CLIENT="slurmrestd_client",
                            JARVICE_SLURMRESTD_URL=f"http://127.0.0.1:{cluster_env['JARVICE_SLURMRESTD_PORT']}",
                            JARVICE_SLURM_SA_TOKEN=cluster_token(cluster_env, "jarvice", lifespan=600),
                            **known_hosts(cluster_env))
    settings = Settings.from_env(env)
    assert (settings.connector, settings.executor) == ("slurmrestd", "singularity")
    connector_backend, executor_backend, connector, executor = build_backends(settings)
    try:
        assert dict(connector.report())["token mode"].startswith(
            "static (the service token of JARVICE_SLURM_SA_TOKEN for jarvice")
        assert connector.check()
        app = create_app(settings, connector, executor, executor_name=executor_backend.name)
        api = ApiClient.for_app(app, auth=SERVER_KEY)
        assert api.get("/running").status == 200 and api.get("/queued").status == 200
    finally:
        connector.close()


def known_hosts(cluster_env) -> dict[str, str]:
    """The chart passes no known_hosts file or host key: until JARVICE_SLURM_SSH_HOST_KEY lands, the
    test cluster's known_hosts file is the one setting these tests add to the chart's environment."""
    return {"JARVICE_SLURM_SSH_KNOWN_HOSTS": cluster_env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]}


def _first_answer(api, path: str, server, log_path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dssr serve exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            return api.get(path).status
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"dssr serve did not answer {path} within {timeout} s:\n{log_path.read_text()}")
