"""Job services through OpenSSH's own client: one master connection, one stdio forward per stream.

paramiko moves every byte of a proxied job through Python, packet by packet; a noVNC desktop's
many small messages made that a third of ``ssh -L``'s echoes/s (bench/bench_proxy.py). Here
OpenSSH's ``ssh`` runs as a ``ControlMaster`` (a child of ``dssr serve``), and each connection
to a job is a stdio forward on it, the request ``ssh -W node:port`` makes: DSSR speaks the
master's mux protocol (OpenSSH's PROTOCOL.mux) on the control socket itself and hands the master
one end of a socketpair. The master copies between that socket and a ``direct-tcpip`` channel
in C; the front listener gets the other end, a plain socket. No process per connection, and the
master answers only once sshd has opened the channel or refused it (nothing listens there).

What paramiko guarantees still holds:

- the host key: OpenSSH trusts exactly the one key that :mod:`dssr_core.remote.ssh` checked (pinned,
  known_hosts or trust on first use) on its own connection, with ``StrictHostKeyChecking=yes``;
- the key: the service account's private key is written into a private directory (mode 0700,
  the file 0600), read by ``ssh`` when it authenticates, and removed as soon as the master is up
  or failed; it is never on a command line. The control socket and ``ssh``'s log are in the
  same directory, removed when the master stops;
- no configuration of the host's (``-F /dev/null``), no agent, no password prompt.
"""

import logging
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

import paramiko

from dssr_core.errors import ClusterUnavailable

log = logging.getLogger(__name__)

#: The ``ssh`` program; the image installs Debian's openssh-client.
SSH_PROGRAM = "ssh"
#: The name OpenSSH looks the host key up under (``HostKeyAlias``), whatever the address.
HOST_ALIAS = "dssr-cluster"
#: Asked for first, as paramiko's side does (dssr_core.remote.ssh.PREFERRED_CIPHERS): AES-GCM is the
#: cheapest per byte where the CPU has AES instructions.
CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"

# PROTOCOL.mux, section 11.
_HELLO = 0x00000001
_NEW_STDIO_FWD = 0x10000008
_FAILURE = 0x80000003
_PERMISSION_DENIED = 0x80000002
_SESSION_OPENED = 0x80000006
_VERSION = 4
#: The send buffer of both ends of a forward's socketpair (Linux caps it at net.core.wmem_max).
#: The default, about 200 KB, is a tenth of the SSH channel's window; with this, a download
#: relayed through h11 went from 68% to 80% of ``ssh -L``'s speed (bench/bench_proxy.py).
_SOCKET_BUFFER = 1 << 20


class ForwardRefused(ConnectionRefusedError):
    """sshd did not open the channel: nothing listens at that address, or it is not allowed."""


class MuxStream:
    """One forwarded connection: the socket the master copies to and from, and the control
    connection that keeps the forward open (the master ends the forward when either closes).

    Socket-like for the front listener: ``recv``, ``sendall``, ``settimeout``, ``fileno``, ``close``.
    """

    def __init__(self, stream: socket.socket, control: socket.socket):
        self._stream = stream
        self._control = control

    def recv(self, size: int) -> bytes:
        return self._stream.recv(size)

    def sendall(self, data: bytes) -> None:
        self._stream.sendall(data)

    def settimeout(self, seconds: float | None) -> None:
        self._stream.settimeout(seconds)

    def fileno(self) -> int:
        return self._stream.fileno()

    def shutdown(self, how: int) -> None:
        self._stream.shutdown(how)

    def close(self) -> None:
        self._stream.close()
        self._control.close()


class OpenSshForwarder:
    """An OpenSSH master connection to the login node, started on first use and again when it died.

    ``settings`` is :class:`dssr_core.remote.ssh.SshSettings` (the service account's key and where to
    connect); ``host_key`` returns the login node's host key as paramiko checked it.
    """

    def __init__(self, settings, host_key: Callable[[], paramiko.PKey], program: str = SSH_PROGRAM):
        self.settings = settings
        self._host_key = host_key
        self._program = program
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._directory: str | None = None
        self._closed = False
        self._failed_at = float("-inf")
        self._failure = ""

    @property
    def where(self) -> str:
        return f"{self.settings.service_user}@{self.settings.host}:{self.settings.port}"

    def open(self, host: str, port: int, timeout: float) -> MuxStream:
        """A stream to ``host:port`` as the login node sees it.

        ForwardRefused when sshd refuses the channel; ClusterUnavailable when no master runs
        (a master found dead is started again once).
        """
        try:
            control = self._control(timeout)
        except OSError:  # the master is going (its connection died): a new one
            self._stop_master()
            try:
                control = self._control(timeout)
            except OSError as error:
                self._stop_master()
                raise ClusterUnavailable(f"The OpenSSH master connection to {self.where} does not "
                                         f"answer ({error}).") from None
        try:
            return _stdio_forward(control, host, port, timeout)
        except ForwardRefused:
            control.close()
            raise
        except OSError as error:
            control.close()
            raise ClusterUnavailable(f"The SSH connection to {self.where} broke while opening a "
                                     f"forward ({error}).") from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._stop_master()

    # The master ----------------------------------------------------------------------------

    def _control(self, timeout: float) -> socket.socket:
        """A new connection to the master's control socket, hello exchanged."""
        path = self._master()
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            control.settimeout(timeout)
            control.connect(path)
            _send_packet(control, struct.pack(">II", _HELLO, _VERSION))
            kind, version = struct.unpack(">II", _read_packet(control)[:8])
            if kind != _HELLO or version != _VERSION:
                raise ConnectionError(f"the ssh master speaks mux protocol {version}, not {_VERSION}")
        except BaseException:
            control.close()
            raise
        return control

    def _master(self) -> str:
        """The control socket's path of a live master, started when there is none. Threads that
        waited for a start that failed share its failure rather than each trying again."""
        asked_at = time.monotonic()
        with self._lock:
            if self._closed:
                raise ClusterUnavailable("The connector is closed.")
            if self._process is not None and self._process.poll() is None:
                return os.path.join(self._directory, "control")
            if self._failed_at >= asked_at:
                raise ClusterUnavailable(self._failure)
            self._discard()
            try:
                return self._start()
            except ClusterUnavailable as error:
                self._failed_at, self._failure = time.monotonic(), error.message
                log.warning("%s", error.message)
                raise

    def _start(self) -> str:
        settings = self.settings
        host_key = self._host_key()
        directory = tempfile.mkdtemp(prefix="dssr-ssh-")  # mode 0700
        self._directory = directory
        key_file, known_hosts = os.path.join(directory, "key"), os.path.join(directory, "known_hosts")
        control, log_file = os.path.join(directory, "control"), os.path.join(directory, "ssh.log")
        _write_private(key_file, settings.service_key.rstrip("\n") + "\n")
        _write_private(known_hosts, f"{HOST_ALIAS} {host_key.get_name()} {host_key.get_base64()}\n")
        options = {
            "BatchMode": "yes", "IdentitiesOnly": "yes", "IdentityAgent": "none", "IdentityFile": key_file,
            "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no",
            "StrictHostKeyChecking": "yes", "UserKnownHostsFile": known_hosts,
            "GlobalKnownHostsFile": "/dev/null", "HostKeyAlias": HOST_ALIAS, "UpdateHostKeys": "no",
            "CheckHostIP": "no", "ControlMaster": "yes", "ControlPath": control, "ControlPersist": "no",
            "ConnectTimeout": str(max(1, round(settings.connect_timeout))), "Ciphers": CIPHERS,
            "ServerAliveInterval": str(settings.keepalive), "ServerAliveCountMax": "3",
            "ForwardAgent": "no", "ForwardX11": "no", "ClearAllForwardings": "yes", "LogLevel": "ERROR",
        }
        argv = [self._program, "-F", "/dev/null", "-N", "-E", log_file, "-p", str(settings.port),
                "-l", settings.service_user]
        for name, value in options.items():
            argv += ["-o", f"{name}={value}"]
        argv += ["--", settings.host]
        try:
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
        except OSError as error:
            self._discard()
            raise ClusterUnavailable(f"Cannot start OpenSSH's {self._program} for the proxy of "
                                     f"interactive jobs: {error.strerror or error}.") from None
        try:
            self._wait_listening(control, log_file)
        finally:
            _remove(key_file)
        log.info("ssh: OpenSSH master connected to %s for interactive jobs", self.where)
        return control

    def _wait_listening(self, control: str, log_file: str) -> None:
        """Until the master listens on its control socket (it does once authenticated)."""
        deadline = time.monotonic() + self.settings.connect_timeout + 5
        while not os.path.exists(control):
            if self._process.poll() is not None or time.monotonic() > deadline:
                why = _last_line(log_file) or ("no answer in time" if self._process.poll() is None
                                               else f"ssh exited with status {self._process.returncode}")
                self._discard()
                raise ClusterUnavailable(f"Cannot reach the cluster over SSH (OpenSSH) as {self.where}: "
                                         f"{why}.")
            time.sleep(0.01)

    def _stop_master(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        """Stop the master (if any) and remove its directory. The lock is held."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _stdio_forward(control: socket.socket, host: str, port: int, timeout: float) -> MuxStream:
    """Ask the master for a stdio forward to ``host:port`` through ``control`` (``ssh -W``'s request)."""
    ours, theirs = socket.socketpair()
    for end in (ours, theirs):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
    try:
        _send_packet(control, struct.pack(">II", _NEW_STDIO_FWD, 1) + _string(b"") + _string(host.encode())
                     + struct.pack(">I", port))
        for _ in ("stdin", "stdout"):  # the same socket both ways, one descriptor at a time
            socket.send_fds(control, [b"\0"], [theirs.fileno()])
        theirs.close()
        control.settimeout(timeout)
        reply = _read_packet(control)
    except BaseException:
        ours.close()
        theirs.close()
        raise
    kind = struct.unpack(">I", reply[:4])[0]
    if kind == _SESSION_OPENED:
        control.settimeout(None)
        return MuxStream(ours, control)
    ours.close()
    if kind in (_FAILURE, _PERMISSION_DENIED):
        (length,) = struct.unpack(">I", reply[8:12])
        raise ForwardRefused(reply[12:12 + length].decode("utf-8", "replace") or "refused")
    raise ConnectionError(f"the ssh master answered an unknown message {kind:#x}")


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _send_packet(control: socket.socket, body: bytes) -> None:
    control.sendall(_string(body))


def _read_packet(control: socket.socket) -> bytes:
    (length,) = struct.unpack(">I", _read_exactly(control, 4))
    return _read_exactly(control, length)


def _read_exactly(control: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = control.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the ssh master closed the control connection")
        data += chunk
    return bytes(data)


def _write_private(path: str, text: str) -> None:
    """Write ``text`` to a new file only its owner can read."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = [line.strip() for line in file if line.strip()]
    except OSError:
        return ""
    return lines[-1].rstrip(".") if lines else ""
