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

import base64
import shlex

import attrs

from dssr_slurm.jobs import slurm_job_name

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


#: The suffix of a name's submit record (:func:`submit_record`).
RECORD_SUFFIX = ".jobid"


@attrs.frozen
class JobFiles:
    """The files of one job: ``<scratch>/jarvice_<name>.<jobid>`` plus a suffix each."""

    base: str

    @property
    def output(self) -> str:
        return self.base + ".out"

    @property
    def helpers(self) -> tuple[str, ...]:
        """The job script, the launcher and rank 0's output (removed by the batch script)."""
        return (self.base + ".sh", self.base + ".task", self.base + ".rank0")

    @property
    def record(self) -> str:
        """The name's submit record (:func:`submit_record`): it goes with the job's files."""
        return self.base.rsplit(".", 1)[0] + RECORD_SUFFIX

    def all(self) -> tuple[str, ...]:
        return (self.output, *self.helpers, self.record)


def files_prefix(scratch_dir: str, name: str) -> str:
    """``<scratch>/jarvice_<name>``; relative to the home directory when ``scratch_dir`` is empty."""
    file_name = slurm_job_name(name)
    return f"{scratch_dir.rstrip('/')}/{file_name}" if scratch_dir else file_name


def job_files(scratch_dir: str, name: str, jobid: str) -> JobFiles:
    return JobFiles(f"{files_prefix(scratch_dir, name)}.{jobid}")


def submit_record(scratch_dir: str, name: str) -> str:
    """Where slurm-cli's submit command records the id of the last job of ``name`` (``?`` while it is
    not known): ``<scratch>/jarvice_<name>.jobid``, removed with the job's files at ``/exitstatus``."""
    return files_prefix(scratch_dir, name) + RECORD_SUFFIX


def output_pattern(scratch_dir: str, name: str) -> str:
    """sbatch's ``--output``: the output file with ``%j`` for the job id (``%`` escaped)."""
    return files_prefix(scratch_dir, name).replace("%", "%%") + ".%j.out"


def batch_script(script: str, scratch_dir: str, name: str, success_marker: str | None) -> str:
    """The batch script for upstream's rendered ``script``."""
    prefix = shlex.quote(files_prefix(scratch_dir, name))
    lines = [
        "#!/bin/bash",
        "# Written by DSSR: runs the job script once per node under srun (see docs/slurm-cli.md).",
        "umask 077",
        f'dssr_files={prefix}."$SLURM_JOB_ID"',
        """trap 'rm -f -- "$dssr_files.sh" "$dssr_files.task" "$dssr_files.rank0"' EXIT""",
        _heredoc('base64 -d >"$dssr_files.sh"', "DSSR_JOB_SCRIPT",
                 base64.encodebytes(script.encode("utf-8")).decode("ascii")),
        _heredoc('cat >"$dssr_files.task"', "DSSR_LAUNCHER", LAUNCHER),
        'export DSSR_JOB_SCRIPT="$dssr_files.sh"',
    ]
    if success_marker is not None:
        lines.append('export DSSR_RANK0_OUTPUT="$dssr_files.rank0"')
    lines += [JOB_MAPPING.rstrip("\n"), SRUN, "dssr_rc=$?"]
    lines += _marker_check(success_marker) if success_marker is not None else ['exit "$dssr_rc"']
    return "\n".join(lines) + "\n"


def _heredoc(command: str, delimiter: str, body: str) -> str:
    return f"{command} <<'{delimiter}'\n{body.rstrip(chr(10))}\n{delimiter}"


def _marker_check(marker: str) -> list[str]:
    quoted = shlex.quote(marker)
    return [
        f'if grep -qxF -e {quoted} "$dssr_files.rank0"; then exit 0; fi',
        f'echo "DSSR: rank 0 did not print "{quoted}"; the job failed (srun exit status $dssr_rc)." >&2',
        'if [ "$dssr_rc" = 0 ]; then exit 1; fi',
        'exit "$dssr_rc"',
    ]
