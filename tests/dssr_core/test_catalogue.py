"""Every installed distribution's settings: the hook ``dssr_declare_settings``, ``dssr settings``
(effective values, where they came from, secrets masked) and ``dssr settings --markdown``."""

import os
import re
import sys
import textwrap

import pytest

from dssr_core.catalogue import declared_settings, markdown_tables, settings_report
from dssr_core.cli import main
from dssr_core.errors import PluginError
from dssr_core.plugins import make_registry
from dssr_core.settings import Settings

PKEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"


def install_distribution(tmp_path, monkeypatch, name: str, module_text: str) -> None:
    """A real installed distribution ``name`` whose plugin module is ``module_text``."""
    dist_info = tmp_path / f"{name}-2.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 2.0\n")
    (dist_info / "entry_points.txt").write_text(f"[dssr]\n{name}-plugin = {name}_plugin\n")
    (tmp_path / f"{name}_plugin.py").write_text(textwrap.dedent(module_text))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, f"{name}_plugin", raising=False)


@pytest.fixture
def pbs_distribution(tmp_path, monkeypatch):
    install_distribution(tmp_path, monkeypatch, "dssr_pbs", """
        import dssr_core

        SERVER = dssr_core.Setting("PBS_SERVER", "the PBS server's host name", default="pbs")
        PASSWORD = dssr_core.Setting("PBS_PASSWORD", "the PBS service password", secret=True)

        @dssr_core.hookimpl
        def dssr_declare_settings():
            return [SERVER, PASSWORD]
    """)
    yield
    sys.modules.pop("dssr_pbs_plugin", None)


def test_a_plugins_declared_settings_are_listed_under_its_distribution(pbs_distribution):
    declared = {entry.setting.name: entry for entry in declared_settings(make_registry())}
    assert declared["PBS_SERVER"].distribution == "dssr_pbs"
    assert declared["PBS_SERVER"].setting.default == "pbs"
    assert declared["JARVICE_SLURMRESTD_URL"].distribution == "dssr_slurm"
    assert declared["JARVICE_SLURM_CLUSTER_ADDR"].distribution == "dssr_core"
    assert declared["WAITRESS_PORT"].distribution == "dssr_core"
    assert "| `PBS_PASSWORD` | text, secret | unset | the PBS service password | |" in \
        markdown_tables(tuple(declared.values()))["dssr_pbs"]


def test_one_name_declared_differently_by_two_distributions_fails_naming_both(tmp_path, monkeypatch):
    install_distribution(tmp_path, monkeypatch, "dssr_clash", """
        import dssr_core

        @dssr_core.hookimpl
        def dssr_declare_settings():
            return [dssr_core.Setting("JARVICE_SLURM_CLUSTER_ADDR", "another meaning")]
    """)
    try:
        with pytest.raises(PluginError, match="JARVICE_SLURM_CLUSTER_ADDR is declared twice, differently: "
                                              "by dssr_(core|clash) and by dssr_(core|clash)"):
            declared_settings(make_registry())
        declared_settings(make_registry(block=("dssr_clash-plugin",)))
    finally:
        sys.modules.pop("dssr_clash_plugin", None)


def test_the_shared_ssh_settings_are_declared_once_by_dssr_core():
    """Both Slurm connectors read them (and so may another family's), but dssr_core.remote declares them."""
    declared = declared_settings(make_registry())
    names = [entry.setting.name for entry in declared]
    assert names.count("JARVICE_SLURM_ID_MAPPING_FILE") == 1 and names.count("JARVICE_SLURM_SSH_PKEY") == 1
    shared = ("JARVICE_SLURM_ID_MAPPING_FILE", "JARVICE_SLURM_SSH_PKEY")
    assert {entry.distribution for entry in declared if entry.setting.name in shared} == {"dssr_core"}


def report(env, **options):
    lines, ok = settings_report(Settings.from_env(env, **options), make_registry())
    return "\n".join(lines), ok


def row(text: str, name: str) -> list[str]:
    """The columns (setting, from, value) of the line of ``name``."""
    return next(re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.split()[:1] == [name])


def test_the_effective_settings_say_where_each_came_from(tmp_path):
    config = tmp_path / "dssr.yaml"
    config.write_text("DSSR_THREADS: 4\n")
    text, ok = report({"JARVICE_SLURM_CLUSTER_ADDR": "login.example.org", "JARVICE_SLURM_OVERLAY_SIZE": "640",
                       "DSSR_CONFIG": str(config), "JARVICE_SINGULARITY_TMPDIR": ""},
                      overrides={"WAITRESS_PORT": "8080"})
    assert ok
    assert text.splitlines()[:2] == [
        "connector: slurm-cli, chosen because JARVICE_SLURM_CLUSTER_ADDR is set",
        "executor: singularity, the default with the slurm-cli connector, as in the original DSSR"]
    assert row(text, "JARVICE_SLURM_CLUSTER_ADDR") == ["JARVICE_SLURM_CLUSTER_ADDR", "environment",
                                                       "login.example.org"]
    assert row(text, "JARVICE_SINGULARITY_OVERLAY_SIZE")[1:] == ["environment, as JARVICE_SLURM_OVERLAY_SIZE",
                                                                 "640"]
    assert row(text, "DSSR_THREADS")[1:] == [f"config file {config}", "4"]
    assert row(text, "WAITRESS_PORT")[1:] == ["command line", "8080"]
    assert row(text, "JARVICE_SINGULARITY_TMPDIR")[1:] == ["default", "/tmp"]
    assert row(text, "JARVICE_SLURM_CLUSTER_PORT")[1:] == ["default", "22"]


def test_secrets_are_masked_and_unread_names_listed_without_values():
    text, ok = report({"JARVICE_SLURM_SSH_PKEY": PKEY, "JARVICE_SLURM_SA_TOKEN": "eyJhbGciOi.secret.token",
                       "JARVICE_SCHED_SERVER_KEY": "jarvice:hunter2", "JARVICE_CLUSTER_TYPE": "downstream",
                       "JARVICE_KEYCLOAK_CLIENT_SECRET": "kc-s3cret",
                       "JARVICE_IDMAPPER_PASSWORD": "idm-s3cret"})
    assert ok
    for secret in ("b3BlbnNzaC1rZXkt", "secret.token", "hunter2", "kc-s3cret", "idm-s3cret"):
        assert secret not in text
    assert row(text, "JARVICE_SLURM_SSH_PKEY")[1:] == ["environment", "(secret, set)"]
    assert row(text, "JARVICE_SLURMRESTD_TOKEN")[1:] == ["environment, as JARVICE_SLURM_SA_TOKEN",
                                                         "(secret, set)"]
    assert row(text, "JARVICE_KEYCLOAK_CLIENT_SECRET")[1:] == ["environment", "(secret, set)"]
    assert text.splitlines()[-1] == ("Set, but read by no installed distribution: JARVICE_CLUSTER_TYPE, "
                                     "JARVICE_IDMAPPER_PASSWORD")


def test_an_invalid_value_is_shown_with_its_sentence_and_the_command_exits_1(monkeypatch, capsys):
    for name in [name for name in os.environ if name.startswith(("JARVICE_", "DSSR_", "WAITRESS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("JARVICE_SLURM_SSH_KEEPALIVE", "often")
    monkeypatch.setenv("JARVICE_SLURM_SSH_PKEY", PKEY)
    assert main(["settings"]) == 1
    out = capsys.readouterr().out
    assert "JARVICE_SLURM_SSH_KEEPALIVE must be a whole number, not 'often'." in out
    assert "b3BlbnNzaC1rZXkt" not in out
    monkeypatch.delenv("JARVICE_SLURM_SSH_KEEPALIVE")
    assert main(["settings", "--connector", "dummy"]) == 0
    assert capsys.readouterr().out.startswith(
        "connector: dummy, named by JARVICE_BAREMETAL_CONNECTOR (command line)\n")


def test_the_markdown_is_the_tables_of_the_reference(capsys):
    assert main(["settings", "--markdown"]) == 0
    out = capsys.readouterr().out
    for distribution, table in markdown_tables(declared_settings(make_registry())).items():
        assert f"<!-- declared by {distribution} (dssr settings --markdown) -->\n{table}" in out
