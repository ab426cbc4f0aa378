"""JARVICE app jobs in real containers: Apptainer on the 26.05 cluster's node, images pulled with
credentials from the cluster's registry, through DSSR's HTTP API with the chart's environment.

No test double: ``cluster.sh`` installs Apptainer in the 26.05 root and runs its slurmd in a
pivot_root mount namespace, ``tests/cluster/images.sh`` builds the app image and the init image
stand-in offline with podman and pushes them to the cluster's registry (TLS, htpasswd). The jobs
of a module run side by side where they can (one pull per image per module, then Apptainer's
cache), on slurm-cli and on slurmrestd.
"""

import base64
import fcntl
import json
import os
import pwd
import random
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from chart_environment import SERVER_KEY, chart_environment
from headless_chromium import HeadlessChromium
from oidc_fixtures import SERVICE_CLIENT
from slurm_helpers import SHARED, squeue_field, wait_running

from dssr_core.facts import read_facts
from dssr_core.remote.files import job_files
from dssr_core.testing import wait_until
from dssr_core.testing.plugin import DssrServer, find_free_port, wait_serving
from dssr_singularity.credentials import b64
from dssr_singularity.executor import SingularityExecutor, job_template

pytest_plugins = ["oidc_fixtures"]
pytestmark = [pytest.mark.slow, pytest.mark.slurm_versions("26.05")]
IMAGES_SH = Path(__file__).resolve().parents[2] / "tests" / "cluster" / "images.sh"
#: Interactive jobs hold their node alone, so they start once the module's other jobs end.
INTERACTIVE_START = 480


@pytest.fixture(scope="module")
def images(cluster_env):
    """The cluster's settings with the app and init images (DSSR_CLUSTER_APP_IMAGE, _INIT_IMAGE),
    built and pushed to its registry once."""
    assert cluster_env["DSSR_CLUSTER_APPTAINER"] == "1", "this cluster runs the singularity double"
    assert not (Path(cluster_env["DSSR_CLUSTER_BIN"]) / "singularity").exists(), "the double is on PATH"
    done = subprocess.run(["bash", str(IMAGES_SH)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **cluster_env})
    assert done.returncode == 0, done.stderr[-3000:]
    refs = dict(re.findall(r"^export (\w+)=(\S+)$", done.stdout, re.M))
    return {**cluster_env, **refs}


def registry_values(images) -> dict[str, str]:
    """The chart's settings of the init image: its registry, path and tag, and its credentials."""
    init = images["DSSR_CLUSTER_INIT_IMAGE"]
    registry, _, rest = init.partition("/")
    path, _, tag = rest.rpartition(":")
    return {"JARVICE_SYSTEM_REGISTRY": registry, "JARVICE_SYSTEM_REPO_BASE": path.rsplit("/", 1)[0],
            "JARVICE_IMAGES_TAG": tag,
            "JARVICE_DOCKER_USERNAME": b64(images["DSSR_CLUSTER_REGISTRY_USER"]),
            "JARVICE_DOCKER_PASSWORD": b64(images["DSSR_CLUSTER_REGISTRY_PASSWORD"])}


@pytest.fixture(scope="module")
def dirs(cluster_env):
    """A global scratch directory and a JARVICE_SINGULARITY_TMPDIR of this module's own."""
    base = Path(cluster_env["JARVICE_JOB_SCRATCH_DIR"]) / f"containers-{random.randint(10**5, 10**6 - 1)}"
    made = {"global": base / "global", "tmp": base / "tmp"}
    for path in made.values():
        path.mkdir(parents=True)
        path.chmod(0o1777)
    (made["global"] / "shared.txt").write_text("from the global scratch\n")
    yield made
    shutil.rmtree(base)


@pytest.fixture(scope="module")
def provider(cluster_env, oidc_provider_factory):
    """Keycloak's part: the service account's tokens and kirby's bearer, signed with the key the
    cluster trusts."""
    clients = {SERVICE_CLIENT: {"claims": {"sun": "jarvice", "preferred_username": "jarvice"}},
               "portal-kirby": {"claims": {"sun": "kirby", "preferred_username": "kirby",
                                           "email": "kirby@example.org"}}}
    return oidc_provider_factory(clients, signing_key=cluster_env["DSSR_CLUSTER_OIDC_KEY"])


@pytest.fixture(scope="module")
def servers(cluster_env, images, dirs, provider, tmp_path_factory):
    """Two ``dssr serve`` with the chart's environment: slurm-cli with a 64 MB ext3 overlay, the
    global scratch and the module's JARVICE_SINGULARITY_TMPDIR; slurmrestd with --writable-tmpfs,
    verbose, and the proxy for interactive jobs."""
    logs = tmp_path_factory.mktemp("containers")
    common = {**registry_values(images), "JARVICE_SLURM_STATUS_INTERVAL": "0.5",
              "JARVICE_KEYCLOAK_TOKEN_URL": provider.token_url,
              "JARVICE_KEYCLOAK_CLIENT_SECRET": provider.secrets[SERVICE_CLIENT],
              "JARVICE_SLURM_SSH_KNOWN_HOSTS": cluster_env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]}
    cli = DssrServer(chart_environment(
        cluster_env, **common, JARVICE_SLURM_OVERLAY_SIZE="64", JARVICE_SINGULARITY_TMPDIR=str(dirs["tmp"]),
        JARVICE_JOB_GLOBAL_SCRATCH_DIR=str(dirs["global"])), logs / "cli.log", auth=SERVER_KEY)
    rest = DssrServer(chart_environment(
        cluster_env, **common, JARVICE_SLURM_CLIENT="slurmrestd_client",
        JARVICE_SLURMRESTD_URL=f"http://127.0.0.1:{cluster_env['JARVICE_SLURMRESTD_PORT']}",
        JARVICE_SLURM_OVERLAY_SIZE="0", JARVICE_SINGULARITY_VERBOSE="true",
        DSSR_SINGULARITY_SERVICE_PORT=str(find_free_port())), logs / "rest.log", auth=SERVER_KEY)
    rest.env["JARVICE_JOBS_DOMAIN"] = f"http://127.0.0.1:{rest.port}/job$"
    cli.start(), rest.start()
    yield {"cli": cli, "rest": rest, "bearer": provider.token("portal-kirby")}
    cli.stop(), rest.stop()


def docker_secret(cluster_env, password=None) -> str:
    return json.dumps({"server": f"https://{cluster_env['DSSR_CLUSTER_REGISTRY']}",
                       "username": cluster_env["DSSR_CLUSTER_REGISTRY_USER"],
                       "password": password or cluster_env["DSSR_CLUSTER_REGISTRY_PASSWORD"]})


def ctr_secret(cluster_env) -> str:
    user, password = cluster_env["DSSR_CLUSTER_REGISTRY_USER"], cluster_env["DSSR_CLUSTER_REGISTRY_PASSWORD"]
    config = {"auths": {cluster_env["DSSR_CLUSTER_REGISTRY"]: {"auth": b64(f"{user}:{password}")}}}
    return base64.b64encode(json.dumps(config).encode()).decode()


def app_job(images, command: str, **facts) -> str:
    """Upstream's template of a job of the app image, with its registry's credentials in the
    job's JOBOBJ_DOCKER_SECRET, sharing the node, unless ``facts`` say otherwise."""
    base = read_facts(SingularityExecutor.template_for(command, image=images["DSSR_CLUSTER_APP_IMAGE"]))
    return job_template({**base, "JOBOBJ_DEVICES": json.dumps(SHARED),
                         "JOBOBJ_DOCKER_SECRET": docker_secret(images), **facts})


class Job:
    def __init__(self, servers: dict, which: str, label: str, template: str, number: int = 1):
        self.server = servers[which]
        self.api = self.server.api()
        self.name = f"cli-ctr-{label}-{random.randint(10**5, 10**6 - 1)}"
        answer = self.api.submit(self.name, template, executor="singularity", number=number,
                                 bearer=servers["bearer"])
        assert answer.status == 200, answer.text
        self.jobid, self.script = answer.json
        self.ref = {"name": self.name, "number": number, "jobid": self.jobid}

    def ended(self) -> bool:
        return all([self.name, self.jobid] not in self.api.get(p).json for p in ("/queued", "/running"))

    def result(self, timeout: float = 180) -> tuple[int, str, str]:
        """rc, the job's output and the banner, once it ended. The output is read from its file as
        root where DSSR gives none (slurmrestd, whose chart default is no output access)."""
        wait_until(self.ended, timeout, interval=0.5, what=f"{self.name} to end")
        rc, _, (output, banner) = self.api.post("/exitstatus", self.ref).json
        if not output:
            files = job_files(self.server.env["JARVICE_SLURM_SCRATCH_DIR"], self.name, self.jobid)
            output = Path(files.output).read_text()
        return rc, output, banner


def test_app_and_init_images_pulled_with_each_credential_source_overlay_and_scratch(
        cluster_env, images, dirs, servers):
    """slurm-cli (its jobs run as the service account, as the chart's ssh_client does): the init
    image with the settings' credentials, the app image with the job's
    JOBOBJ_DOCKER_SECRET or JOBOBJ_CTRSECRET; the app writes to its 64 MB ext3 overlay, reads the
    global scratch, writes to the job scratch (its working directory), and its exit code comes back."""
    command = ("cat /opt/dssr-app/marker; echo kept > /opt/written && cat /opt/written; "
               f"cat {dirs['global']}/shared.txt; pwd > where-$SLURM_JOB_ID.txt")
    by_secret = Job(servers, "cli", "docker-secret",
                    app_job(images, command, JOBOBJ_DOCKER_SECRET=docker_secret(cluster_env)))
    by_ctr = Job(servers, "cli", "ctrsecret",
                 app_job(images, command, JOBOBJ_DOCKER_SECRET="",
                         JOBOBJ_CTRSECRET=ctr_secret(cluster_env)))
    failing = Job(servers, "cli", "exit3", app_job(images, "echo about to fail; exit 3",
                                        JOBOBJ_DOCKER_SECRET=docker_secret(cluster_env)))
    scratch = Path(cluster_env["JARVICE_JOB_SCRATCH_DIR"])
    for job in (by_secret, by_ctr):
        rc, output, banner = job.result()
        assert rc == 0, output
        assert "dssr test app 1\nkept\nfrom the global scratch\n" in output, output
        assert "JARVICE_CMD_SUCCESS" in output.splitlines()
        where = scratch / f"where-{job.jobid}.txt"
        assert where.read_text().strip() == str(scratch)
        where.unlink()
        assert cluster_env["DSSR_CLUSTER_REGISTRY_PASSWORD"] not in job.script
        assert "export JARVICE_SINGULARITY_OVERLAY_SIZE=64\n" in job.script
    rc, output, banner = failing.result()
    assert rc == 1 and "FAILED" in banner
    assert "about to fail" in output and "JARVICE_CMD exited with code 3" in output
    # JARVICE_SINGULARITY_TMPDIR held the pulls' cache and the job's work directory, removed at the end.
    tmp = dirs["tmp"]
    assert [path.name for path in tmp.glob("singularity-cache-*")] == ["singularity-cache-jarvice"]
    assert not list(tmp.glob("dssr-singularity.*"))


def test_a_wrong_password_fails_the_pull_and_is_shown_nowhere(cluster_env, images, servers):
    """The app image's password is wrong: the job FAILS with the pull's error in its output; the
    password is not in the output, the returned script, DSSR's log or any process's arguments (what
    ``ps`` shows, read from /proc while the job runs, the app image's pull seen among them)."""
    wrong = f"wrong-{random.randint(10**8, 10**9)}"
    pulls, seen_in_ps = set(), []
    done = threading.Event()

    def watch_ps():
        while not done.is_set():
            for pid in os.listdir("/proc"):
                try:
                    line = cmdline(pid) if pid.isdigit() else ""
                except OSError:
                    continue
                if " pull " in line and "app.sif" in line:
                    pulls.add(line)
                if wrong in line:
                    seen_in_ps.append(line)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_ps, daemon=True)
    watcher.start()
    try:
        job = Job(servers, "cli", "wrong-password",
                  app_job(images, "echo never", JOBOBJ_DOCKER_SECRET=docker_secret(cluster_env, wrong)))
        rc, output, banner = job.result()
    finally:
        done.set()
        watcher.join()
    assert rc == 1 and "FAILED" in banner, output
    assert "cannot pull the app image" in output
    assert re.search(r"unauthorized|authentication required", output, re.I), output
    assert "never" not in output.splitlines()
    for text in (output, job.script, servers["cli"].log()):
        assert wrong not in text
    assert b64(wrong) not in job.script
    assert pulls, "the watcher never saw the app image's pull run"
    assert not seen_in_ps


def cmdline(pid) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def container_pids(marker: str) -> set[int]:
    """Kirby's Apptainer processes of the container whose command line holds ``marker``: its
    runtime parent and all it runs (the app, squashfuse_ll, fuse2fs, fuse-overlayfs)."""
    parents = {}
    args = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args[int(entry.name)] = cmdline(entry.name)
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    runtimes = {parents[pid] for pid, line in args.items() if marker in line and pid in parents}
    runtimes = {pid for pid in runtimes if args.get(pid, "").startswith("Apptainer runtime parent")}
    return runtimes | {pid for pid, parent in parents.items() if parent in runtimes}


def test_terminate_leaves_no_process_of_the_container(images, servers):
    marker = str(random.randint(10**6, 10**7))
    job = Job(servers, "rest", "terminate", app_job(images, f"exec sleep {marker}"))
    wait_until(lambda: any("squashfuse_ll" in cmdline(pid) for pid in container_pids(marker)),
               120, interval=0.5, what="the container to run")
    pids = container_pids(marker)
    assert len(pids) >= 3, pids  # the runtime parent, the app, squashfuse_ll
    assert not any("fuse2fs" in cmdline(pid) for pid in pids), "--writable-tmpfs mounts no ext3 overlay"
    answer = job.api.post("/terminate", job.ref)
    assert answer.status == 200, answer.text
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 60, interval=0.5,
               what="the container's processes to end")
    assert not container_pids(marker)


@pytest.fixture
def kirby_env_files(cluster_env):
    """Kirby's $HOME/.jarvice_custom_env and .jarvice_cuda_env, removed after the test; the homes
    are the host's, so test runs of other checkouts wait for each other here. (cluster.sh up
    makes the user: on a new machine there is no kirby before.)"""
    owner = pwd.getpwnam("kirby")
    files = {name: Path(owner.pw_dir) / name for name in (".jarvice_custom_env", ".jarvice_cuda_env")}
    with open("/tmp/dssr-test-kirby-jarvice-env.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        files[".jarvice_custom_env"].write_text("export DSSR_TEST_CUSTOM_ENV=from-custom-env\n")
        files[".jarvice_cuda_env"].write_text("export DSSR_TEST_CUDA_ENV=from-cuda-env\n")
        for path in files.values():
            os.chown(path, owner.pw_uid, owner.pw_gid)
        try:
            yield files
        finally:
            for path in files.values():
                path.unlink(missing_ok=True)


def test_the_users_custom_and_cuda_env_are_sourced_and_nv_reaches_apptainer(images, servers, kirby_env_files):
    """With $HOME/.jarvice_cuda_env the container runs with --nv (APPTAINER_NV): on this node
    without a GPU, Apptainer's verbose output says it looked for NVIDIA's persistenced socket,
    and the job still runs, writing to its --writable-tmpfs (slurmrestd's overlay size 0). Upstream's
    own singularity line is unchanged."""
    job = Job(servers, "rest", "cuda-env",
              app_job(images, "echo custom=$DSSR_TEST_CUSTOM_ENV cuda=$DSSR_TEST_CUDA_ENV; "
                              "echo in-tmpfs > /opt/written && cat /opt/written"))
    rc, output, _ = job.result()
    assert rc == 0, output
    assert "custom=from-custom-env cuda=from-cuda-env\nin-tmpfs\n" in output
    assert "creating a" not in output and "export JARVICE_SINGULARITY_OVERLAY_SIZE=0\n" in job.script
    assert re.search(r"VERBOSE: +persistenced socket .* not found", output), output
    assert 'singularity "$SV_FLAG" exec "${writable[@]}"' in job.script


def test_an_interactive_app_in_the_container_opens_in_chromium_through_dssrs_proxy(
        images, servers, chromium):
    """The app image's web app (busybox httpd), served from inside the container on the job's
    service port, is opened by headless Chromium through DSSR's proxy; the job holds its node alone."""
    number = random.randint(100_000, 999_999)
    job = Job(servers, "rest", "interactive",
              app_job(images, "exec dssr-app-web", JOBOBJ_INTERACTIVE="True"), number=number)
    try:
        wait_running(job.api, job.ref, timeout=INTERACTIVE_START)
        assert squeue_field(job.jobid, "%h") in ("NO", "EXCLUSIVE"), "an interactive job holds its node alone"
        url = job.api.post(f"/request/{job.name}/{number}/{job.jobid}/info", {"qs": {}}).json["url"]
        assert url == f"{servers['rest'].url}/job{number}"
        wait_serving(url + "/", 90, 10)
        with HeadlessChromium() as browser:
            browser.navigate(url + "/")
            text = browser.evaluate("document.getElementById('app').innerText")
            title = browser.evaluate("document.title")
        assert (title, text) == ("DSSR container app", "served from inside the container")
    finally:
        job.api.post("/terminate", job.ref)


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium, installed when missing."""
    if subprocess.run(["dpkg", "-s", "chromium"], capture_output=True).returncode != 0:
        done = subprocess.run(["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", "chromium"],
                              capture_output=True, text=True, timeout=1200,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
