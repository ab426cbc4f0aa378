"""One submission as Grid Engine is asked to run it: JARVICE's devices as ``qsub`` options, or a
refusal with a sentence where Grid Engine (or this site) has no equivalent.

- nodes: 1 only; Grid Engine starts a job's script on one host (a job spanning hosts starts its
  other ranks itself, through a parallel environment and ``qrsh -inherit``, which JARVICE's
  scripts do not)
- cores: ``-pe <JARVICE_GRIDENGINE_PE> <cores>`` when more than one
- memory (GB per node): ``-l <JARVICE_GRIDENGINE_MEMORY_RESOURCE>=<MB per slot>M``
- walltime: ``-l h_rt=<seconds>``
- GPUs: ``-l <JARVICE_GRIDENGINE_GPU_RESOURCE>=<n>``, refused when the setting is not set
- exclusive: ``-l <JARVICE_GRIDENGINE_EXCLUSIVE_RESOURCE>=true`` when set, else not asked
- partition: the queue, ``-q <queue>``
- licenses and ``sbatch_`` devices: refused (they are Slurm's words)
- held: ``-h``; an interactive job's service port and job number: the job context (``-ac``)
- always ``-notify``: ``qdel`` then sends the execd's notify signal first (TERM where the site sets
  ``execd_params NOTIFY_KILL=TERM``) and KILL after the queue's ``notify`` time
"""

import re

from dssr_core.errors import InvalidRequest
from dssr_core.models import Submission
from dssr_core.remote.files import files_prefix
from dssr_core.remote.jobs import JOB_NUMBER_KEY, SERVICE_PORT_KEY, scheduler_job_name
from dssr_gridengine.settings import GridEngineOptions

#: What a queue name may be (Grid Engine's object names).
_QUEUE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")


def qsub_arguments(submission: Submission, scratch_dir: str, options: GridEngineOptions) -> list[str]:
    """qsub's arguments for ``submission`` (unquoted: the caller quotes them); InvalidRequest for a
    device Grid Engine cannot honour here."""
    facts = submission.facts
    if facts.nodes != 1:
        raise InvalidRequest(f"The gridengine connector runs a job on one host; this job asks for "
                             f"{facts.nodes} nodes. Ask for one node and its cores (slots) instead.")
    if facts.licenses:
        raise InvalidRequest("Device licenses is Slurm's; Grid Engine counts licenses as consumable "
                             "resources, which the gridengine connector does not ask for.")
    if facts.scheduler_options:
        option = facts.scheduler_options[0][0]
        raise InvalidRequest(f"Device sbatch_{option} is an sbatch option; the gridengine connector takes "
                             "no sbatch_ devices.")
    if facts.gpus and options.gpu_resource is None:
        raise InvalidRequest(f"This job asks for {facts.gpus} GPUs, and Grid Engine has no standard GPU "
                             "resource: the administrator names the site's with "
                             "JARVICE_GRIDENGINE_GPU_RESOURCE.")
    if facts.partition is not None and not _QUEUE.match(facts.partition):
        raise InvalidRequest(f"The partition {facts.partition!r:.40} is not a Grid Engine queue name.")
    output = files_prefix(scratch_dir, submission.name) + ".$JOB_ID.out"
    arguments = ["-terse", "-S", "/bin/bash", "-N", scheduler_job_name(submission.name),
                 "-o", output, "-j", "y", "-notify"]
    if facts.cores > 1:
        arguments += ["-pe", options.parallel_environment, str(facts.cores)]
    resources = []
    if facts.memory_gb:
        per_slot = max(1, facts.memory_gb * 1024 // max(facts.cores, 1))
        resources.append(f"{options.memory_resource}={per_slot}M")
    if facts.walltime_s:
        resources.append(f"h_rt={int(facts.walltime_s)}")
    if facts.gpus:
        resources.append(f"{options.gpu_resource}={int(facts.gpus)}")
    if facts.exclusive and options.exclusive_resource is not None:
        resources.append(f"{options.exclusive_resource}=true")
    if resources:
        arguments += ["-l", ",".join(resources)]
    if facts.partition is not None:
        arguments += ["-q", facts.partition]
    if submission.held:
        arguments.append("-h")
    if submission.service_port is not None:
        arguments += ["-ac", f"{SERVICE_PORT_KEY}={int(submission.service_port)},"
                             f"{JOB_NUMBER_KEY}={int(submission.number)}"]
    return arguments
