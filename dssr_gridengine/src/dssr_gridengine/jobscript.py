"""The batch script DSSR submits to Grid Engine: upstream's rendered script, run once on the job's host.

It writes the job script next to the job's output (the scratch directory), exports the legacy
API's scheduler mapping (``JOB_*``, ``PROCESS_*``) from Grid Engine's variables and runs the
script; with a success marker, its output is also kept and the job exits 0 only when it has the
marker line (:func:`dssr_core.remote.jobscript.verdict`).
"""

from dssr_core.remote.jobscript import preamble, verdict

#: The legacy API's scheduler mapping, from Grid Engine's job environment (one host).
JOB_MAPPING = """\
export JOB_JOBID="$JOB_ID"
export JOB_JOB_NODELIST="$HOSTNAME"
export JOB_JOB_FORMATED_NODELIST="$HOSTNAME"
export JOB_NNODES=1
export JOB_NTASKS="${NSLOTS:-1}"
export JOB_SUBMIT_DIR="$SGE_O_WORKDIR"
export JOB_GPUS_PER_NODE=0
export PROCESS_PROCID=0
export PROCESS_NODENAME="$HOSTNAME"
"""


def batch_script(script: str, scratch_dir: str, name: str, success_marker: str | None) -> str:
    """The batch script for upstream's rendered ``script``."""
    lines = [*preamble(script, scratch_dir, name, "JOB_ID", "runs the job script on the job's host "
                       "(see docs/gridengine.md)."), JOB_MAPPING.rstrip("\n")]
    if success_marker is None:
        lines.append('/bin/bash "$dssr_files.sh"')
        lines.append("dssr_rc=$?")
    else:
        lines.append('/bin/bash "$dssr_files.sh" | tee "$dssr_files.rank0"')
        lines.append('dssr_rc="${PIPESTATUS[0]}"')
    lines += verdict(success_marker, "the job script's")
    return "\n".join(lines) + "\n"
