"""The login node's SSH host key: how DSSR knows it, and the sentence when it is wrong or unknown.

The operator chooses one of three ways:

- ``JARVICE_SLURM_SSH_HOST_KEY`` pins the key: one or more lines, each a known_hosts line
  (``host keytype base64``, the host also as ``[host]:port`` or hashed) or a public key in
  OpenSSH's form (``keytype base64 [comment]``, the content of ``ssh_host_*_key.pub``). When
  it is set, it is the ONLY thing trusted: the known_hosts file is not read, and trust on
  first use cannot be turned on with it.
- ``JARVICE_SLURM_SSH_KNOWN_HOSTS``: a known_hosts file (default ``~/.ssh/known_hosts``).
- ``JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE=true``: an unknown key is accepted once and appended
  to that file, then checked like the others.

Anything else is refused with a sentence that shows the fingerprint offered (``SHA256:...``,
as ``ssh-keygen -l`` prints it), the one expected, and which setting to set.
"""

import base64
import binascii
import hmac
import logging
import os
import re
import socket
import threading

import paramiko

from dssr_core.errors import ClusterUnavailable, SettingsError

log = logging.getLogger(__name__)

HOST_KEY_SETTING = "JARVICE_SLURM_SSH_HOST_KEY"
#: Host key algorithms a pinned key's type allows; every other one DSSR knows is switched off,
#: so that the login node proves itself with a pinned key rather than with another type.
ALGORITHMS_OF_TYPE = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}
KNOWN_ALGORITHMS = (*(alg for algs in ALGORITHMS_OF_TYPE.values() for alg in algs), "ssh-dss",
                    *(f"{alg}-cert-v01@openssh.com" for algs in ALGORITHMS_OF_TYPE.values() for alg in algs),
                    "ssh-dss-cert-v01@openssh.com")
_known_hosts_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """``ssh-ed25519 SHA256:...``: the key's type and its fingerprint as ``ssh-keygen -l`` prints it."""
    return f"{key.get_name()} {key.fingerprint}"


def host_key_name(host: str, port: int) -> str:
    """The host as known_hosts (and paramiko) name it: ``host`` on port 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"


# Reading the pinned key -----------------------------------------------------------------


def pinned_host_keys(text: str | None, host: str, port: int) -> tuple[paramiko.PKey, ...]:
    """The keys of ``JARVICE_SLURM_SSH_HOST_KEY``; SettingsError naming the line that is wrong.

    Empty lines and ``#`` comments are skipped. A known_hosts line must name ``host`` (as
    :func:`host_key_name` spells it): a line for another host is a pasting mistake, refused.
    """
    keys = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        keys.append(_pinned_key(words, number, host_key_name(host, port)))
    return tuple(keys)


def _pinned_key(words: list[str], number: int, name: str) -> paramiko.PKey:
    where = f"{HOST_KEY_SETTING} line {number}"
    if words[0].startswith("@"):
        raise SettingsError(f"{where} has the marker {words[0]}: give the login node's own public host "
                            "key (certificate authorities and revocations are not supported).")
    if words[0] not in ALGORITHMS_OF_TYPE:
        if len(words) < 3:
            raise SettingsError(f"{where} is neither 'keytype base64' nor a known_hosts line "
                                "'host keytype base64'.")
        if not names_host(words[0], name):
            raise SettingsError(f"{where} is a known_hosts line for another host: it must name {name} "
                                "(the cluster's address and port), or give the key without a host.")
        words = words[1:]
    if len(words) < 2:
        raise SettingsError(f"{where} has a key type but no key.")
    return _public_key(words[0], words[1], where)


def _public_key(key_type: str, data: str, where: str) -> paramiko.PKey:
    if key_type not in ALGORITHMS_OF_TYPE:
        raise SettingsError(f"{where} has the key type {key_type!r}; DSSR checks "
                            f"{', '.join(ALGORITHMS_OF_TYPE)} host keys.")
    try:
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError, paramiko.SSHException, TypeError, IndexError):
        raise SettingsError(f"{where} is not a valid {key_type} public key (its base64 part does not "
                            "decode to one).") from None


def names_host(field: str, name: str) -> bool:
    """Whether a known_hosts host field (names, patterns, ``!`` negations, hashes) names ``name``."""
    matched = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if pattern.startswith("|1|"):
            hit = hmac.compare_digest(paramiko.HostKeys.hash_host(name, pattern), pattern)
        else:
            hit = _wildcard(pattern).fullmatch(name.lower()) is not None
        if hit and negated:
            return False
        matched = matched or hit
    return matched


def _wildcard(pattern: str) -> re.Pattern:
    """known_hosts' patterns: ``*`` and ``?`` only (``[`` is literal, as in ``[host]:port``)."""
    return re.compile("".join(".*" if char == "*" else "." if char == "?" else re.escape(char)
                              for char in pattern.lower()))


# Checking the key offered ---------------------------------------------------------------


class HostKeyCheck:
    """How one SSH client checks the login node's key, and what it says when it refuses it."""

    def __init__(self, host: str, port: int, pinned: tuple[paramiko.PKey, ...], known_hosts: str,
                 trust_on_first_use: bool):
        self.name = host_key_name(host, port)
        self.host, self.port = host, port
        self.pinned = pinned
        self.known_hosts = known_hosts
        self.trust_on_first_use = trust_on_first_use

    def prepare(self, client: paramiko.SSHClient) -> dict:
        """Load what the client trusts and set its policy; the ``disabled_algorithms`` to connect with."""
        if self.pinned:
            client.set_missing_host_key_policy(_Pinned(self))
            allowed = {alg for key in self.pinned for alg in ALGORITHMS_OF_TYPE[key.get_name()]}
            return {"keys": [alg for alg in KNOWN_ALGORITHMS if alg not in allowed]}
        self._load_known_hosts(client)
        client.set_missing_host_key_policy(
            _TrustOnFirstUse(self.known_hosts) if self.trust_on_first_use else _RejectUnknown(self))
        return {}

    def describe(self) -> str:
        """The init report's line: what is trusted (fingerprints only; host keys are public anyway)."""
        if self.pinned:
            return (f"pinned by {HOST_KEY_SETTING}: {', '.join(fingerprint(key) for key in self.pinned)} "
                    "(the known_hosts file is not read)")
        if self.trust_on_first_use:
            return f"checked against {self.known_hosts}; an unknown key is trusted on first use and appended"
        return f"checked against {self.known_hosts}"

    def changed(self, offered: paramiko.PKey, expected: list[paramiko.PKey]) -> str:
        """Why a key that differs from the one expected is refused (follows "Cannot reach ...: ")."""
        expected_text = " or ".join(fingerprint(key) for key in expected)
        if self.pinned:
            return (f"{self.name} offered the host key {fingerprint(offered)}, but {HOST_KEY_SETTING} pins "
                    f"{expected_text}. If the login node was reinstalled, check its new key with its "
                    f"administrator and set {HOST_KEY_SETTING} to it.")
        return (f"{self.name} offered the host key {fingerprint(offered)}, but {self.known_hosts} expects "
                f"{expected_text}. If the login node was reinstalled, check its new key with its "
                "administrator and replace that line.")

    def unknown(self, offered: paramiko.PKey) -> str:
        """Why an unknown key is refused, and the three settings that would make it known."""
        missing = "" if os.path.exists(self.known_hosts) else " (there is no such file)"
        return (f"the host key of {self.name}, {fingerprint(offered)}, is not in {self.known_hosts}"
                f"{missing}. Set one of: {HOST_KEY_SETTING} to the login node's public host key (the "
                "content of its /etc/ssh/ssh_host_ed25519_key.pub, checked with its administrator); "
                "JARVICE_SLURM_SSH_KNOWN_HOSTS to a known_hosts file that has it (ssh-keyscan -p "
                f"{self.port} {self.host}, then compare the fingerprint); or "
                "JARVICE_SLURM_SSH_TRUST_ON_FIRST_USE=true to accept the first key seen.")

    def no_pinned_type(self, timeout: float) -> str:
        """Why the login node is refused when it has no key of a pinned type (the fingerprint it
        offers otherwise is read with a second, unrestricted key exchange, as ssh-keyscan does)."""
        offered = scan_host_key(self.host, self.port, timeout)
        if offered is not None:
            return self.changed(offered, list(self.pinned))
        types = ", ".join(sorted({key.get_name() for key in self.pinned}))
        return (f"{self.name} has no host key of the types {HOST_KEY_SETTING} pins ({types}). Check its "
                f"key with its administrator and set {HOST_KEY_SETTING} to it.")

    def _load_known_hosts(self, client: paramiko.SSHClient) -> None:
        try:
            client.get_host_keys().load(self.known_hosts)
        except FileNotFoundError:
            if not self.trust_on_first_use:
                log.warning("ssh: the known_hosts file %s does not exist", self.known_hosts)
        except (OSError, paramiko.SSHException) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise ClusterUnavailable(f"The known_hosts file {self.known_hosts} cannot be read: "
                                     f"{reason.lower().rstrip('.')}.") from None


def scan_host_key(host: str, port: int, timeout: float) -> paramiko.PKey | None:
    """The host key offered to a client that takes any type; None when it cannot be read."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=timeout)
                return transport.get_remote_server_key()
            finally:
                transport.close()
    except (paramiko.SSHException, EOFError, OSError):
        return None


class HostKeyRefused(paramiko.SSHException):
    """A policy refused the key; the message says why (it follows "Cannot reach ...: ")."""


class _Pinned(paramiko.MissingHostKeyPolicy):
    """Every key is checked here (the client holds none): it must be one of the pinned keys."""

    def __init__(self, check: HostKeyCheck):
        self.check = check

    def missing_host_key(self, client, hostname, key):
        if any(key.asbytes() == pinned.asbytes() for pinned in self.check.pinned):
            return
        raise HostKeyRefused(self.check.changed(key, list(self.check.pinned)))


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, check: HostKeyCheck):
        self.check = check

    def missing_host_key(self, client, hostname, key):
        known = client.get_host_keys().lookup(hostname)
        if known:  # the file knows the host, but with another key type than the one negotiated
            raise HostKeyRefused(self.check.changed(key, list(known.values())))
        raise HostKeyRefused(self.check.unknown(key))


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host's key and append it to the known_hosts file."""

    def __init__(self, path: str):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _known_hosts_lock:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            try:
                with open(self.path, encoding="utf-8") as handle:
                    known = line in handle.read().splitlines(keepends=True)
            except FileNotFoundError:
                known = False
            if not known:
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.warning("ssh: trusted the host key of %s on first use (%s), appended to %s",
                    hostname, fingerprint(key), self.path)
