"""The parts of a batch script that do not depend on the scheduler: where the job's files are,
the job script written next to its output, and the success marker's verdict.

A scheduler's batch script (Slurm's under srun, Grid Engine's) starts with :func:`preamble`,
runs ``"$dssr_files.sh"`` its own way with ``dssr_rc`` its exit status, and ends with
:func:`verdict`. The helper files (``.sh``, ``.task``, ``.rank0``: :class:`JobFiles`) are
removed when the batch script ends; the output file stays until ``/exitstatus`` collects it.
"""

import base64
import shlex

from dssr_core.remote.files import files_prefix


def preamble(script: str, scratch_dir: str, name: str, jobid_variable: str, about: str) -> list[str]:
    """The first lines: ``dssr_files`` (the job's files without suffix, by the scheduler's job id
    in ``jobid_variable``), their removal at the end, and upstream's ``script`` written to
    ``"$dssr_files.sh"``. ``about`` is one comment line on what the script does."""
    prefix = shlex.quote(files_prefix(scratch_dir, name))
    return [
        "#!/bin/bash",
        f"# Written by DSSR: {about}",
        "umask 077",
        f'dssr_files={prefix}."${jobid_variable}"',
        """trap 'rm -f -- "$dssr_files.sh" "$dssr_files.task" "$dssr_files.rank0"' EXIT""",
        heredoc('base64 -d >"$dssr_files.sh"', "DSSR_JOB_SCRIPT",
                base64.encodebytes(script.encode("utf-8")).decode("ascii")),
    ]


def heredoc(command: str, delimiter: str, body: str) -> str:
    """``command`` reading ``body`` as a quoted here-document (nothing in it is expanded)."""
    return f"{command} <<'{delimiter}'\n{body.rstrip(chr(10))}\n{delimiter}"


def verdict(marker: str | None, runner: str) -> list[str]:
    """The last lines: exit with ``dssr_rc``; with a success ``marker``, exit 0 only when rank 0's
    output (``"$dssr_files.rank0"``) has the marker line. ``runner`` names what set ``dssr_rc``."""
    if marker is None:
        return ['exit "$dssr_rc"']
    quoted = shlex.quote(marker)
    return [
        f'if grep -qxF -e {quoted} "$dssr_files.rank0"; then exit 0; fi',
        f'echo "DSSR: rank 0 did not print "{quoted}"; the job failed ({runner} exit status $dssr_rc)." >&2',
        'if [ "$dssr_rc" = 0 ]; then exit 1; fi',
        'exit "$dssr_rc"',
    ]
