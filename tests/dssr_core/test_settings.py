import logging
from pathlib import Path

import pytest

from dssr_core.errors import SettingsError
from dssr_core.settings import Setting, Settings, is_secret


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


@pytest.mark.parametrize("setting", [
    Setting("X_TOKEN_TTL", "a number whose name says secret", kind="int", default=1),
    Setting("X_PORT", "a setting declared secret", kind="int", default=1, secret=True),
])
def test_secret_values_are_not_echoed(setting):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({setting.name: "s3cr3t"}).read(setting)
    assert "s3cr3t" not in caught.value.message and "(hidden)" in caught.value.message


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


OVERLAY = Setting("JARVICE_SINGULARITY_OVERLAY_SIZE", "MB", kind="int", default=600, minimum=0,
                  legacy=("JARVICE_SLURM_OVERLAY_SIZE",))


def test_legacy_spellings_and_typed_values():
    settings = Settings.from_env({"JARVICE_SLURM_OVERLAY_SIZE": "100", "FLAG": "yes", "L": "a, b,,c"})
    assert settings.read(OVERLAY) == 100
    assert settings.read(Setting("FLAG", "a flag", kind="bool", default=False)) is True
    assert settings.read(Setting("L", "a list", kind="list", default=())) == ("a", "b", "c")


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
        settings.read(OVERLAY)


# Each kind of setting --------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "text", "value"), [
    (Setting("S", "text", default="x"), "  hello ", "hello"),
    (Setting("N", "whole", kind="int", minimum=1, maximum=9), "9", 9),
    (Setting("F", "number", kind="float", minimum=0.5), "0.5", 0.5),
    (Setting("B", "flag", kind="bool"), "Off", False),
    (Setting("C", "choice", kind="choice", choices=("mint", "static")), "STATIC", "static"),
    (Setting("P", "file", kind="path"), "~/known_hosts", str(Path.home() / "known_hosts")),
    (Setting("D", "directory", kind="directory"), "/scratch/jobs//", "/scratch/jobs"),
    (Setting("D", "directory", kind="directory"), "/", "/"),
    (Setting("V", "level", kind="log level"), "warning", logging.WARNING),
    (Setting("V", "level", kind="log level"), "30", 30),
])
def test_each_kind_reads_its_text(setting, text, value):
    assert Settings.from_env({setting.name: text}).read(setting) == value


@pytest.mark.parametrize(("setting", "text", "words"), [
    (Setting("N", "whole", kind="int"), "1.5", "N must be a whole number, not '1.5'."),
    (Setting("N", "whole", kind="int", maximum=9), "10", "N must be at most 9, not 10."),
    (Setting("F", "number", kind="float", minimum=0.1), "0", "F must be at least 0.1, not 0."),
    (Setting("B", "flag", kind="bool"), "maybe", "B must be true or false, not 'maybe'."),
    (Setting("C", "choice", kind="choice", choices=("a", "b")), "c", "C must be one of a, b, not 'c'."),
    (Setting("D", "directory", kind="directory"), "scratch", "D must be an absolute directory path"),
    (Setting("V", "level", kind="log level"), "LOUD", "V must be a log level such as 10, 20 or INFO"),
])
def test_each_kind_refuses_bad_text_with_a_sentence(setting, text, words):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({setting.name: text}).read(setting)
    assert words in refused.value.message


def test_an_empty_value_is_the_default_and_lets_a_lower_layer_show(tmp_path):
    config = tmp_path / "dssr.yaml"
    config.write_text("DSSR_THREADS: 4\n")
    settings = Settings.from_env({"WAITRESS_PORT": "", "DSSR_THREADS": " ", "DSSR_CONFIG": str(config),
                                  "JARVICE_SINGULARITY_OVERLAY_SIZE": ""})
    assert (settings.port, settings.threads) == (5000, 4)
    assert settings.read(OVERLAY) == 600 and settings.found(OVERLAY) is None


def test_where_each_value_came_from(tmp_path):
    config = tmp_path / "dssr.yaml"
    config.write_text("WAITRESS_PORT: 6000\nJARVICE_SINGULARITY_VERBOSE: true\n")
    settings = Settings.from_env({"DSSR_THREADS": "4", "JARVICE_SLURM_OVERLAY_SIZE": "700"},
                                 config_file=str(config), overrides={"WAITRESS_BIND_ADDRESS": "0.0.0.0"})
    assert settings.found(Setting("WAITRESS_PORT", "port")).source == f"config file {config}"
    assert settings.found(Setting("DSSR_THREADS", "threads")).source == "environment"
    assert settings.found(Setting("WAITRESS_BIND_ADDRESS", "bind")).source == "command line"
    assert settings.found(OVERLAY).spelling == "JARVICE_SLURM_OVERLAY_SIZE"
    assert settings.read(Setting("JARVICE_SINGULARITY_VERBOSE", "yaml's true", kind="bool")) is True


@pytest.mark.parametrize("help_text", ["", "two\nlines", "a | b"])
def test_help_is_one_line_that_fits_a_table_cell(help_text):
    with pytest.raises(ValueError, match="one line"):
        Setting("X", help_text)


# Which connector and executor ----------------------------------------------------------------


@pytest.mark.parametrize(("env", "connector", "reason"), [
    ({}, "dummy", "the default: no setting points at a cluster"),
    ({"JARVICE_SLURM_CLUSTER_ADDR": "login"}, "slurm-cli",
     "chosen because JARVICE_SLURM_CLUSTER_ADDR is set"),
    ({"JARVICE_SLURMRESTD_URL": "http://login:6820"}, "slurmrestd",
     "chosen because JARVICE_SLURMRESTD_URL is set"),
    ({"JARVICE_SLURMRESTD_ADDR": "login"}, "slurmrestd", "chosen because JARVICE_SLURMRESTD_ADDR is set"),
    ({"JARVICE_SLURM_CLUSTER_ADDR": "login", "JARVICE_SLURMRESTD_URL": "http://login:6820"}, "slurm-cli",
     "chosen because JARVICE_SLURM_CLUSTER_ADDR is set"),
    ({"JARVICE_SLURM_CLUSTER_ADDR": "login", "JARVICE_SLURM_CLIENT": "slurmrestd_client"}, "slurmrestd",
     "chosen because JARVICE_SLURM_CLIENT is slurmrestd_client"),
    ({"JARVICE_SLURM_CLIENT": "ssh_client"}, "slurm-cli",
     "chosen because JARVICE_SLURM_CLIENT is ssh_client"),
    ({"JARVICE_SLURM_CLUSTER_ADDR": "login", "JARVICE_BAREMETAL_CONNECTOR": "dummy"}, "dummy",
     "named by JARVICE_BAREMETAL_CONNECTOR (environment)"),
    ({"JARVICE_SLURM_CLIENT": "ssh_client", "JARVICE_BAREMETAL_CONNECTOR": "slurmrestd"}, "slurmrestd",
     "named by JARVICE_BAREMETAL_CONNECTOR (environment); JARVICE_SLURM_CLIENT=ssh_client is overruled"),
    ({"JARVICE_SLURM_CLUSTER_ADDR": "login", "JARVICE_BAREMETAL_CONNECTOR": "connectors.dummy.connector"},
     "dummy", "named by JARVICE_BAREMETAL_CONNECTOR (environment)"),
])
def test_the_connector_is_named_or_chosen_from_the_settings(env, connector, reason):
    settings = Settings.from_env(env)
    assert (settings.connector, settings.connector_reason) == (connector, reason)


def test_a_bad_slurm_client_is_named():
    words = "JARVICE_SLURM_CLIENT must be one of ssh_client, slurmrestd_client"
    with pytest.raises(SettingsError, match=words):
        Settings.from_env({"JARVICE_SLURM_CLIENT": "rest"})


@pytest.mark.parametrize(("env", "executor", "reason"), [
    ({}, "shell", "the default with the dummy connector"),
    ({"JARVICE_SLURM_CLUSTER_ADDR": "login"}, "singularity",
     "the default with the slurm-cli connector, as in the original DSSR"),
    ({"JARVICE_BAREMETAL_CONNECTOR": "slurmrestd"}, "singularity",
     "the default with the slurmrestd connector, as in the original DSSR"),
    ({"JARVICE_SLURM_CLUSTER_ADDR": "login", "JARVICE_BAREMETAL_EXECUTOR": "shell"}, "shell",
     "named by JARVICE_BAREMETAL_EXECUTOR (environment)"),
    ({"JARVICE_BAREMETAL_EXECUTOR": "executors.singularity.executor"}, "singularity",
     "named by JARVICE_BAREMETAL_EXECUTOR (environment)"),
])
def test_the_executor_is_named_or_follows_the_connector(env, executor, reason):
    settings = Settings.from_env(env)
    assert (settings.executor, settings.executor_reason) == (executor, reason)


def test_the_command_line_names_the_connector():
    settings = Settings.from_env({"JARVICE_SLURM_CLUSTER_ADDR": "login"},
                                 overrides={"JARVICE_BAREMETAL_CONNECTOR": "dummy"})
    assert (settings.connector, settings.executor) == ("dummy", "shell")
    assert settings.connector_reason == "named by JARVICE_BAREMETAL_CONNECTOR (command line)"


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


@pytest.mark.parametrize("value", ["٣", "1_000", "+5", "7x", "１"])
def test_setting_numbers_are_ascii_digits(value):
    with pytest.raises(SettingsError, match="WAITRESS_PORT must be a whole number"):
        Settings.from_env({"WAITRESS_PORT": value})
    with pytest.raises(SettingsError, match="JARVICE_SCHED_LOGLEVEL"):
        Settings.from_env({"JARVICE_SCHED_LOGLEVEL": value})


@pytest.mark.parametrize("value", ["٣", "1_0", "nan", "inf", "１.5"])
def test_setting_decimals_are_ascii(value):
    with pytest.raises(SettingsError, match="JARVICE_DUMMY_KILL_GRACE must be a number"):
        from dssr_dummy.config import DummyConfig

        DummyConfig.from_settings(Settings.from_env({"JARVICE_DUMMY_KILL_GRACE": value}))
