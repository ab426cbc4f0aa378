"""Private keys: every type paramiko offers, in PEM and OpenSSH form."""

import subprocess

import pytest

from dssr_core.errors import SettingsError
from dssr_core.remote.ssh import load_private_key


@pytest.mark.parametrize("kind, form", [("ed25519", "OpenSSH"), ("rsa", "PEM"), ("rsa", "OpenSSH"),
                                        ("ecdsa", "PEM"), ("ecdsa", "OpenSSH")])
def test_key_types(tmp_path, kind, form):
    path = tmp_path / "key"
    format_option = ["-m", "PEM"] if form == "PEM" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *format_option, "-N", "", "-f", str(path)], check=True)
    key = load_private_key(path.read_text(), "the test key")
    assert key.get_name().startswith({"ed25519": "ssh-ed25519", "rsa": "ssh-rsa", "ecdsa": "ecdsa-"}[kind])


def test_a_key_with_a_passphrase_is_refused_with_a_sentence(tmp_path):
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(path)], check=True)
    with pytest.raises(SettingsError, match="passphrase"):
        load_private_key(path.read_text(), "the test key")
