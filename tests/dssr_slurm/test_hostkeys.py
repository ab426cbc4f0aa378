"""JARVICE_SLURM_SSH_HOST_KEY read at start: the forms it takes and the lines it refuses.

The keys are made by ssh-keygen and the fingerprints compared with what ssh-keygen prints, so
the parser is checked against OpenSSH, not against itself. (Connecting with a pinned key to
the real sshd is in test_ssh.py.)
"""

import subprocess

import pytest

from dssr_core.errors import SettingsError
from dssr_core.remote.hostkeys import fingerprint, names_host, pinned_host_keys
from dssr_core.remote.ssh import SshSettings
from dssr_core.settings import Settings


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two public keys as ssh-keygen writes them (``keytype base64 comment``) and their fingerprints."""
    folder = tmp_path_factory.mktemp("hostkeys")
    made = {}
    for key_type in ("ed25519", "rsa"):
        path = folder / key_type
        subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "root@login", "-f", str(path)],
                       check=True)
        printed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], check=True, capture_output=True,
                                 text=True).stdout.split()[1]
        made[key_type] = ((folder / f"{key_type}.pub").read_text().strip(), printed)
    return made


def hashed(line: str, tmp_path) -> str:
    path = tmp_path / "known_hosts"
    path.write_text(line + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
    return path.read_text().strip()


def test_the_public_key_form_and_its_fingerprint_as_ssh_keygen_prints_it(keys):
    pub, printed = keys["ed25519"]
    (key,) = pinned_host_keys(pub, "login.example.org", 22)
    assert fingerprint(key) == f"ssh-ed25519 {printed}"


@pytest.mark.parametrize("host_field", ["login.example.org", "login.example.org,10.0.0.5", "*.example.org",
                                        "LOGIN.example.org"])
def test_known_hosts_lines_on_port_22(keys, host_field):
    pub, printed = keys["ed25519"]
    (key,) = pinned_host_keys(f"{host_field} {pub}", "login.example.org", 22)
    assert key.fingerprint == printed


def test_a_known_hosts_line_with_a_port_and_a_hashed_one(keys, tmp_path):
    pub, printed = keys["ed25519"]
    line = f"[login.example.org]:2222 {pub}"
    for text in (line, hashed(line, tmp_path)):
        (key,) = pinned_host_keys(text, "login.example.org", 2222)
        assert key.fingerprint == printed
    assert hashed(line, tmp_path).startswith("|1|")


def test_several_lines_several_types_comments_and_blank_lines(keys):
    text = f"# the login node\n\n{keys['ed25519'][0]}\nlogin {keys['rsa'][0]}\n"
    assert [key.fingerprint for key in pinned_host_keys(text, "login", 22)] == [keys["ed25519"][1],
                                                                                  keys["rsa"][1]]


@pytest.mark.parametrize("line, host, port, words", [
    ("other.example.org {ed25519}", "login.example.org", 22, "line 1 is a known_hosts line for another host: "
                                                             "it must name login.example.org"),
    ("login.example.org {ed25519}", "login.example.org", 2222, r"must name \[login.example.org\]:2222"),
    ("!login.example.org,*.example.org {ed25519}", "login.example.org", 22, "for another host"),
    ("@cert-authority *.example.org {ed25519}", "login.example.org", 22, "marker @cert-authority"),
    ("ssh-ed25519 bm90IGEga2V5", "login", 22, "not a valid ssh-ed25519 public key"),
    ("ssh-ed25519 %%%", "login", 22, "not a valid ssh-ed25519 public key"),
    ("ssh-ed25519", "login", 22, "a key type but no key"),
    ("login ssh-dss AAAAB3NzaC1kc3M=", "login", 22, "key type 'ssh-dss'"),
    ("just-a-word", "login", 22, "neither 'keytype base64' nor a known_hosts line"),
])
def test_lines_that_cannot_be_the_login_nodes_key_stop_the_start(keys, line, host, port, words):
    with pytest.raises(SettingsError, match=words):
        pinned_host_keys(line.format(ed25519=keys["ed25519"][0]), host, port)


def test_an_rsa_blob_under_the_ed25519_type_is_refused(keys):
    rsa_blob = keys["rsa"][0].split()[1]
    with pytest.raises(SettingsError, match="not a valid ssh-ed25519 public key"):
        pinned_host_keys(f"ssh-ed25519 {rsa_blob}", "login", 22)


def test_hashed_host_fields_match_only_their_host(tmp_path, keys):
    field = hashed(f"login {keys['ed25519'][0]}", tmp_path).split()[0]
    assert names_host(field, "login") and not names_host(field, "other")


def test_a_pinned_key_and_trust_on_first_use_cannot_both_be_set(keys, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True)
    env = {"JARVICE_SLURM_CLUSTER_ADDR": "login", "JARVICE_SLURM_SSH_USER": "jarvice",
           "JARVICE_SLURM_SSH_PKEY": (tmp_path / "id").read_text(),
           "JARVICE_SLURM_SSH_HOST_KEY": keys["ed25519"][0], "JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE": "true"}
    with pytest.raises(SettingsError, match="set only one of them"):
        SshSettings.from_settings(Settings.from_env(env))
    del env["JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE"]
    described = SshSettings.from_settings(Settings.from_env(env)).host_key_check.describe()
    assert described == (f"pinned by JARVICE_SLURM_SSH_HOST_KEY: ssh-ed25519 {keys['ed25519'][1]} "
                         "(the known_hosts file is not read)")
