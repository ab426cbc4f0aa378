"""The proxy's OpenSSH master (dssr_core.remote.openssh) against the test cluster's real sshd: forwards,
refusals, the key kept off command lines and disk, the host key paramiko checked, a master that died."""

import os
import socket
import stat
import threading
import time
from pathlib import Path

import paramiko
import pytest

from dssr_core.errors import ClusterUnavailable
from dssr_core.remote.openssh import ForwardRefused, OpenSshForwarder
from dssr_core.remote.ssh import SshPool, SshSettings
from dssr_core.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ssh_settings(slurm_env):
    return SshSettings.from_settings(Settings.from_env(slurm_env))


@pytest.fixture(scope="module")
def connection(ssh_settings):
    pool = SshPool(ssh_settings)
    yield pool.connection(ssh_settings.service_account)
    pool.close()


@pytest.fixture
def forwarder(ssh_settings, connection):
    forwarder = OpenSshForwarder(ssh_settings, connection.host_key)
    yield forwarder
    forwarder.close()


@pytest.fixture(scope="module")
def echo_port():
    """A TCP echo on this host (the cluster's node): what a job's service would be."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(client):
        with client:
            while data := client.recv(65536):
                client.sendall(data)

    def accept():
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def echoed(stream, data: bytes) -> bytes:
    stream.settimeout(10)
    stream.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = stream.recv(65536)
        assert chunk, "the forward closed before the echo came back"
        got += chunk
    return got


def test_forwards_share_one_master_and_carry_bytes_both_ways(forwarder, echo_port):
    streams = [forwarder.open("localhost", echo_port, 10) for _ in range(3)]
    master = forwarder._process
    try:
        for index, stream in enumerate(streams):
            data = bytes([index]) * 200_000  # more than a socket buffer and an SSH packet
            assert echoed(stream, data) == data
        assert forwarder._process is master and master.poll() is None
    finally:
        for stream in streams:
            stream.close()


def test_a_forwards_socket_buffers_a_megabyte_where_the_kernel_allows(forwarder, echo_port):
    stream = forwarder.open("localhost", echo_port, 10)
    try:
        allowed = int(Path("/proc/sys/net/core/wmem_max").read_text())
        buffered = stream._stream.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert buffered == 2 * min(1 << 20, allowed)  # Linux doubles what it is asked for
        assert echoed(stream, b"x" * 3_000_000) == b"x" * 3_000_000
    finally:
        stream.close()


def test_a_closed_stream_ends_its_forward_and_the_master_carries_on(forwarder, echo_port):
    stream = forwarder.open("localhost", echo_port, 10)
    stream.close()
    again = forwarder.open("localhost", echo_port, 10)
    try:
        assert echoed(again, b"after") == b"after"
    finally:
        again.close()


def test_a_port_nothing_listens_on_is_refused_at_open(forwarder):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ForwardRefused):
        forwarder.open("localhost", port, 10)
    assert forwarder._process.poll() is None  # the connection is fine


def test_the_key_is_on_no_command_line_and_not_left_on_disk(forwarder, echo_port, ssh_settings):
    forwarder.open("localhost", echo_port, 10).close()
    directory = Path(forwarder._directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(path.name for path in directory.iterdir()) == ["control", "known_hosts", "ssh.log"]
    assert stat.S_IMODE((directory / "known_hosts").stat().st_mode) == 0o600
    command_line = Path(f"/proc/{forwarder._process.pid}/cmdline").read_bytes().decode()
    secret = "".join(ssh_settings.service_key.splitlines()[1:-1])
    assert secret[:40] not in command_line.replace("\n", "")
    assert "ControlPath=" + str(directory / "control") in command_line


def test_openssh_trusts_only_the_host_key_paramiko_checked(ssh_settings, echo_port):
    stranger = paramiko.ECDSAKey.generate()  # a host key no sshd of the test cluster has
    forwarder = OpenSshForwarder(ssh_settings, lambda: stranger)
    try:
        with pytest.raises(ClusterUnavailable, match="(?i)host key"):
            forwarder.open("localhost", echo_port, 10)
        assert forwarder._process is None and forwarder._directory is None  # nothing left behind
    finally:
        forwarder.close()


def test_a_master_that_died_is_started_again(forwarder, echo_port):
    forwarder.open("localhost", echo_port, 10).close()
    first = forwarder._process
    first.kill()
    first.wait()
    stream = forwarder.open("localhost", echo_port, 10)
    try:
        assert forwarder._process is not first
        assert echoed(stream, b"again") == b"again"
    finally:
        stream.close()


def test_close_stops_the_master_and_removes_its_directory(ssh_settings, connection, echo_port):
    forwarder = OpenSshForwarder(ssh_settings, connection.host_key)
    forwarder.open("localhost", echo_port, 10).close()
    master, directory = forwarder._process, forwarder._directory
    forwarder.close()
    assert master.poll() is not None
    assert not os.path.exists(directory)
    with pytest.raises(ClusterUnavailable):
        forwarder.open("localhost", echo_port, 10)


def test_no_ssh_program_is_a_sentence(ssh_settings, connection, echo_port):
    forwarder = OpenSshForwarder(ssh_settings, connection.host_key, program="/nonexistent/ssh")
    try:
        with pytest.raises(ClusterUnavailable, match="Cannot start OpenSSH's /nonexistent/ssh"):
            forwarder.open("localhost", echo_port, 10)
    finally:
        forwarder.close()


def test_threads_that_waited_for_a_failed_start_share_its_failure(ssh_settings, connection, echo_port):
    """When the master cannot start (here: the host key is not the cluster's), the requests that
    waited for that start fail with it instead of each starting ssh again in turn."""
    starts = []
    stranger = paramiko.ECDSAKey.generate()

    def host_key():
        starts.append(1)
        return stranger

    forwarder = OpenSshForwarder(ssh_settings, host_key)
    failures = []

    def request():
        try:
            forwarder.open("localhost", echo_port, 10)
        except ClusterUnavailable as error:
            failures.append(error.message)

    with forwarder._lock:  # every request asks while the first start is still to come
        threads = [threading.Thread(target=request) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
    for thread in threads:
        thread.join(30)
    forwarder.close()
    assert len(failures) == 4 and len(set(failures)) == 1, failures
    assert len(starts) == 1
