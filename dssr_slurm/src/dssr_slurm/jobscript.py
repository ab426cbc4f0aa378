"""The batch script DSSR submits: upstream's rendered script run once per node under srun.

The batch script writes the job script and a small per-node launcher next to the job's output
(the scratch directory, which every node must see), exports the scheduler mapping of the
legacy API (``JOB_*`` once for the job, ``PROCESS_*`` per node) and runs::

    srun -N $SLURM_NNODES -n $SLURM_NNODES --ntasks-per-node=1 /bin/bash <launcher>

With a success marker (JARVICE apps print ``JARVICE_CMD_SUCCESS``), rank 0's output is also
kept in a file and the job exits 0 only when that output has the marker line; without one, the
job exits with srun's status (the script's). The helper files are removed when the batch
script ends; the output file stays until ``/exitstatus`` collects it.

Shared by every Slurm connector: slurmrestd submits the same script.
"""

from dssr_core.remote.files import files_prefix
from dssr_core.remote.jobscript import heredoc, preamble, verdict

#: The per-node launcher: the values that differ per node, then the job script.
LAUNCHER = """\
export PROCESS_PROCID="$SLURM_PROCID"
export PROCESS_NODENAME="$SLURMD_NODENAME"
if [ "$SLURM_PROCID" = 0 ] && [ -n "${DSSR_RANK0_OUTPUT:-}" ]; then
    /bin/bash "$DSSR_JOB_SCRIPT" | tee "$DSSR_RANK0_OUTPUT"
    exit "${PIPESTATUS[0]}"
fi
exec /bin/bash "$DSSR_JOB_SCRIPT"
"""

#: The job's values of the legacy scheduler mapping, exported by the batch script.
JOB_MAPPING = """\
export JOB_JOBID="$SLURM_JOB_ID"
export JOB_JOB_NODELIST="$SLURM_JOB_NODELIST"
JOB_JOB_FORMATED_NODELIST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | paste -sd ' ')
export JOB_JOB_FORMATED_NODELIST
export JOB_NNODES="$SLURM_JOB_NUM_NODES"
export JOB_NTASKS="$SLURM_NTASKS"
export JOB_SUBMIT_DIR="$SLURM_SUBMIT_DIR"
export JOB_GPUS_PER_NODE="${SLURM_GPUS_PER_NODE:-0}"
"""

SRUN = 'srun -N "$SLURM_NNODES" -n "$SLURM_NNODES" --ntasks-per-node=1 /bin/bash "$dssr_files.task"'


def output_pattern(scratch_dir: str, name: str) -> str:
    """sbatch's ``--output``: the output file with ``%j`` for the job id (``%`` escaped)."""
    return files_prefix(scratch_dir, name).replace("%", "%%") + ".%j.out"


def batch_script(script: str, scratch_dir: str, name: str, success_marker: str | None) -> str:
    """The batch script for upstream's rendered ``script``."""
    lines = [
        *preamble(script, scratch_dir, name, "SLURM_JOB_ID",
                  "runs the job script once per node under srun (see docs/slurm-cli.md)."),
        heredoc('cat >"$dssr_files.task"', "DSSR_LAUNCHER", LAUNCHER),
        'export DSSR_JOB_SCRIPT="$dssr_files.sh"',
    ]
    if success_marker is not None:
        lines.append('export DSSR_RANK0_OUTPUT="$dssr_files.rank0"')
    lines += [JOB_MAPPING.rstrip("\n"), SRUN, "dssr_rc=$?", *verdict(success_marker, "srun")]
    return "\n".join(lines) + "\n"
