"""Helpers of the Grid Engine tests that are not fixtures: the cluster script and its settings,
and Grid Engine's commands run over the cluster's sshd."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).resolve().parents[1] / "cluster" / "cluster.sh"
#: The names of these tests' jobs start with one of these (jarvice_ is the connector's prefix).
TEST_JOB_PREFIXES = ("jarvice_contract-", "jarvice_ge-")


def cluster(command: str, timeout: float = 900) -> str:
    """``DSSR_CLUSTER_SCHEDULER=gridengine cluster.sh <command>``; fail the test when it fails."""
    done = subprocess.run(["bash", str(CLUSTER_SH), command], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DSSR_CLUSTER_SCHEDULER": "gridengine"})
    if done.returncode != 0:
        pytest.fail(f"DSSR_CLUSTER_SCHEDULER=gridengine cluster.sh {command} failed ({done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


def in_root(env: dict[str, str], *command: str, user: str = "jarvice") -> subprocess.CompletedProcess:
    """A Grid Engine command as ``user`` over the cluster's sshd, as DSSR runs them."""
    keys = Path(env["DSSR_CLUSTER_DIR"]) / "keys"
    known_hosts = env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]
    port = env["JARVICE_SLURM_CLUSTER_PORT"]
    return subprocess.run(["ssh", "-F", "/dev/null", "-i", str(keys / user), "-p", port,
                           "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                           "-o", "LogLevel=ERROR", f"{user}@127.0.0.1", shlex.join(command)],
                          capture_output=True, text=True, timeout=60)
