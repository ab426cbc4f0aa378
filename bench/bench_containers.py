"""Speed of a JARVICE app job in a real Apptainer container on the 26.05 test cluster: from
``/submit`` to the container's first output line, split into its parts.

Prints figures; asserts nothing about time. Needs the 26.05 cluster up
(``DSSR_CLUSTER_SLURM=26.05 tests/cluster/cluster.sh up``); pushes the test images to its
registry when missing (``tests/cluster/images.sh``).

The job (slurm-cli, the ``singularity`` executor, verbose, a 64 MB ext3 overlay) writes its
progress lines; the benchmark reads its output file as it grows and times when each appears:

- start: ``/submit`` to the job's first line (Slurm schedules it and starts the step);
- pull: the init image, then the app image (``apptainer pull`` to a SIF), cold (an empty
  image cache) and cached (the same cache, the next job);
- overlay: ``apptainer overlay create --size 64``;
- exec: ``apptainer exec`` to the app's first output line.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt

sys.path.insert(0, str(Path(__file__).parent))
from slurm_bench_common import ROOT, cluster_env  # noqa: E402

from dssr_core.app import create_app  # noqa: E402
from dssr_core.facts import read_facts  # noqa: E402
from dssr_core.plugins import make_registry  # noqa: E402
from dssr_core.remote.files import job_files  # noqa: E402
from dssr_core.settings import Settings  # noqa: E402
from dssr_core.testing import ApiClient  # noqa: E402
from dssr_singularity.credentials import b64  # noqa: E402
from dssr_singularity.executor import SingularityExecutor, job_template  # noqa: E402

RUNS = 3
#: The app's command and its first line (which the "running: ..." line, showing the command, is not).
COMMAND = "echo dssr-bench-first-line-$((6 * 7))"
FIRST_LINE = "\ndssr-bench-first-line-42\n"
#: The lines that end each part, in order (the job's progress lines and the app's first line).
MARKS = (("start", "pulling the init image"), ("init pull", "pulling the app image"),
         ("app pull", "creating a 64 MB overlay"), ("overlay", "running: "), ("exec", FIRST_LINE))


def images(env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run(["bash", str(ROOT / "tests/cluster/images.sh")], capture_output=True, text=True,
                          env={**os.environ, **env})
    if done.returncode != 0:
        sys.exit(f"tests/cluster/images.sh failed:\n{done.stderr[-2000:]}")
    return dict(re.findall(r"^export (\w+)=(\S+)$", done.stdout, re.M))


def settings_for(env: dict[str, str], refs: dict[str, str], tmpdir: Path) -> Settings:
    registry, _, rest = refs["DSSR_CLUSTER_INIT_IMAGE"].partition("/")
    path, _, tag = rest.rpartition(":")
    return Settings.from_env({
        **env, "JARVICE_BAREMETAL_CONNECTOR": "slurm-cli", "JARVICE_BAREMETAL_EXECUTOR": "singularity",
        "JARVICE_SLURM_STATUS_INTERVAL": "0.5", "JARVICE_SYSTEM_REGISTRY": registry,
        "JARVICE_SYSTEM_REPO_BASE": path.rsplit("/", 1)[0], "JARVICE_IMAGES_TAG": tag,
        "JARVICE_DOCKER_USERNAME": b64(env["DSSR_CLUSTER_REGISTRY_USER"]),
        "JARVICE_DOCKER_PASSWORD": b64(env["DSSR_CLUSTER_REGISTRY_PASSWORD"]),
        "JARVICE_SINGULARITY_OVERLAY_SIZE": "64", "JARVICE_SINGULARITY_VERBOSE": "true",
        "JARVICE_SINGULARITY_TMPDIR": str(tmpdir)})


def template(env: dict[str, str], refs: dict[str, str]) -> str:
    facts = read_facts(SingularityExecutor.template_for(COMMAND, image=refs["DSSR_CLUSTER_APP_IMAGE"]))
    secret = json.dumps({"server": env["DSSR_CLUSTER_REGISTRY"],
                         "username": env["DSSR_CLUSTER_REGISTRY_USER"],
                         "password": env["DSSR_CLUSTER_REGISTRY_PASSWORD"]})
    return job_template({**facts, "JOBOBJ_DEVICES": '["exclusive=False"]', "JOBOBJ_DOCKER_SECRET": secret})


#: kirby's bearer (DSSR reads its e-mail; the signature is upstream's to check).
BEARER = jwt.encode({"email": "kirby@example.org"}, "bench-key-dssr-does-not-check-it-at-all")


def one_job(api, scratch: str, body: str) -> dict[str, float]:
    """Submit one job; the seconds of each part, read from its output file as it grows."""
    name = f"bench-ctr-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    answer = api.submit(name, body, executor="singularity", bearer=BEARER)
    if answer.status != 200:
        sys.exit(f"submit failed: {answer.text}")
    jobid = answer.json[0]
    output = Path(job_files(scratch, name, jobid).output)
    seen: dict[str, float] = {}
    deadline = started + 300
    while len(seen) < len(MARKS):
        if time.perf_counter() > deadline:
            sys.exit(f"job {jobid}: no {MARKS[len(seen)][1]!r} within 300 s in {output}")
        text = output.read_text(errors="replace") if output.exists() else ""
        for label, mark in MARKS:
            if label not in seen and mark in text:
                seen[label] = time.perf_counter()
        time.sleep(0.005)
    parts, previous = {}, started
    for label, _ in MARKS:
        parts[label] = seen[label] - previous
        previous = seen[label]
    parts["total"] = previous - started
    return parts


def show(title: str, runs: list[dict[str, float]]) -> None:
    labels = [label for label, _ in MARKS] + ["total"]
    medians = {label: statistics.median(run[label] for run in runs) for label in labels}
    figures = ", ".join(f"{label} {medians[label]:.2f} s" for label in labels)
    print(f"{title} (median of {len(runs)}): {figures}")


def main() -> None:
    env = cluster_env()
    if env.get("DSSR_CLUSTER_APPTAINER") != "1":
        sys.exit("this cluster runs the singularity test double: use DSSR_CLUSTER_SLURM=26.05")
    refs = images(env)
    tmpdir = Path(env["JARVICE_JOB_SCRATCH_DIR"]) / f"bench-containers-{uuid.uuid4().hex[:6]}"
    tmpdir.mkdir(mode=0o1777)
    tmpdir.chmod(0o1777)
    settings = settings_for(env, refs, tmpdir)
    registry = make_registry()
    connector = registry.select("connector", "slurm-cli").spec.backend.from_settings(settings)
    executor = SingularityExecutor.from_settings(settings)
    api = ApiClient.for_app(create_app(settings, connector, executor, executor_name="singularity"),
                            check_contract=False)
    connector.check()
    body = template(env, refs)
    print(f"Apptainer on Slurm {env['DSSR_CLUSTER_SLURM']}, images from {env['DSSR_CLUSTER_REGISTRY']} "
          f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    try:
        cold = []
        for _ in range(RUNS):
            for cache in tmpdir.glob("singularity-cache-*"):
                shutil.rmtree(cache)
            cold.append(one_job(api, env["JARVICE_JOB_SCRATCH_DIR"], body))
        cached = [one_job(api, env["JARVICE_JOB_SCRATCH_DIR"], body) for _ in range(RUNS)]
    finally:
        connector.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    show("cold cache  ", cold)
    show("cached      ", cached)
    print("  start: /submit to the job's first line; init/app pull: apptainer pull to a SIF; "
          "overlay: overlay create --size 64; exec: apptainer exec to the app's first line")


if __name__ == "__main__":
    main()
