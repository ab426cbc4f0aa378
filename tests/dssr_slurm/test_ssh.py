"""The SSH layer against the test cluster's sshd: reuse, threads, stdin, timeouts, host keys."""

import subprocess
import threading
import time

import pytest

from dssr_core.errors import ClusterUnavailable
from dssr_core.settings import Settings
from dssr_slurm.ssh import SshPool, SshSettings, quote_command

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


def test_an_unknown_host_is_refused(slurm_env, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = settings_with(slurm_env, JARVICE_SLURM_SSH_KNOWN_HOSTS=str(empty))
    pool = SshPool(settings)
    with pytest.raises(ClusterUnavailable, match="host key of .* is not in .*TRUST_ON_FIRST_USE"):
        pool.run(settings.service_account, "true")
    assert empty.read_text() == ""


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


def test_a_changed_host_key_is_refused(slurm_env, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    port = slurm_env["JARVICE_SLURM_CLUSTER_PORT"]
    known = tmp_path / "known_hosts"
    other_key = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    known.write_text(f"[127.0.0.1]:{port} {other_key}\n")
    settings = settings_with(slurm_env, JARVICE_SLURM_SSH_KNOWN_HOSTS=str(known))
    with pytest.raises(ClusterUnavailable, match="host key differs"):
        SshPool(settings).run(settings.service_account, "true")


def test_a_refused_key_is_a_sentence_without_the_key(slurm_env, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    settings = settings_with(slurm_env, JARVICE_SLURM_SSH_PKEY=stranger.read_text())
    with pytest.raises(ClusterUnavailable) as raised:
        SshPool(settings).run(settings.service_account, "true")
    assert raised.value.message == "Cannot reach the cluster over SSH as jarvice@127.0.0.1:" \
        f"{slurm_env['JARVICE_SLURM_CLUSTER_PORT']}: the key was refused."
