"""SSH to the cluster with paramiko: one live connection per user, shared by every thread.

A connection (:class:`SshConnection`) is opened on first use, reused by every request and
thread (each command gets its own session channel on the one transport), kept alive, and
reopened when it died. Every command has a timeout. The login node's host key is checked
as :mod:`dssr_core.remote.hostkeys` says (a pinned key, a known_hosts file, or trust on first use
when the operator asks for it). Failures become :class:`ClusterUnavailable` with a
sentence that says what failed (a command that ran and failed is read by
:mod:`dssr_slurm.failures`); no key ever reaches a log line or a message.

Used by slurm-cli for everything, and by slurmrestd for its SSH tunnel and output access.
"""

import io
import logging
import select
import shlex
import socket
import threading
import time
import weakref

import attrs
import paramiko

from dssr_core import metrics
from dssr_core.errors import ClusterUnavailable, ConnectorError, SchedulerTimeout, SettingsError
from dssr_core.remote.hostkeys import HostKeyCheck, HostKeyRefused, pinned_host_keys
from dssr_core.remote.users import ClusterAccount, decode_private_key
from dssr_core.settings import Setting

log = logging.getLogger(__name__)

KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
#: Asked for first, as newer OpenSSH does (10.6 lists them before CTR; 9.2 after): an AEAD
#: cipher spares paramiko an HMAC over every packet, which nearly halves its CPU per MB through
#: a job's tunnel (bench/bench_proxy.py). Servers without them get paramiko's usual order.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


CLUSTER_ADDR = Setting("JARVICE_SLURM_CLUSTER_ADDR", "the login node's address", default_text="required")
CLUSTER_PORT = Setting("JARVICE_SLURM_CLUSTER_PORT", "its SSH port", kind="int", default=22, minimum=1,
                       maximum=65535)
SSH_USER = Setting("JARVICE_SLURM_SSH_USER", "the service account", default_text="required")
SSH_PKEY = Setting("JARVICE_SLURM_SSH_PKEY", "the service account's private key: PEM text or base64 of it "
                   "(ed25519, ECDSA, RSA; no passphrase)", secret=True, default_text="required")
KNOWN_HOSTS = Setting("JARVICE_SLURM_SSH_KNOWN_HOSTS", "the known_hosts file host keys are checked against",
                      kind="path", default="~/.ssh/known_hosts")
TRUST_ON_FIRST_USE = Setting("JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE", "`true`: accept an unknown host key "
                             "once and append it to the file (not with `JARVICE_SLURM_SSH_HOST_KEY`)",
                             kind="bool", default=False)
HOST_KEY = Setting("JARVICE_SLURM_SSH_HOST_KEY", "the login node's public host key, pinned (the chart passes "
                   "no known_hosts file): `keytype base64 [comment]` (its `ssh_host_*_key.pub`) or a "
                   "known_hosts line naming the cluster's address, one key per line; when set, the only "
                   "keys trusted (the known_hosts file is not read). Public: the init report shows its "
                   "fingerprint")
CONNECT_TIMEOUT = Setting("JARVICE_SLURM_SSH_CONNECT_TIMEOUT", "seconds to connect, and to open a session on "
                          "a connection", kind="float", default=10.0, minimum=0.1)
COMMAND_TIMEOUT = Setting("JARVICE_SLURM_COMMAND_TIMEOUT", "seconds any one command may take (`squeue` "
                          "against a stopped slurmctld takes 18 s to fail)", kind="float", default=30.0,
                          minimum=0.1)
KEEPALIVE = Setting("JARVICE_SLURM_SSH_KEEPALIVE", "seconds between SSH keepalives; `0` = none", kind="int",
                    default=30, minimum=0)
MAX_SESSIONS = Setting("JARVICE_SLURM_SSH_MAX_SESSIONS", "commands at once on one connection (sshd's "
                       "`MaxSessions`, 10 by default); more wait", kind="int", default=10, minimum=1,
                       maximum=1000)
SETTINGS = (CLUSTER_ADDR, CLUSTER_PORT, SSH_USER, SSH_PKEY, HOST_KEY, KNOWN_HOSTS, TRUST_ON_FIRST_USE,
            CONNECT_TIMEOUT, COMMAND_TIMEOUT, KEEPALIVE, MAX_SESSIONS)


@attrs.frozen
class SshSettings:
    """Where and how to connect. ``service_key`` is PEM text and never shown.

    ``pinned_host_keys``, when not empty, are the only host keys trusted (see
    :mod:`dssr_core.remote.hostkeys`).
    """

    host: str
    port: int
    service_user: str
    service_key: str = attrs.field(repr=False)
    known_hosts: str
    trust_on_first_use: bool = False
    pinned_host_keys: tuple[paramiko.PKey, ...] = ()
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    keepalive: int = 30
    max_sessions: int = 10

    @classmethod
    def from_settings(cls, settings) -> "SshSettings":
        host, user, key = settings.read_required(CLUSTER_ADDR, SSH_USER, SSH_PKEY,
                                                 purpose="to reach the cluster over SSH")
        try:
            key_text = decode_private_key(key)
        except ValueError:
            raise SettingsError(
                "JARVICE_SLURM_SSH_PKEY must be a private key (PEM text or base64 of it).") from None
        port = settings.read(CLUSTER_PORT)
        pinned = pinned_host_keys(settings.read(HOST_KEY), host, port)
        trust_on_first_use = settings.read(TRUST_ON_FIRST_USE)
        if pinned and trust_on_first_use:
            raise SettingsError("JARVICE_SLURM_SSH_HOST_KEY pins the login node's host key, and "
                                "JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE=true would trust another one: "
                                "set only one of them.")
        return cls(
            host=host,
            port=port,
            service_user=user,
            service_key=key_text,
            known_hosts=settings.read(KNOWN_HOSTS),
            trust_on_first_use=trust_on_first_use,
            pinned_host_keys=pinned,
            connect_timeout=settings.read(CONNECT_TIMEOUT),
            command_timeout=settings.read(COMMAND_TIMEOUT),
            keepalive=settings.read(KEEPALIVE),
            max_sessions=settings.read(MAX_SESSIONS),
        )

    @property
    def service_account(self) -> ClusterAccount:
        return ClusterAccount(self.service_user, self.service_key)

    @property
    def host_key_check(self) -> HostKeyCheck:
        return HostKeyCheck(self.host, self.port, self.pinned_host_keys, self.known_hosts,
                            self.trust_on_first_use)


@attrs.frozen
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def quote_command(*arguments: str) -> str:
    """A command line for a remote shell, every argument through ``shlex.quote``."""
    return " ".join(shlex.quote(str(argument)) for argument in arguments)


def command_message(result: CommandResult) -> str:
    """What a failed command said (the scheduler's own words): its error lines, joined."""
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines
    return " ".join(errors)[:1000] or f"exit status {result.exit_status} and no message"


def load_private_key(text: str, what: str) -> paramiko.PKey:
    """A paramiko key from PEM text, trying ed25519, ECDSA and RSA; SettingsError naming ``what``."""
    for key_class in KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise SettingsError(f"{what} is protected by a passphrase; give a key without one.") from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise SettingsError(f"{what} is not an ed25519, ECDSA or RSA private key that paramiko can read.")


class SshPool:
    """The connections to one cluster, one per cluster user, and a count of commands run."""

    def __init__(self, settings: SshSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._connections: dict[str, SshConnection] = {}
        self._commands_run = 0

    @property
    def commands_run(self) -> int:
        """How many commands were started since the pool was made (for benchmarks and tests)."""
        return self._commands_run

    def run(self, account: ClusterAccount, command: str, *, stdin: str | None = None,
            timeout: float | None = None) -> CommandResult:
        """Run ``command`` (a shell command line) as ``account``; ClusterUnavailable on failure."""
        connection = self.connection(account)
        with self._lock:
            self._commands_run += 1
        return connection.run(command, stdin=stdin, timeout=timeout)

    def connection(self, account: ClusterAccount) -> "SshConnection":
        with self._lock:
            connection = self._connections.get(account.user)
            if connection is None:
                if not account.private_key:
                    raise ConnectorError(f"No SSH key is known for the cluster user {account.user}.")
                key = load_private_key(account.private_key, f"the SSH key of {account.user}")
                connection = SshConnection(self.settings, account.user, key)
                self._connections[account.user] = connection
            return connection

    def close(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()


#: Every connection object of this process, for ``dssr_ssh_connections`` (counted at a scrape).
_CONNECTIONS: "weakref.WeakSet[SshConnection]" = weakref.WeakSet()
metrics.SSH_OPEN.set_function(lambda: sum(connection.is_open for connection in list(_CONNECTIONS)))


class SshConnection:
    """One SSH transport to the cluster as one user: opened lazily, reopened when it died."""

    def __init__(self, settings: SshSettings, user: str, key: paramiko.PKey):
        self.settings = settings
        self.user = user
        self._key = key
        self._lock = threading.Lock()
        self._sessions = threading.BoundedSemaphore(settings.max_sessions)
        self._client: paramiko.SSHClient | None = None
        self._failed_at = float("-inf")
        self._failure = ""
        _CONNECTIONS.add(self)

    @property
    def where(self) -> str:
        return f"{self.user}@{self.settings.host}:{self.settings.port}"

    @property
    def is_open(self) -> bool:
        client = self._client
        transport = client.get_transport() if client is not None else None
        return transport is not None and transport.is_active()

    def run(self, command: str, *, stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        timeout = self.settings.command_timeout if timeout is None else timeout
        if not self._sessions.acquire(timeout=timeout):
            raise SchedulerTimeout(f"No SSH session to {self.where} became free within {timeout:g} s.")
        try:
            channel = self._open_channel()
            try:
                return _exchange(channel, command, stdin, timeout, self.where)
            finally:
                channel.close()
        finally:
            self._sessions.release()

    def open_forward(self, remote: tuple[str, int], origin: tuple[str, int],
                     timeout: float) -> paramiko.Channel:
        """A ``direct-tcpip`` channel to ``remote`` as the cluster host sees it (a port forward).

        A transport found dead is reopened once. A live one that refuses the channel (nothing
        listens at ``remote``) is kept, and paramiko's error raised: the connection is fine.
        """
        transport = self._transport()
        try:
            return transport.open_channel("direct-tcpip", remote, origin, timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError):
            if transport.is_active():
                raise
            self._forget(transport)
        return self._transport().open_channel("direct-tcpip", remote, origin, timeout=timeout)

    def host_key(self) -> paramiko.PKey:
        """The login node's host key as checked when this connection was opened (connecting if need be)."""
        return self._transport().get_remote_server_key()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # Connecting -------------------------------------------------------------------------

    def _open_channel(self) -> paramiko.Channel:
        """A new session channel; a transport that turns out dead is reopened once."""
        transport = self._transport()
        try:
            return transport.open_session(timeout=self.settings.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as error:
            log.info("ssh %s: the connection is gone (%s); reconnecting", self.where, error_reason(error))
            self._forget(transport)
        transport = self._transport()
        try:
            return transport.open_session(timeout=self.settings.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as error:
            self._forget(transport)
            raise ClusterUnavailable(
                f"Cannot open an SSH session to {self.where}: {error_reason(error)}.") from None

    def _transport(self) -> paramiko.Transport:
        asked_at = time.monotonic()
        with self._lock:
            transport = self._client.get_transport() if self._client is not None else None
            if transport is not None and transport.is_active():
                return transport
            if self._failed_at >= asked_at:  # a connect that ended while we waited failed
                raise ClusterUnavailable(self._failure)
            if self._client is not None:
                self._client.close()
                self._client = None
            try:
                self._client = self._connect()
            except ClusterUnavailable as error:
                self._failed_at, self._failure = time.monotonic(), error.message
                log.warning("%s", error.message)
                raise
            return self._client.get_transport()

    def _forget(self, transport: paramiko.Transport) -> None:
        with self._lock:
            if self._client is not None and self._client.get_transport() is transport:
                self._client.close()
                self._client = None

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        disabled_algorithms = self.settings.host_key_check.prepare(client)
        try:
            return self._connected(client, disabled_algorithms)
        except ClusterUnavailable as error:
            metrics.SSH_FAILURES.labels(getattr(error, "cause", "other")).inc()
            raise

    def _connected(self, client: paramiko.SSHClient, disabled_algorithms) -> paramiko.SSHClient:
        settings = self.settings
        host_keys = settings.host_key_check
        try:
            sock = socket.create_connection((settings.host, settings.port), timeout=settings.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stall per command
            client.connect(settings.host, settings.port, username=self.user, pkey=self._key, sock=sock,
                           timeout=settings.connect_timeout, banner_timeout=settings.connect_timeout,
                           auth_timeout=settings.connect_timeout, allow_agent=False, look_for_keys=False,
                           disabled_algorithms=disabled_algorithms,
                           transport_factory=transport_preferring_aead)
        except HostKeyRefused as error:
            client.close()
            raise _unreachable(f"Cannot reach the cluster over SSH as {self.where}: {error}",
                               "host_key") from None
        except paramiko.IncompatiblePeer as error:
            client.close()
            why = (host_keys.no_pinned_type(settings.connect_timeout) if settings.pinned_host_keys
                   else f"{error_reason(error)}.")
            raise _unreachable(f"Cannot reach the cluster over SSH as {self.where}: {why}",
                               "host_key" if settings.pinned_host_keys else "other") from None
        except paramiko.BadHostKeyException as error:
            client.close()
            raise _unreachable(f"Cannot reach the cluster over SSH as {self.where}: "
                               f"{host_keys.changed(error.key, [error.expected_key])}", "host_key") from None
        except (paramiko.SSHException, EOFError, OSError) as error:
            client.close()
            raise _unreachable(f"Cannot reach the cluster over SSH as {self.where}: {error_reason(error)}.",
                               failure_cause(error)) from None
        client.get_transport().set_keepalive(settings.keepalive)
        metrics.SSH_MADE.inc()
        log.info("ssh: connected to %s", self.where)
        return client


def transport_preferring_aead(sock, **options) -> paramiko.Transport:
    """A paramiko transport that offers :data:`PREFERRED_CIPHERS` first (those it knows)."""
    transport = paramiko.Transport(sock, **options)
    security = transport.get_security_options()
    offered = security.ciphers
    first = tuple(name for name in PREFERRED_CIPHERS if name in offered)
    security.ciphers = first + tuple(name for name in offered if name not in first)
    return transport


def _exchange(channel: paramiko.Channel, command: str, stdin: str | None, timeout: float,
              where: str) -> CommandResult:
    """Run ``command`` on ``channel``: send stdin, read stdout and stderr, wait for the status.

    Without stdin the command reads ``/dev/null`` instead of getting an EOF from us: an EOF that
    reaches sshd after it closed a quick command's channel makes it drop the whole connection
    (every command on it fails). The output is read up to its EOF, not only up to the exit
    status, which sshd may send before the last output.
    """
    deadline = time.monotonic() + timeout
    stdout, stderr = bytearray(), bytearray()
    program = command.split(" ", 1)[0]
    try:
        channel.settimeout(timeout)
        if stdin:
            channel.exec_command(command)
            _send(channel, stdin)
            channel.shutdown_write()
        else:
            channel.exec_command(f"exec </dev/null; {command}")
        while not (channel.exit_status_ready() and (channel.eof_received or channel.closed)):
            _drain(channel, stdout, stderr)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if channel.eof_received:  # no more output: only the exit status is to come
                channel.status_event.wait(min(remaining, 1.0))
            else:
                select.select([channel], [], [], min(remaining, 1.0))
        _drain(channel, stdout, stderr)
    except TimeoutError:
        raise SchedulerTimeout(
            f"The cluster did not finish {program} within {timeout:g} s ({where}).") from None
    except (paramiko.SSHException, EOFError, OSError) as error:
        raise ClusterUnavailable(f"SSH to {where} failed during {program}: {error_reason(error)}.") from None
    status = channel.recv_exit_status()
    if status < 0:
        raise ClusterUnavailable(f"SSH to {where} closed before {program} finished.")
    result = CommandResult(status, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))
    log.debug("ssh %s: %s -> %d", where, program, status)
    return result


def _send(channel: paramiko.Channel, text: str) -> None:
    """Send standard input; a command that ends without reading it all is told by its status."""
    try:
        channel.sendall(text.encode("utf-8"))
    except TimeoutError:
        raise
    except (paramiko.SSHException, OSError) as error:
        log.debug("ssh: standard input not fully sent: %s", error_reason(error))


def _drain(channel: paramiko.Channel, stdout: bytearray, stderr: bytearray) -> None:
    while channel.recv_ready():
        stdout += channel.recv(65536)
    while channel.recv_stderr_ready():
        stderr += channel.recv_stderr(65536)


def _unreachable(message: str, cause: str) -> ClusterUnavailable:
    """The error of a connection that could not be made, with its cause for the metrics."""
    error = ClusterUnavailable(message)
    error.cause = cause
    return error


def failure_cause(error: BaseException) -> str:
    """The cause label of a failed connection (:data:`dssr_core.metrics.SSH_FAILURE_CAUSES`)."""
    if isinstance(error, paramiko.AuthenticationException):
        return "auth"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, TimeoutError) or "timed out" in str(error).lower():
        return "timeout"
    return "other"


def error_reason(error: BaseException) -> str:
    """A few words on why an SSH or socket operation failed, for a message or a log line."""
    if isinstance(error, paramiko.AuthenticationException):
        return "the key was refused"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    text = str(error).strip().rstrip(".")
    return text or type(error).__name__
