"""What the soak runs on: a private Slurm cluster, two ``dssr serve`` replicas and Debian's haproxy
in front of them, round-robin as a Kubernetes Service. Everything here is started by the soak and
stopped by it, by process id.

The private cluster is ``tests/cluster/cluster.sh`` with a state directory, a chroot and ports of
its own, so that the soak's daemon restarts never touch the clusters the tests share. Its chroot
is copied from the shared one when that exists (a bind mount without the submounts, then
``cp -a``), else ``cluster.sh up`` builds it.
"""

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from loadgen import stop

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SH = ROOT / "tests/cluster/cluster.sh"
CHROOTS = Path("/var/cache/dssr-test-cluster")
#: ssh, slurmrestd, MariaDB, the registry, and the first of slurmctld/slurmd/slurmdbd, per private
#: cluster (below the kernel's ephemeral ports, where clients' ports come and go)
PRIVATE_PORTS = {"slurm-cli": (22124, 6924, 13424, 15124, 28817),
                 "slurmrestd": (22125, 6925, 13425, 15125, 28821)}
SERVER_KEY = "soak:soak-server-key"


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_answering(process: subprocess.Popen, url: str, seconds: float, what: str, log: Path) -> None:
    """Wait until ``url`` answers; raise when ``process`` exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}); see {log}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} in {seconds:g} s; see {log}")


class PrivateCluster:
    """A cluster.sh cluster of Slurm ``version`` for one soak, named by ``label``."""

    def __init__(self, label: str, version: str):
        ssh, rest, db, registry, ctld = PRIVATE_PORTS[label]
        self.version = version
        self.root = CHROOTS / f"soak-{label}-{version}"
        self.settings = {
            "DSSR_CLUSTER_SLURM": version,
            "DSSR_CLUSTER_DIR": f"/var/lib/dssr-soak-{label}-{version}",
            "DSSR_CLUSTER_ROOT": str(self.root),
            "DSSR_CLUSTER_SSH_PORT": str(ssh),
            "DSSR_CLUSTER_REST_PORT": str(rest),
            "DSSR_CLUSTER_DB_PORT": str(db),
            "DSSR_CLUSTER_REGISTRY_PORT": str(registry),
            "DSSR_CLUSTER_SLURMCTLD_PORT": str(ctld),
        }
        self.ports = (ssh, rest, db, registry, ctld, ctld + 1, ctld + 2)
        self.env: dict[str, str] = {}

    def run(self, command: str, capture: bool = False) -> str:
        done = subprocess.run(["bash", str(CLUSTER_SH), command], env={**os.environ, **self.settings},
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh {command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout if capture else ""

    def up(self) -> None:
        if not Path(self.settings["DSSR_CLUSTER_DIR"]).exists():
            busy = [port for port in self.ports if not port_is_free(port)]
            if busy:
                raise RuntimeError(f"the soak's private cluster needs ports {self.ports}; "
                                   f"{busy} are taken")
        self.copy_shared_root()
        started = time.perf_counter()
        self.run("up")
        print(f"  private Slurm {self.version} cluster up in {time.perf_counter() - started:.0f} s "
              f"({self.settings['DSSR_CLUSTER_DIR']})", flush=True)
        for line in self.run("env", capture=True).splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export":
                name, value = words[1].split("=", 1)
                self.env[name] = value

    def copy_shared_root(self) -> None:
        """``cp -a`` of the shared chroot, seen through a bind mount that has none of its
        submounts (its /proc, /home, state directory); nothing to do when it is there already."""
        shared = CHROOTS / f"slurm-{self.version}"
        if (self.root / ".dssr-test-cluster").exists() or not (shared / ".dssr-test-cluster").exists():
            return
        started = time.perf_counter()
        view = Path(tempfile.mkdtemp(prefix="soak-chroot-"))
        partial = self.root.with_name(self.root.name + ".copy")
        subprocess.run(["rm", "-rf", "--one-file-system", str(partial)], check=True)
        subprocess.run(["mount", "--bind", str(shared), str(view)], check=True)
        try:
            subprocess.run(["cp", "-a", f"{view}/.", str(partial)], check=True)
        finally:
            subprocess.run(["umount", str(view)], check=True)
            view.rmdir()
        partial.rename(self.root)
        print(f"  copied {shared} to {self.root} in {time.perf_counter() - started:.0f} s", flush=True)

    def slurm(self, *argv: str) -> str:
        """Root's Slurm command ``argv`` on this cluster."""
        path = f"{self.env['DSSR_CLUSTER_SLURM_BIN']}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        done = subprocess.run(argv, env={**os.environ, "PATH": path}, capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout

    def down(self) -> None:
        self.run("down")


class Replica:
    """One ``dssr serve`` on a port of its own, as one pod of the chart's Deployment."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path):
        self.name = name
        self.port = free_port()
        # Each pod has its own address, so the chart's one metrics port; here, one host: a port each.
        self.env = {**env, "DSSR_METRICS_PORT": str(free_port())}
        self.log = log_dir / f"replica-{name}.log"
        self.process: subprocess.Popen | None = None
        self.lives: list[dict] = []  # one per process: pid, started, samples [(t, rss_kb, fds)]

    def start(self) -> None:
        dssr = Path(sys.executable).with_name("dssr")
        with self.log.open("a") as log:
            self.process = subprocess.Popen([str(dssr), "serve", "--host", "127.0.0.1", "--port",
                                             str(self.port)], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        self.lives.append({"pid": self.process.pid, "started": time.monotonic(), "samples": []})
        wait_answering(self.process, f"http://127.0.0.1:{self.port}/ready", 60, f"replica {self.name}",
                       self.log)

    def kill(self) -> None:
        """``kill -9``, as a pod that is killed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop(self.process)

    def sample(self) -> None:
        """RSS (kB) and open file descriptors of the running process, from /proc."""
        if not self.process or self.process.poll() is not None:
            return
        pid = self.process.pid
        try:
            rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            return
        self.lives[-1]["samples"].append((time.monotonic(), rss, fds))


HAPROXY_CONFIG = """\
global
    maxconn 2000
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    # A connection refused (a replica just killed) goes to the other replica; a request that a
    # replica had taken when it died is answered 502 by haproxy, as a Service would reset it.
    retries 2
    option redispatch
frontend api
    bind 127.0.0.1:{port}
    default_backend dssr
backend dssr
    balance roundrobin
    option httpchk GET /ready
{servers}
"""


class LoadBalancer:
    """Debian's haproxy, round-robin over the replicas, each checked on ``/ready`` every second
    (the readiness probe, faster than the chart's 30 s so that a killed pod leaves it at once)."""

    def __init__(self, replicas: list[Replica], log_dir: Path):
        self.port = free_port()
        self.config = log_dir / "haproxy.cfg"
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check inter 1s fall 1 rise 1"
                            for r in replicas)
        self.config.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        self.log = log_dir / "haproxy.log"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def install() -> str:
        """haproxy's path; installed from Debian when missing, its service not started (as
        cluster.sh installs Slurm: a policy-rc.d that says no while apt runs)."""
        if Path("/usr/sbin/haproxy").exists():
            return "/usr/sbin/haproxy"
        print("  installing haproxy (apt-get)", flush=True)
        policy = Path("/usr/sbin/policy-rc.d")
        guard = not policy.exists()
        if guard:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=900", "-qq"]
        try:
            subprocess.run([*apt, "update"], check=True, capture_output=True)
            subprocess.run([*apt, "install", "-y", "--no-install-recommends", "haproxy"], check=True,
                           capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        finally:
            if guard:
                policy.unlink()
        return "/usr/sbin/haproxy"

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen([self.install(), "-db", "-f", str(self.config)],
                                            stdout=log, stderr=subprocess.STDOUT)
        wait_answering(self.process, f"http://127.0.0.1:{self.port}/live", 20, "haproxy", self.log)

    def stop(self) -> None:
        stop(self.process)
