"""Local processes: the job wrapper, and telling a live job from one that is gone.

Every job runs as ``bash -c WRAPPER`` in its own session (so its process group id is the
wrapper's pid). The wrapper runs the job's script, then writes ``<rc> <end time>`` to
``.exit`` in the job's folder (to a temporary file first, then ``mv``), so that the true exit
code survives a restart of the server. It traps TERM only to outlive its script and record
how it ended (and not to start the script when TERM came first); the script itself keeps the
default TERM action.
"""

import collections
import os
import subprocess
from pathlib import Path

SCRIPT = "job.sh"
OUTPUT = "output"
EXIT_FILE = ".exit"

WRAPPER = r"""trap 'terminated=143' TERM
if [ "$1" = timer ]; then
    printf 'dssr dummy: timer mode, sleeping %s s instead of running the script\n' "$2"
    if [ -z "$terminated" ] && sleep "$2"; then rc=$3; else rc=${terminated:-$?}; fi
    if [ "$rc" = 0 ] && [ -n "$4" ]; then printf '%s\n' "$4"; fi
elif [ -z "$terminated" ]; then
    bash ./job.sh
    rc=$?
else
    rc=143  # terminated before the script started: it does not start
fi
umask 077
printf '%s %s\n' "$rc" "${EPOCHREALTIME/,/.}" > .exit.tmp && mv -f .exit.tmp .exit
exit "$rc"
"""

HAVE_PROC = os.path.exists("/proc/self/stat")
#: Whether a child's exit can be seen without reaping it (its pid, hence its process
#: group id, stays reserved until we reap it, so the group can be killed safely).
CAN_PEEK = hasattr(os, "waitid") and hasattr(os, "WNOWAIT")


def launch(job_dir: Path, tag: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start the wrapper in ``job_dir`` in a new session; output appended to ``output``.

    ``args`` is ``[]`` to run ``job.sh``, or ``["timer", seconds, rc, marker]``.
    """
    with open(job_dir / OUTPUT, "ab", opener=_private) as output:
        return subprocess.Popen(
            ["bash", "-c", WRAPPER, tag, *args], cwd=job_dir, env=env,
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)


def _private(path, flags):
    return os.open(path, flags, 0o600)


def process_start(pid: int, *, zombie_ok: bool = False) -> int | None:
    """The start time of ``pid`` (clock ticks since boot); None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X", b"x") and not zombie_ok:
        return None
    return int(fields[19])


def is_alive(pid: int, start: int | None) -> bool:
    """Whether ``pid`` still is the process that had start time ``start``.

    Without /proc (not Linux) this can only ask whether some process of ours has the pid.
    """
    if HAVE_PROC:
        current = process_start(pid)
        return current is not None and (start is None or current == start)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def child_exited(proc: subprocess.Popen) -> bool:
    """Whether our child ended. With :data:`CAN_PEEK` it is left unreaped (a zombie)."""
    if CAN_PEEK:
        try:
            return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True
    return proc.poll() is not None


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def read_exit_file(job_dir: Path) -> tuple[int | None, float | None]:
    """``(exit code, end time)`` that the wrapper wrote, or ``(None, None)``."""
    path = job_dir / EXIT_FILE
    try:
        text = path.read_text(encoding="ascii", errors="replace").split()
        code = int(text[0])
    except (OSError, ValueError, IndexError):
        return None, None
    try:
        ended = float(text[1])
    except (ValueError, IndexError):
        try:
            ended = path.stat().st_mtime
        except OSError:
            ended = None
    return code, ended


def returncode_as_exit_code(returncode: int) -> int:
    """A Popen return code as a shell would show it: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def output_summary(path: Path, lines: int, marker: str | None) -> tuple[str, bool]:
    """The last ``lines`` lines of the output and whether a line is ``marker`` (stripped)."""
    wanted = marker.encode() if marker else None
    found = False
    kept: collections.deque[bytes] = collections.deque(maxlen=lines)
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if wanted is not None and not found and line.strip() == wanted:
                    found = True
                kept.append(line)
    except FileNotFoundError:
        return "", False
    return b"".join(kept).decode("utf-8", errors="replace"), found


def boot_id() -> str:
    """An id of the running kernel boot: processes recorded under another one are gone."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"
