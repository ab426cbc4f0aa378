"""dssr_local: runs each job as a local process (an example connector).

Everything about a job is in files of its folder, ``<LOCAL_JOB_DIR>/<jobid>/``, so that a
restarted DSSR knows every job: ``job.json`` (name, success marker), ``held`` while held,
``started`` (the wrapper's pid, which is the job's process group), ``cancelled``, ``output``
and ``rc`` (the script's exit code). The wrapper and the job's processes hold an flock on
``lock`` while any of them lives: the job runs exactly as long as the lock is taken.
At most ``LOCAL_SLOTS`` jobs run at once; the others wait, queued, and start (oldest first)
when DSSR is next asked anything, as upstream asks every few seconds.
"""

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import dssr_core
from dssr_core.connector import check_retried_submit
from dssr_core.errors import ClusterUnavailable, InvalidRequest, JobNotFound, NotAvailable
from dssr_core.models import (
    ConnectorSpec,
    ExitStatus,
    JobListing,
    RunStatus,
    SubmitResult,
    script_fingerprint,
)

JOB_DIR = dssr_core.Setting("LOCAL_JOB_DIR", "where the jobs' folders are kept (across restarts)",
                            kind="directory", default_text="`~/.dssr-local`")
SLOTS = dssr_core.Setting("LOCAL_SLOTS", "jobs that run at once; the others wait in /queued",
                          kind="int", minimum=1, default_text="the number of CPUs")
#: Seconds a terminated job has between TERM and KILL.
KILL_GRACE_S = 3.0
#: Runs the script, then records its exit code. The trap lets the wrapper outlive a TERM.
WRAPPER = "trap true TERM; bash job.sh >>output 2>&1; echo $? >rc.tmp && mv rc.tmp rc"


class LocalConnector(dssr_core.Connector):
    def __init__(self, settings):
        self.root = Path(settings.read(JOB_DIR) or Path.home() / ".dssr-local")
        self.root.mkdir(parents=True, exist_ok=True)
        self.slots = settings.read(SLOTS) or os.cpu_count() or 1
        self.lock = threading.Lock()

    # Jobs -------------------------------------------------------------------------------

    def submit(self, submission):
        with self.lock:
            for jobid, folder in self._jobs():
                if self._meta(folder)["name"] == submission.name and self._state(folder) in (
                        "PENDING", "RUNNING"):
                    kept = (folder / "job.sh").read_text()
                    check_retried_submit(submission.name, jobid, script_fingerprint(kept),
                                         submission.fingerprint)
                    return SubmitResult(jobid, kept)  # a retried submit
            jobid = self._next_id()
            folder = self.root / jobid
            folder.mkdir()
            (folder / "job.sh").write_text(submission.script)
            meta = {"name": submission.name, "marker": submission.success_marker}
            (folder / "job.json").write_text(json.dumps(meta))
            if submission.held:
                (folder / "held").touch()
            self._start_waiting()
            return SubmitResult(jobid, submission.script)

    def running(self):
        return self._listing("RUNNING")

    def queued(self):
        return self._listing("PENDING")

    def runstatus(self, ref):
        with self.lock:
            folder = self._folder(ref)
            state = self._state(folder)
            if state == "PENDING":
                return RunStatus.waiting()
            if state != "RUNNING":
                raise JobNotFound(f"Job {ref} is not running.")
            started = (folder / "started").stat().st_mtime
            return RunStatus((socket.gethostname(),), int(time.time() - started))

    def exitstatus(self, ref):
        with self.lock:
            try:
                folder = self._folder(ref)
            except JobNotFound:
                return ExitStatus.unknown()
            state = self._state(folder)
            if state in ("PENDING", "RUNNING"):
                return ExitStatus(state, None, 0)
            code = _read_int(folder / "rc")
            elapsed = _elapsed(folder)
            output = _last_lines(folder / "output", 10_000)
            shutil.rmtree(folder, ignore_errors=True)
        return ExitStatus(state, code, elapsed, output)

    def terminate(self, ref):
        with self.lock:
            folder = self._folder(ref)
            state = self._state(folder)
            if state not in ("PENDING", "RUNNING"):
                return
            (folder / "cancelled").touch()
            if state == "RUNNING":
                _signal(folder, signal.SIGTERM)

    def release(self, ref):
        with self.lock:
            folder = self._folder(ref)
            if (folder / "held").exists() and self._state(folder) == "PENDING":
                (folder / "held").unlink()
                self._start_waiting()

    def events(self, ref):
        with self.lock:
            folder = self._folder(ref)
            return f"JobId={ref.jobid} JobName={ref.name} JobState={self._state(folder)} WorkDir={folder}\n"

    def tail(self, ref, lines):
        with self.lock:
            text = _last_lines(self._folder(ref) / "output", lines)
        if not text:
            raise NotAvailable(f"Job {ref} has no output yet.")
        return text

    def check(self):
        probe = self.root / ".probe"
        try:
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise ClusterUnavailable(f"The job folder {self.root} is not writable: {error.strerror}.") \
                from None
        return f"jobs run as local processes under {self.root}, {self.slots} at once"

    # The job's files --------------------------------------------------------------------

    def _start_waiting(self):
        """Start the oldest jobs that wait (not held), while a slot is free."""
        states = [(folder, self._state(folder)) for _, folder in self._jobs()]
        free = self.slots - sum(state == "RUNNING" for _, state in states)
        for folder, state in states:
            if free > 0 and state == "PENDING" and not (folder / "held").exists():
                self._start(folder)
                free -= 1

    def _start(self, folder):
        lock = os.open(folder / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)  # the job's processes inherit it
        try:
            process = subprocess.Popen(["bash", "-c", WRAPPER], cwd=folder, pass_fds=(lock,),
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            (folder / "started").write_text(str(process.pid))
        finally:
            os.close(lock)

    def _state(self, folder):
        """PENDING, RUNNING, CANCELLED, COMPLETED or FAILED; KILLs a job past its grace."""
        cancelled = folder / "cancelled"
        if not (folder / "started").exists():
            return "CANCELLED" if cancelled.exists() else "PENDING"
        if _is_locked(folder / "lock"):
            if cancelled.exists() and time.time() - cancelled.stat().st_mtime > KILL_GRACE_S:
                _signal(folder, signal.SIGKILL)
            return "RUNNING"
        if cancelled.exists():
            return "CANCELLED"
        marker = self._meta(folder)["marker"]
        if _read_int(folder / "rc") == 0 and (marker is None or _has_line(folder / "output", marker)):
            return "COMPLETED"
        return "FAILED"

    def _jobs(self):
        try:
            folders = [path for path in self.root.iterdir() if path.name.isdigit()]
        except OSError as error:  # never an empty list: upstream would take every job as ended
            raise ClusterUnavailable(f"The job folder {self.root} cannot be read: {error.strerror}.") \
                from None
        return sorted(((path.name, path) for path in folders), key=lambda item: int(item[0]))

    def _listing(self, state):
        with self.lock:
            self._start_waiting()
            return [JobListing(self._meta(folder)["name"], jobid)
                    for jobid, folder in self._jobs() if self._state(folder) == state]

    def _folder(self, ref):
        if not ref.jobid.isdigit():  # the ids this connector issues: a 400 for any other
            raise InvalidRequest(f"jobid must be digits (a local job id), not {ref.jobid!r}.")
        folder = self.root / ref.jobid
        if not folder.is_dir() or self._meta(folder)["name"] != ref.name:
            raise JobNotFound(f"No job {ref} is known.")
        return folder

    def _meta(self, folder):
        return json.loads((folder / "job.json").read_text())

    def _next_id(self):
        counter = self.root / "last-id"
        jobid = str((_read_int(counter) or 0) + 1)
        counter.write_text(jobid)
        return jobid


def _is_locked(path):
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # also releases the lock taken just now
    return False


def _read_int(path):
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _elapsed(folder):
    try:
        started = (folder / "started").stat().st_mtime
    except FileNotFoundError:
        return 0
    ended = folder / "rc" if (folder / "rc").exists() else folder / "output"  # killed: its last line
    try:
        return max(int(ended.stat().st_mtime - started), 0)
    except FileNotFoundError:
        return 0


def _last_lines(path, lines):
    try:
        with open(path, errors="replace") as output:
            return "".join(output.readlines()[-lines:])
    except FileNotFoundError:
        return ""


def _has_line(path, text):
    try:
        with open(path, errors="replace") as output:
            return any(line.strip() == text for line in output)
    except FileNotFoundError:
        return False


def _signal(folder, signum):
    """Signal the job's process group; it may have ended a moment ago."""
    try:
        os.killpg(_read_int(folder / "started"), signum)
    except ProcessLookupError:
        pass


@dssr_core.hookimpl
def dssr_register_connectors():
    return [ConnectorSpec("local", LocalConnector, "Runs jobs as local processes (example)")]


@dssr_core.hookimpl
def dssr_declare_settings():
    return [JOB_DIR, SLOTS]
