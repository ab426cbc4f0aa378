"""The SSH layer against the test cluster's sshd: reuse, threads, stdin, timeouts, host keys."""

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dssr_core.errors import ClusterUnavailable
from dssr_core.remote.ssh import SshPool, SshSettings, quote_command
from dssr_core.settings import Settings
from dssr_core.testing import wait_until
from dssr_core.testing.plugin import find_free_port

pytestmark = pytest.mark.slow


def settings_with(slurm_env, **overrides) -> SshSettings:
    return SshSettings.from_settings(Settings.from_env({**slurm_env, **overrides}))


@pytest.fixture
def ssh_settings(slurm_env):
    return SshSettings.from_settings(Settings.from_env(slurm_env))


@pytest.fixture
def pool(ssh_settings):
    pool = SshPool(ssh_settings)
    yield pool
    pool.close()


def test_commands_share_one_connection_across_threads(pool, ssh_settings):
    account = ssh_settings.service_account
    first = pool.run(account, "echo $PPID")  # the sshd session process differs per channel
    transport = pool.connection(account)._client.get_transport()
    results = []

    def work():
        for _ in range(5):
            results.append(pool.run(account, quote_command("echo", "hello $(id)")))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert first.ok
    assert [result.stdout for result in results] == ["hello $(id)\n"] * 40
    assert pool.connection(account)._client.get_transport() is transport
    assert pool.commands_run == 41


def test_stdin_stdout_stderr_and_exit_status(pool, ssh_settings):
    big = "line\n" * 200_000
    result = pool.run(ssh_settings.service_account, "wc -l; echo oops >&2; exit 7", stdin=big)
    assert (result.exit_status, result.stdout.strip(), result.stderr) == (7, "200000", "oops\n")


def test_a_command_that_hangs_times_out_and_the_connection_still_works(pool, ssh_settings):
    account = ssh_settings.service_account
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable, match="did not finish sleep within 0.5 s"):
        pool.run(account, "sleep 5", timeout=0.5)
    assert time.monotonic() - started < 2
    assert pool.run(account, "echo still").stdout == "still\n"


def test_a_dead_connection_is_reopened(pool, ssh_settings):
    account = ssh_settings.service_account
    pool.run(account, "true")
    pool.connection(account)._client.get_transport().close()
    assert pool.run(account, "echo back").stdout == "back\n"


def test_each_user_gets_its_own_connection(make_connector):
    connector = make_connector()
    kirby = connector.accounts.for_email("kirby@example.org")
    assert connector.ssh.run(kirby, "id -un").stdout == "kirby\n"
    assert connector.ssh.run(connector.accounts.service, "id -un").stdout == "jarvice\n"


@pytest.fixture(scope="module")
def host_key(cluster_env):
    """The sshd's host key as the cluster's known_hosts file has it, and its fingerprint."""
    path = cluster_env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]
    return open(path).read().strip(), f"ssh-ed25519 {printed_fingerprint(path)}"


def printed_fingerprint(path) -> str:
    """The fingerprint of a key file as ``ssh-keygen -l`` prints it (``SHA256:...``)."""
    done = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], check=True, capture_output=True, text=True)
    return done.stdout.split()[1]


def new_public_key(folder, key_type: str) -> tuple[str, str]:
    """A key that is not the sshd's, as ``keytype base64 comment``, and its fingerprint."""
    path = folder / key_type
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "root@elsewhere", "-f", str(path)],
                   check=True)
    return (folder / f"{key_type}.pub").read_text().strip(), printed_fingerprint(f"{path}.pub")


@pytest.fixture
def other_key(tmp_path):
    public, printed = new_public_key(tmp_path, "ed25519")
    return public, f"ssh-ed25519 {printed}"


def refusal(settings) -> str:
    with pytest.raises(ClusterUnavailable) as raised:
        SshPool(settings).run(settings.service_account, "true")
    return raised.value.message


def test_an_unknown_host_is_refused_naming_the_three_settings(slurm_env, tmp_path, host_key):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = settings_with(slurm_env, JARVICE_SLURM_SSH_KNOWN_HOSTS=str(empty))
    message = refusal(settings)
    port = slurm_env["JARVICE_SLURM_CLUSTER_PORT"]
    assert message.startswith(f"Cannot reach the cluster over SSH as jarvice@127.0.0.1:{port}: the host key "
                              f"of [127.0.0.1]:{port}, {host_key[1]}, is not in {empty}. Set one of: ")
    for setting in ("JARVICE_SLURM_SSH_HOST_KEY", "JARVICE_SLURM_SSH_KNOWN_HOSTS",
                    "JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE=true"):
        assert setting in message
    assert empty.read_text() == ""


def test_no_host_key_and_no_known_hosts_file_names_the_three_settings(slurm_env, tmp_path):
    missing = tmp_path / "no-such-file"
    message = refusal(settings_with(slurm_env, JARVICE_SLURM_SSH_KNOWN_HOSTS=str(missing)))
    assert f"is not in {missing} (there is no such file). Set one of: JARVICE_SLURM_SSH_HOST_KEY" in message
    assert "JARVICE_SLURM_SSH_KNOWN_HOSTS to a known_hosts file" in message
    assert "or JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE=true" in message
    assert not missing.exists()


def test_trust_on_first_use_appends_the_key_and_then_checks_it(slurm_env, tmp_path):
    path = tmp_path / "new" / "known_hosts"
    settings = settings_with(slurm_env, JARVICE_SLURM_SSH_KNOWN_HOSTS=str(path),
                             JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE="true")
    pool = SshPool(settings)
    assert pool.run(settings.service_account, "echo in").stdout == "in\n"
    pool.close()
    port = slurm_env["JARVICE_SLURM_CLUSTER_PORT"]
    assert path.read_text().startswith(f"[127.0.0.1]:{port} ssh-ed25519 ")
    strict = settings_with(slurm_env, JARVICE_SLURM_SSH_KNOWN_HOSTS=str(path))
    assert SshPool(strict).run(strict.service_account, "echo again").stdout == "again\n"


def test_a_changed_host_key_in_the_file_is_refused_with_both_fingerprints(slurm_env, tmp_path, host_key,
                                                                          other_key):
    port = slurm_env["JARVICE_SLURM_CLUSTER_PORT"]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {other_key[0]}\n")
    message = refusal(settings_with(slurm_env, JARVICE_SLURM_SSH_KNOWN_HOSTS=str(known)))
    assert (f"[127.0.0.1]:{port} offered the host key {host_key[1]}, but {known} expects {other_key[1]}."
            in message)


def public_key_form(known_hosts_line: str) -> str:
    """``keytype base64 comment``, as in the login node's /etc/ssh/ssh_host_ed25519_key.pub."""
    return " ".join(known_hosts_line.split()[1:3]) + " root@login"


def hashed_form(known_hosts_line: str, tmp_path) -> str:
    path = tmp_path / "to-hash"
    path.write_text(known_hosts_line + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
    return path.read_text().strip()


@pytest.mark.parametrize("form", ["known_hosts line", "public key", "hashed known_hosts line",
                                  "after a key of another type"])
def test_a_pinned_host_key_is_accepted_without_any_known_hosts_file(slurm_env, tmp_path, host_key, form):
    line = host_key[0]
    pinned = {"known_hosts line": line, "public key": public_key_form(line),
              "hashed known_hosts line": hashed_form(line, tmp_path),
              "after a key of another type": f"{new_public_key(tmp_path, 'rsa')[0]}\n{public_key_form(line)}",
              }[form]
    missing = tmp_path / "no-such-file"
    settings = settings_with(slurm_env, JARVICE_SLURM_SSH_HOST_KEY=pinned,
                             JARVICE_SLURM_SSH_KNOWN_HOSTS=str(missing))
    assert SshPool(settings).run(settings.service_account, "echo pinned").stdout == "pinned\n"
    assert not missing.exists()


def test_the_pinned_key_is_the_only_one_trusted(slurm_env, tmp_path, host_key, other_key):
    """The right key in the file does not save a wrong pin; a wrong one there does not spoil a right pin."""
    port = slurm_env["JARVICE_SLURM_CLUSTER_PORT"]
    message = refusal(settings_with(slurm_env, JARVICE_SLURM_SSH_HOST_KEY=other_key[0]))
    assert message == (f"Cannot reach the cluster over SSH as jarvice@127.0.0.1:{port}: [127.0.0.1]:{port} "
                       f"offered the host key {host_key[1]}, but JARVICE_SLURM_SSH_HOST_KEY pins "
                       f"{other_key[1]}. If the login node was reinstalled, check its new key with its "
                       "administrator and set JARVICE_SLURM_SSH_HOST_KEY to it.")
    wrong_file = tmp_path / "known_hosts"
    wrong_file.write_text(f"[127.0.0.1]:{port} {other_key[0]}\n")
    settings = settings_with(slurm_env, JARVICE_SLURM_SSH_HOST_KEY=public_key_form(host_key[0]),
                             JARVICE_SLURM_SSH_KNOWN_HOSTS=str(wrong_file))
    assert SshPool(settings).run(settings.service_account, "echo pin").stdout == "pin\n"


def test_a_pinned_key_of_a_type_the_host_lacks_shows_the_key_it_offers(slurm_env, tmp_path, host_key):
    rsa_key, printed = new_public_key(tmp_path, "rsa")
    message = refusal(settings_with(slurm_env, JARVICE_SLURM_SSH_HOST_KEY=rsa_key))
    assert f"offered the host key {host_key[1]}, but JARVICE_SLURM_SSH_HOST_KEY pins ssh-rsa {printed}." \
        in message


def test_a_refused_key_is_a_sentence_without_the_key(slurm_env, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    settings = settings_with(slurm_env, JARVICE_SLURM_SSH_PKEY=stranger.read_text())
    with pytest.raises(ClusterUnavailable) as raised:
        SshPool(settings).run(settings.service_account, "true")
    assert raised.value.message == "Cannot reach the cluster over SSH as jarvice@127.0.0.1:" \
        f"{slurm_env['JARVICE_SLURM_CLUSTER_PORT']}: the key was refused."


def test_the_connection_asks_for_aes_gcm_first(pool, ssh_settings):
    """AEAD spares paramiko an HMAC per packet: half its CPU per MB through a job's tunnel
    (bench/bench_proxy.py). Every cluster's sshd offers it."""
    pool.run(ssh_settings.service_account, "true")
    transport = pool.connection(ssh_settings.service_account)._client.get_transport()
    assert (transport.local_cipher, transport.remote_cipher) == ("aes128-gcm@openssh.com",) * 2


@pytest.mark.slurm_versions("22.05")  # the host's sshd; the chroots' would need their root
def test_an_sshd_without_aes_gcm_still_connects_with_aes_ctr(slurm_env, host_key, tmp_path):
    """A second sshd of the cluster's config on a port of its own (no pid file: the cluster's
    sshd is left alone) that offers only AES-CTR, as a site may configure its login node."""
    port = find_free_port()
    config = Path(slurm_env["DSSR_CLUSTER_DIR"]) / "sshd" / "sshd_config"
    with open(tmp_path / "sshd.log", "wb") as log:
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-o", f"Port={port}",
                                 "-o", "PidFile=none", "-o", "Ciphers=aes128-ctr,aes256-ctr"],
                                stdout=log, stderr=log)
    try:
        wait_until(lambda: listening(port), 10, what=f"the second sshd on port {port}")
        settings = settings_with(slurm_env, JARVICE_SLURM_CLUSTER_PORT=str(port),
                                 JARVICE_SLURM_SSH_HOST_KEY=public_key_form(host_key[0]))
        pool = SshPool(settings)
        try:
            assert pool.run(settings.service_account, "echo ctr").stdout == "ctr\n"
            transport = pool.connection(settings.service_account)._client.get_transport()
            assert transport.remote_cipher == "aes128-ctr"
        finally:
            pool.close()
    finally:
        sshd.terminate()
        sshd.wait(10)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
