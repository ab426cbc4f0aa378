import logging

import pytest

from dssr_core.errors import SettingsError
from dssr_core.settings import Settings, is_secret


def test_defaults():
    settings = Settings.from_env({})
    assert (settings.connector, settings.executor) == ("dummy", "shell")
    assert (settings.bind, settings.port, settings.log_level) == ("127.0.0.1", 5000, logging.INFO)
    assert settings.server_key is None


@pytest.mark.parametrize("env,connector", [
    ({"JARVICE_BAREMETAL_CONNECTOR": "connectors.slurm.connector"}, "slurm-cli"),
    ({"JARVICE_BAREMETAL_CONNECTOR": "connectors.slurm.connector", "JARVICE_SLURM_INTERFACE": "http"},
     "slurmrestd"),
    ({"JARVICE_BAREMETAL_CONNECTOR": "connectors.dummy.connector"}, "dummy"),
    ({"JARVICE_BAREMETAL_CONNECTOR": "slurm-cli"}, "slurm-cli"),
])
def test_legacy_connector_names(env, connector):
    assert Settings.from_env(env).connector == connector


def test_legacy_executor_name():
    env = {"JARVICE_BAREMETAL_EXECUTOR": "executors.singularity.executor"}
    assert Settings.from_env(env).executor == "singularity"


@pytest.mark.parametrize("env,named", [
    ({"WAITRESS_PORT": "http"}, "WAITRESS_PORT"),
    ({"WAITRESS_PORT": "70000"}, "WAITRESS_PORT"),
    ({"JARVICE_SCHED_LOGLEVEL": "LOUD"}, "JARVICE_SCHED_LOGLEVEL"),
    ({"JARVICE_SCHED_SERVER_KEY": "nocolon"}, "JARVICE_SCHED_SERVER_KEY"),
    ({"JARVICE_BAREMETAL_CONNECTOR": "connectors.slurm.connector", "JARVICE_SLURM_INTERFACE": "ftp"},
     "JARVICE_SLURM_INTERFACE"),
])
def test_bad_values_name_the_setting(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_secret_values_are_not_echoed():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"X_TOKEN_TTL": "s3cr3t"}).get_int("X_TOKEN_TTL", 1)
    assert "s3cr3t" not in caught.value.message


def test_server_key_is_not_in_repr():
    settings = Settings.from_env({"JARVICE_SCHED_SERVER_KEY": "u:topsecret"})
    assert "topsecret" not in repr(settings)


def test_yaml_file_under_environment(tmp_path):
    config = tmp_path / "dssr.yaml"
    config.write_text("JARVICE_BAREMETAL_CONNECTOR: slurm-cli\nWAITRESS_PORT: 6000\nDSSR_THREADS: 4\n")
    settings = Settings.from_env({"DSSR_CONFIG": str(config), "WAITRESS_PORT": "7000"})
    assert (settings.connector, settings.port, settings.threads) == ("slurm-cli", 7000, 4)


def test_bad_yaml_file(tmp_path):
    config = tmp_path / "dssr.yaml"
    config.write_text("- a list\n")
    with pytest.raises(SettingsError, match="mapping"):
        Settings.from_env({"DSSR_CONFIG": str(config)})
    with pytest.raises(SettingsError, match="cannot be read"):
        Settings.from_env({"DSSR_CONFIG": str(tmp_path / "missing.yaml")})


def test_legacy_spellings_and_typed_getters():
    settings = Settings.from_env({"JARVICE_SLURM_OVERLAY_SIZE": "100", "FLAG": "yes", "L": "a, b,,c"})
    assert settings.get_int("JARVICE_SINGULARITY_OVERLAY_SIZE", 600,
                            legacy=("JARVICE_SLURM_OVERLAY_SIZE",)) == 100
    assert settings.get_bool("FLAG", False) is True
    assert settings.get_list("L") == ("a", "b", "c")


@pytest.mark.parametrize("name,secret", [
    ("JARVICE_SLURM_SSH_PKEY", True), ("JARVICE_DOCKER_PASSWORD", True),
    ("JARVICE_SCHED_SERVER_KEY", True), ("JARVICE_SLURMRESTD_JWT_KEY_FILE", False),
    ("WAITRESS_PORT", False),
])
def test_is_secret(name, secret):
    assert is_secret(name) is secret


def test_errors_name_the_spelling_that_is_set():
    settings = Settings.from_env({"JARVICE_SLURM_OVERLAY_SIZE": "-5"})
    with pytest.raises(SettingsError, match="JARVICE_SLURM_OVERLAY_SIZE must be at least 0, not -5"):
        settings.get_int("JARVICE_SINGULARITY_OVERLAY_SIZE", 600, minimum=0,
                         legacy=("JARVICE_SLURM_OVERLAY_SIZE",))


def test_waitress_gets_the_connection_bounds():
    from dssr_core.serving import waitress_options

    options = waitress_options(Settings.from_env({}))
    bounds = (options["connection_limit"], options["channel_timeout"], options["cleanup_interval"])
    assert bounds == (1000, 30, 5)
    assert options["asyncore_use_poll"] is True
    assert options["max_request_body_size"] > 8 * 1024 * 1024  # the app's 413 answers first
    env = {"DSSR_CONNECTION_LIMIT": "50", "DSSR_CHANNEL_TIMEOUT": "7", "DSSR_CLEANUP_INTERVAL": "2",
           "DSSR_BACKLOG": "64", "DSSR_MAX_HEADER_BYTES": "8192", "DSSR_MAX_BODY_BYTES": "4096"}
    options = waitress_options(Settings.from_env(env))
    assert (options["connection_limit"], options["channel_timeout"], options["cleanup_interval"],
            options["backlog"], options["max_request_header_size"]) == (50, 7, 2, 64, 8192)
    assert options["max_request_body_size"] == 2 * 4096 + 1


@pytest.mark.parametrize("name", ["DSSR_CONNECTION_LIMIT", "DSSR_CHANNEL_TIMEOUT", "DSSR_CLEANUP_INTERVAL",
                                  "DSSR_BACKLOG", "DSSR_MAX_HEADER_BYTES"])
@pytest.mark.parametrize("value", ["0", "²", "many"])
def test_bad_connection_bounds_name_the_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize("value", ["٣", "1_000", "+5", " 7x"])
def test_settings_numbers_are_ascii_digits(value):
    with pytest.raises(SettingsError, match="WAITRESS_PORT must be a whole number"):
        Settings.from_env({"WAITRESS_PORT": value})
    with pytest.raises(SettingsError, match="JARVICE_SCHED_LOGLEVEL"):
        Settings.from_env({"JARVICE_SCHED_LOGLEVEL": value})
