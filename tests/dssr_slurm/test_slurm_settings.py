"""Building the connector: settings checked at start, nothing opened until it is used."""

import base64
import subprocess

import pytest
import yaml

from dssr_core.errors import ClusterUnavailable, SettingsError
from dssr_core.settings import Settings
from dssr_slurm.commands.connector import SlurmCliConnector


@pytest.fixture(scope="module")
def key_b64(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def env(key_b64, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no users_id_mapping_configuration.yaml here
    return {"JARVICE_SLURM_CLUSTER_ADDR": "127.0.0.1", "JARVICE_SLURM_CLUSTER_PORT": "1",
            "JARVICE_SLURM_SSH_USER": "jarvice", "JARVICE_SLURM_SSH_PKEY": key_b64,
            "JARVICE_SLURM_SSH_KNOWN_HOSTS": str(tmp_path / "known_hosts")}


def build(env):
    return SlurmCliConnector.from_settings(Settings.from_env(env))


@pytest.mark.parametrize("name", ["JARVICE_SLURM_CLUSTER_ADDR", "JARVICE_SLURM_SSH_USER",
                                  "JARVICE_SLURM_SSH_PKEY"])
def test_required_settings(env, name):
    del env[name]
    with pytest.raises(SettingsError, match=f"{name} must be set"):
        build(env)


def test_every_missing_setting_is_named_in_one_try(env):
    for name in ("JARVICE_SLURM_CLUSTER_ADDR", "JARVICE_SLURM_SSH_USER", "JARVICE_SLURM_SSH_PKEY"):
        del env[name]
    with pytest.raises(SettingsError) as refused:
        build(env)
    assert refused.value.message == ("JARVICE_SLURM_CLUSTER_ADDR, JARVICE_SLURM_SSH_USER and "
                                     "JARVICE_SLURM_SSH_PKEY must be set to reach the cluster over SSH.")


@pytest.mark.parametrize("name, value, words", [
    ("JARVICE_SLURM_SSH_PKEY", "bm90IGEga2V5", "must be a private key"),
    ("JARVICE_SLURM_SSH_PKEY", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
     "not an ed25519, ECDSA or RSA private key"),
    ("JARVICE_JOB_SCRATCH_DIR", "relative/dir", "must be an absolute directory"),
    ("JARVICE_SLURM_STATUS_INTERVAL", "soon", "must be a number"),
    ("JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE", "maybe", "true or false"),
    ("JARVICE_SLURM_SERVICE_URL", "http://{host}:{port}/", "JARVICE_SLURM_SERVICE_URL .* does not format"),
    ("JARVICE_SLURM_SERVICE_URL", "http://{node}:{port/", "JARVICE_SLURM_SERVICE_URL .* does not format"),
    ("JARVICE_SLURM_SERVICE_URL", "http://{0}/", "JARVICE_SLURM_SERVICE_URL .* does not format"),
])
def test_bad_values_stop_the_start_with_a_sentence(env, name, value, words):
    env[name] = value
    with pytest.raises(SettingsError, match=words) as raised:
        build(env)
    assert "AAAA" not in raised.value.message


def test_a_mapped_user_without_a_key_stops_the_start(env, tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump({"users_id_mapping": [{"mail": "k@example.org", "mapped_user": "kirby"}]}))
    env["JARVICE_SLURM_ID_MAPPING_FILE"] = str(path)
    with pytest.raises(SettingsError, match="k@example.org has no ssh_private_key_b64"):
        build(env)


def test_nothing_is_opened_until_used_and_a_refused_connection_is_a_sentence(env):
    connector = build(env)
    with pytest.raises(ClusterUnavailable, match="jarvice@127.0.0.1:1: connection refused"):
        connector.check()
    with pytest.raises(ClusterUnavailable):
        connector.running()
    connector.close()
