"""An SSH tunnel to slurmrestd when it listens only on the login node.

A listener on ``127.0.0.1:<ephemeral>`` accepts the HTTP client's connections; each one is
forwarded over a ``direct-tcpip`` channel of ssh.py's connection (the service account's) to
``JARVICE_SLURMRESTD_ADDR:JARVICE_SLURMRESTD_PORT`` as the login node sees them. ssh.py
reopens the SSH connection when it died; a channel that cannot be opened closes the local
connection, which the HTTP client reports as slurmrestd unreachable (503).
"""

import logging
import select
import socket
import threading

import paramiko

from dssr_core.remote.ssh import SshConnection, error_reason

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class SshTunnel:
    """Forwards ``127.0.0.1:port`` to ``(remote_host, remote_port)`` through ``connection``."""

    def __init__(self, connection: SshConnection, remote_host: str, remote_port: int,
                 open_timeout: float = 10.0):
        self.connection = connection
        self.remote = (remote_host, remote_port)
        self.open_timeout = open_timeout
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self.channels_opened = 0
        self._failure: str | None = None
        threading.Thread(target=self._accept_loop, name="dssr-slurmrestd-tunnel", daemon=True).start()
        log.info("slurmrestd tunnel: 127.0.0.1:%d -> %s:%d via %s", self.port, remote_host, remote_port,
                 connection.where)

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def failure(self) -> str | None:
        """Why the last channel could not be opened (an SSH sentence); None once one was."""
        return self._failure

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), name="dssr-tunnel-channel",
                             daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            channel = self._open_channel(client.getpeername())
        except Exception as error:  # noqa: BLE001 - any failure closes this one connection
            self._failure = getattr(error, "message", None) or error_reason(error)
            log.warning("slurmrestd tunnel via %s: no channel to %s:%d (%s)", self.connection.where,
                        *self.remote, error_reason(error))
            client.close()
            return
        try:
            _pump(client, channel, self._closed)
        finally:
            channel.close()
            client.close()

    def _open_channel(self, origin) -> paramiko.Channel:
        channel = self.connection.open_forward(self.remote, origin, self.open_timeout)
        self.channels_opened += 1
        self._failure = None
        return channel


def _pump(client: socket.socket, channel: paramiko.Channel, closed: threading.Event) -> None:
    """Copy bytes both ways until either side closes."""
    while not closed.is_set():
        readable, _, _ = select.select([client, channel], [], [], 1.0)
        for source, sink in ((client, channel), (channel, client)):
            if source in readable:
                data = source.recv(_CHUNK)
                if not data:
                    return
                sink.sendall(data)
