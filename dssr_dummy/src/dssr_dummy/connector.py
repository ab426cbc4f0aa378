"""The dummy connector: every job is a real process on this machine, tracked in SQLite.

Threads and locks:

- ``_lock`` guards the in-memory view (``_jobs`` and the listings derived from it). It is
  held only to read or swap a few references, so ``running``, ``queued`` and ``runstatus``
  never wait for SQLite, a process or a file.
- ``_work`` serialises every change: SQLite writes, starting and signalling processes, job
  folders. A change saves the new :class:`Job` to SQLite first, then publishes it in the view.
- A tick thread (every :data:`TICK_S` seconds, sooner when woken) notices jobs that ended,
  sends KILL to terminated jobs whose grace ran out, and starts queued jobs when a slot is
  free. ``submit`` and ``release`` tick at once.

A restart loses nothing: jobs are re-read from SQLite, and a job that was running is watched
again when its pid still is the same process (same start time in /proc, same boot), else it
ended and its wrapper's ``.exit`` file holds its true exit code.
"""

import datetime
import fcntl
import logging
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import attrs

from dssr_core.connector import Connector
from dssr_core.errors import ClusterUnavailable, ConnectorError, Forbidden, JobNotFound, NotAvailable
from dssr_core.joburls import JobsDomain
from dssr_core.models import (
    DirEntry,
    ExitStatus,
    JobEndpoint,
    JobInfo,
    JobListing,
    JobRef,
    RunStatus,
    Submission,
    SubmitResult,
)
from dssr_core.settings import is_secret
from dssr_core.textfiles import last_lines
from dssr_dummy import processes
from dssr_dummy.config import DummyConfig
from dssr_dummy.store import ENDED, HELD, QUEUED, RUNNING, Job, JobStore

log = logging.getLogger(__name__)

#: Seconds between two ticks of the background thread.
TICK_S = 0.2
#: Lines of output that ``exitstatus`` returns.
OUTPUT_LINES = 10_000
#: Seconds between two log lines about the same failing tick.
_TICK_ERROR_LOG_S = 60.0

#: Children of connectors closed while their jobs ran, by pid. A later connector of this
#: process on the same state dir adopts them when it finds their jobs again; any tick reaps
#: those that ended. (In production ``close`` comes just before the process exits.)
_abandoned: dict[int, subprocess.Popen] = {}
_abandoned_lock = threading.Lock()


class DummyConnector(Connector):
    """Runs each job as a local process: no scheduler, works on any Linux machine."""

    @classmethod
    def from_settings(cls, settings) -> "DummyConnector":
        return cls(DummyConfig.from_settings(settings), settings)

    def __init__(self, config: DummyConfig, settings=None):
        self.config = config
        self.jobs_domain = JobsDomain.from_settings(settings) if settings is not None else None
        self._work = threading.RLock()
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._active_by_name: dict[str, int] = {}
        self._running: tuple[JobListing, ...] = ()
        self._queued: tuple[JobListing, ...] = ()
        self._children: dict[int, subprocess.Popen] = {}
        self._base_env = {key: value for key, value in os.environ.items() if not is_secret(key)}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_tick_error = ("", 0.0)
        self._lock_fd: int | None = None
        self._store: JobStore | None = None
        self._open()
        self._thread = threading.Thread(target=self._loop, name="dssr-dummy-tick", daemon=True)
        self._thread.start()

    # Jobs -------------------------------------------------------------------------------

    def submit(self, submission: Submission) -> SubmitResult:
        with self._work:
            store = self._open_store()
            with self._lock:
                existing = self._jobs.get(self._active_by_name.get(submission.name, -1))
            if existing is not None:
                log.info("submit of %s again: it is job %s already (%s); not run twice",
                         submission.name, existing.jobid, existing.state.lower())
                return SubmitResult(str(existing.jobid), self._script(existing, submission.script))
            now = time.time()
            timer = self.config.timer
            job = Job(
                jobid=0,
                name=submission.name,
                number=submission.number,
                state=HELD if submission.held else QUEUED,
                submit_time=now,
                eligible_time=now + (timer.queued_s if timer else 0.0),
                gpus=submission.facts.gpus,
                success_marker=submission.success_marker or None,
                timer_running_s=timer.running_s if timer else None,
                timer_rc=_timer_exit_code(timer.failing_percent) if timer else None,
                service_port=submission.service_port,
            )
            with store.transaction():
                job = store.insert(job)
                self._write_job_dir(job, submission.script)
            self._publish(job)
            log.info("job %s submitted: %s/%s%s", job.jobid, job.name, job.number,
                     " (held)" if submission.held else "")
            if submission.facts.nodes > 1:
                log.info("job %s asked for %d nodes; the dummy runs it once, on %s",
                         job.jobid, submission.facts.nodes, self.config.hostname)
            self._tick_now()
        return SubmitResult(str(job.jobid), submission.script)

    def running(self) -> list[JobListing]:
        with self._lock:
            return list(self._running)

    def queued(self) -> list[JobListing]:
        with self._lock:
            return list(self._queued)

    def runstatus(self, job: JobRef) -> RunStatus:
        found = self._find(job)
        if found.state in (HELD, QUEUED):
            return RunStatus.waiting()
        if found.state != RUNNING:
            raise JobNotFound(f"Job {job} is not running.")
        return RunStatus(nodes=(self.config.hostname,), elapsed_s=_elapsed(found, time.time()))

    def exitstatus(self, job: JobRef) -> ExitStatus:
        """How the job ended, then its folder and record are removed.

        A job that has not ended is left alone: its state is PENDING or RUNNING (rc -9).
        """
        try:
            found = self._find(job)
        except JobNotFound:
            return ExitStatus.unknown()
        if found.state in (HELD, QUEUED):
            return ExitStatus(state="PENDING", exit_code=None, elapsed_s=0)
        if found.state == RUNNING:
            return ExitStatus(state="RUNNING", exit_code=None, elapsed_s=_elapsed(found, time.time()))
        job_dir = self._dir(found)
        with self._work:
            store = self._open_store()
            with self._lock:
                if self._jobs.get(found.jobid) is not found:
                    return ExitStatus.unknown()  # collected by a call at the same time
            output, marked = processes.output_summary(job_dir / processes.OUTPUT, OUTPUT_LINES,
                                                      found.success_marker)
            store.delete(found.jobid)
            with self._lock:
                del self._jobs[found.jobid]
                self._reindex()
        shutil.rmtree(job_dir, ignore_errors=True)
        status = ExitStatus(state=_final_state(found, marked), exit_code=found.exit_code,
                            elapsed_s=_elapsed(found, found.end_time), output=output)
        log.info("job %s collected: %s, exit code %s", found.jobid, status.state, found.exit_code)
        return status

    def terminate(self, job: JobRef) -> None:
        """TERM to the job's process group, KILL after the grace period; a waiting job is
        simply cancelled. A job that already ended is left as it ended."""
        with self._work:
            self._open_store()
            found = self._find(job)
            now = time.time()
            if found.state == RUNNING:
                found = self._watch(found, now)  # it may have ended a moment ago
            if found.state == ENDED:
                log.info("terminate: job %s already ended; nothing to do", found.jobid)
                return
            if found.state in (HELD, QUEUED):
                self._commit(attrs.evolve(found, state=ENDED, cancelled=True, end_time=now))
                log.info("job %s cancelled before it started", found.jobid)
                return
            kill_at = found.kill_at if found.kill_at is not None else now + self.config.kill_grace_s
            self._commit(attrs.evolve(found, cancelled=True, kill_at=kill_at))
            if found.pid is not None:
                processes.signal_group(found.pid, signal.SIGTERM)
            log.info("job %s terminated: TERM sent to process group %s, KILL in %g s if alive",
                     found.jobid, found.pid, self.config.kill_grace_s)
        self._wake.set()

    def release(self, job: JobRef) -> None:
        with self._work:
            self._open_store()
            found = self._find(job)
            if found.state != HELD:
                log.debug("release: job %s is not held (%s)", found.jobid, found.state)
                return
            self._commit(attrs.evolve(found, state=QUEUED))
            log.info("job %s released", found.jobid)
            self._tick_now()

    def events(self, job: JobRef) -> str:
        found = self._find(job)
        job_dir = self._dir(found)
        if found.state == HELD:
            state = "PENDING Reason=JobHeldUser"
        elif found.state == QUEUED:
            waiting = found.eligible_time > time.time()
            state = "PENDING Reason=" + ("BeginTime" if waiting else "Resources")
        elif found.state == RUNNING:
            state = "RUNNING" + (" Reason=Terminating" if found.cancelled else "")
        else:
            state = "ENDED" + (" Reason=Cancelled" if found.cancelled else "")
        if found.timer_running_s is None:
            mode = "script"
        else:
            mode = f"timer (sleeps {found.timer_running_s:g} s, then exits {found.timer_rc})"
        return "\n".join([
            f"JobId={found.jobid} JobName={found.name} Number={found.number}",
            f"   JobState={state}",
            f"   ExitCode={'' if found.exit_code is None else found.exit_code}"
            f" Pid={'' if found.pid is None else found.pid}",
            f"   SubmitTime={_when(found.submit_time)} EligibleTime={_when(found.eligible_time)}",
            f"   StartTime={_when(found.start_time)} EndTime={_when(found.end_time)}",
            f"   NodeList={self.config.hostname if found.start_time else ''} Mode={mode}",
            f"   WorkDir={job_dir} StdOut={job_dir / processes.OUTPUT}",
        ]) + "\n"

    def tail(self, job: JobRef, lines: int) -> str:
        try:
            found = self._find(job)
        except JobNotFound:
            raise NotAvailable(f"Job {job} is not known, so it has no output.") from None
        try:
            return last_lines(self._dir(found) / processes.OUTPUT, lines)
        except OSError:
            raise NotAvailable(f"Job {job} has no output yet.") from None

    def info(self, job: JobRef) -> JobInfo:
        found = self._find(job)
        timer = self.config.timer
        if timer is not None and timer.interactive and found.state == RUNNING:
            return JobInfo(url=self.config.interactive_url)
        if found.service_port is not None and found.state == RUNNING and self.jobs_domain is not None:
            return JobInfo(url=self.jobs_domain.url_for(found.number))
        return JobInfo()

    def interactive_endpoint(self, number: int) -> JobEndpoint | None:
        with self._lock:
            found = [job for job in self._jobs.values()
                     if job.number == number and job.state == RUNNING and not job.cancelled
                     and job.service_port is not None]
        if not found:
            return None
        job = max(found, key=lambda job: job.jobid)
        return JobEndpoint(JobRef(job.name, job.number, str(job.jobid)), "127.0.0.1", job.service_port)

    def connect_interactive(self, endpoint: JobEndpoint):
        return socket.create_connection((endpoint.node, endpoint.port), timeout=10.0)

    # Cluster ----------------------------------------------------------------------------

    def pvcls(self, path: str, details: bool) -> list[DirEntry]:
        """One level of ``path`` under ``<state dir>/data``; symlinks out of it are refused.

        Entries that are symlinks leading out of the data root (or nowhere) are left out.
        """
        root = self.config.data_dir.resolve()
        shown = path.strip("/")
        try:
            target = (root / shown).resolve()
        except RuntimeError:  # a symlink loop
            raise NotAvailable(f"/data/{shown} is a symlink loop.") from None
        if not target.is_relative_to(root):
            raise Forbidden(f"/data/{shown} leads outside the data root.")
        try:
            info = target.stat()
        except FileNotFoundError:
            raise NotAvailable(f"/data/{shown} does not exist.") from None
        except OSError as error:
            raise NotAvailable(f"/data/{shown} cannot be read: {error.strerror}.") from None
        if not stat.S_ISDIR(info.st_mode):
            return [_dir_entry(shown, info)]
        entries = []
        try:
            with os.scandir(target) as scan:
                children = sorted(scan, key=lambda entry: entry.name)
        except PermissionError:
            raise Forbidden(f"/data/{shown} cannot be listed: permission denied.") from None
        except OSError as error:
            raise NotAvailable(f"/data/{shown} cannot be listed: {error.strerror}.") from None
        for child in children:
            try:
                if child.is_symlink() and not Path(child.path).resolve().is_relative_to(root):
                    continue
                info = child.stat()
            except (OSError, RuntimeError):  # dangling, a loop, or gone since the scan
                continue
            entries.append(_dir_entry(f"{shown}/{child.name}" if shown else child.name, info))
        return entries

    def check(self) -> str:
        """SQLite answers, the state dir is writable and the tick thread runs."""
        with self._work:
            store = self._store
            if store is None:
                raise ClusterUnavailable("The dummy connector is closed.")
            try:
                store.count()
            except ConnectorError as error:
                raise ClusterUnavailable(error.message) from None
        try:
            with tempfile.NamedTemporaryFile(dir=self.config.state_dir, prefix=".probe-") as probe:
                probe.write(b"ok")
                probe.flush()
        except OSError as error:
            raise ClusterUnavailable(
                f"The dummy state dir {self.config.state_dir} is not writable: {error.strerror}."
            ) from None
        if not self._thread.is_alive():
            raise ClusterUnavailable("The dummy's tick thread stopped; restart DSSR.")
        with self._lock:
            running, queued = len(self._running), len(self._queued)
        return (f"dummy on {self.config.hostname}: {running} running, {queued} queued, "
                f"state in {self.config.state_dir}")

    def report(self) -> list[tuple[str, str]]:
        config = self.config
        lines = [
            ("dummy state dir", str(config.state_dir)),
            ("dummy data root (pvcls)", str(config.data_dir)),
            ("dummy max running jobs", str(config.max_running) if config.max_running else "no limit"),
            ("dummy kill grace", f"{config.kill_grace_s:g} s"),
            ("dummy timer mode", config.timer.describe() if config.timer else "off"),
        ]
        if config.timer is not None and config.timer.interactive:
            lines.append(("dummy interactive url", config.interactive_url))
        return lines

    def close(self) -> None:
        """Stop the tick thread and close SQLite. Running jobs keep running."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        with self._work:
            with _abandoned_lock:
                _abandoned.update((child.pid, child) for child in self._children.values())
            self._children.clear()
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    # Opening and restart ----------------------------------------------------------------

    def _open(self) -> None:
        config = self.config
        try:
            for folder in (config.state_dir, config.jobs_dir, config.data_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConnectorError(
                f"The dummy state dir {config.state_dir} cannot be created: {error.strerror}. "
                "Set JARVICE_DUMMY_STATE_DIR to a writable folder."
            ) from None
        self._lock_fd = _lock_state_dir(config.state_dir)
        try:
            self._store = JobStore(config.database)
            self._recover()
        except BaseException:
            if self._store is not None:
                self._store.close()
            os.close(self._lock_fd)
            raise

    def _recover(self) -> None:
        """Load the jobs; a job that was running is watched again or recorded as ended."""
        now = time.time()
        boot = processes.boot_id()
        store = self._store
        same_boot = store.get_meta("boot_id") in (None, boot)
        store.set_meta("boot_id", boot)
        jobs = store.load()
        with self._lock:
            self._jobs = {job.jobid: job for job in jobs}
            self._reindex()
        with self._work:
            for job in jobs:
                if job.state != RUNNING:
                    continue
                if same_boot and job.pid is not None:
                    with _abandoned_lock:
                        child = _abandoned.pop(job.pid, None)
                    if child is not None:  # a child of this process again
                        self._children[job.jobid] = child
                    job = self._watch(job, now)  # by pid and start time, or as a child
                    if job.state == RUNNING:
                        log.info("job %s (pid %s) still runs; watching it again",
                                 job.jobid, job.pid)
                else:
                    self._commit(self._ended(job, None, now))
                    log.info("job %s ended with the machine or before it started", job.jobid)
        for folder in self.config.jobs_dir.iterdir():
            if folder.name.isdigit() and int(folder.name) not in self._jobs:
                shutil.rmtree(folder, ignore_errors=True)  # its job was collected
        if self._jobs:
            log.info("dummy resumed with %d job(s): %d running, %d queued",
                     len(self._jobs), len(self._running), len(self._queued))

    # The tick ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._tick()
            except Exception as error:  # the thread must outlive a bad moment (disk full...)
                text = f"{type(error).__name__}: {error}"
                last_text, last_time = self._last_tick_error
                if text != last_text or time.monotonic() - last_time > _TICK_ERROR_LOG_S:
                    log.exception("dummy tick failed; trying again every %g s", TICK_S)
                    self._last_tick_error = (text, time.monotonic())

    def _tick_now(self) -> None:
        """Tick in the caller's thread; a failure is the tick thread's to retry, not the
        caller's (the job is saved already)."""
        try:
            self._tick()
        except Exception:
            log.exception("dummy tick failed; the tick thread tries again")
            self._wake.set()

    def _tick(self) -> None:
        """Notice ended jobs, KILL terminated jobs past their grace, start queued jobs."""
        with self._work:
            if self._store is None:
                return
            now = time.time()
            with self._lock:
                jobs = sorted(self._jobs.values(), key=lambda job: job.jobid)
            running = 0
            for job in jobs:
                if job.state == RUNNING:
                    running += self._watch(job, now).state == RUNNING
            _reap_abandoned()
            limit = self.config.max_running
            for job in jobs:
                if limit and running >= limit:
                    break
                if job.state == QUEUED and job.eligible_time <= now:
                    self._start(job, time.time())
                    running += 1

    def _watch(self, job: Job, now: float) -> Job:
        """A running job as it is now: KILLed when its grace ran out, or ENDED."""
        child = self._children.get(job.jobid)
        if child is not None:
            alive = not processes.child_exited(child)
        else:
            alive = job.pid is not None and processes.is_alive(job.pid, job.pid_start)
        if alive:
            if job.kill_at is not None and now >= job.kill_at:
                log.info("job %s is alive %g s after TERM; sending KILL",
                         job.jobid, self.config.kill_grace_s)
                processes.signal_group(job.pid, signal.SIGKILL)
                job = attrs.evolve(job, kill_at=None)
                self._commit(job)
            return job
        returncode = None
        if child is not None:
            if processes.CAN_PEEK:
                # The zombie still holds the group id: what the job left behind dies with it.
                processes.signal_group(child.pid, signal.SIGKILL)
            returncode = child.wait()
            del self._children[job.jobid]
        job = self._ended(job, returncode, now)
        self._commit(job)
        log.info("job %s ended: exit code %s%s", job.jobid, job.exit_code,
                 " (terminated)" if job.cancelled else "")
        return job

    def _ended(self, job: Job, returncode: int | None, now: float) -> Job:
        code, ended = processes.read_exit_file(self._dir(job))
        if code is None and returncode is not None:
            code = processes.returncode_as_exit_code(returncode)
        if code is None and not job.cancelled:
            log.warning("job %s ended without recording its exit code (killed?); it counts "
                        "as FAILED", job.jobid)
        return attrs.evolve(job, state=ENDED, exit_code=code, end_time=ended or now, kill_at=None)

    def _start(self, job: Job, now: float) -> Job:
        # Saved as running before the process exists: a crash never runs a job twice.
        job = attrs.evolve(job, state=RUNNING, start_time=now, pid=None, pid_start=None)
        self._commit(job)
        job_dir = self._dir(job)
        if job.timer_running_s is None:
            args = []
        else:
            args = ["timer", f"{job.timer_running_s:.3f}", str(job.timer_rc),
                    job.success_marker or ""]
        try:
            child = processes.launch(job_dir, f"dssr-dummy-{job.jobid}", args,
                                     self._job_env(job, job_dir))
        except OSError as error:
            log.error("job %s could not start: %s", job.jobid, error)
            _note(job_dir, f"dssr dummy: the job could not start: {error}\n")
            job = attrs.evolve(job, state=ENDED, exit_code=127, end_time=time.time())
            self._commit(job)
            return job
        self._children[job.jobid] = child
        job = attrs.evolve(job, pid=child.pid,
                           pid_start=processes.process_start(child.pid, zombie_ok=True))
        self._commit(job)
        log.info("job %s started: pid %d", job.jobid, child.pid)
        return job

    def _job_env(self, job: Job, job_dir: Path) -> dict[str, str]:
        """The server's environment without secrets, and what a JARVICE job expects."""
        host = self.config.hostname
        return {
            **self._base_env,
            "PROCESS_PROCID": "0",
            "PROCESS_NODENAME": host,
            "JOB_JOBID": str(job.jobid),
            "JOB_JOB_NODELIST": host,
            "JOB_JOB_FORMATED_NODELIST": host,
            "JOB_NNODES": "1",
            "JOB_NTASKS": "1",
            "JOB_SUBMIT_DIR": str(job_dir),
            "JOB_GPUS_PER_NODE": str(job.gpus),
        }

    # The view ---------------------------------------------------------------------------

    def _commit(self, job: Job) -> None:
        """Save a changed job, then show it. The caller holds ``_work``."""
        self._open_store().save(job)
        self._publish(job)

    def _publish(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.jobid] = job
            self._reindex()

    def _reindex(self) -> None:
        """Rebuild the listings from ``_jobs``. The caller holds ``_lock``."""
        jobs = [self._jobs[jobid] for jobid in sorted(self._jobs)]
        self._running = tuple(JobListing(j.name, str(j.jobid)) for j in jobs if j.state == RUNNING)
        self._queued = tuple(JobListing(j.name, str(j.jobid)) for j in jobs
                             if j.state in (HELD, QUEUED))
        self._active_by_name = {j.name: j.jobid for j in jobs if j.state != ENDED}

    def _find(self, ref: JobRef) -> Job:
        """The job with this id AND name, else JobNotFound."""
        jobid = int(ref.jobid) if ref.jobid.isascii() and ref.jobid.isdigit() else None
        with self._lock:
            job = self._jobs.get(jobid)
        if job is None or job.name != ref.name:
            raise JobNotFound(f"The dummy connector has no job {ref}.")
        return job

    def _open_store(self) -> JobStore:
        if self._store is None:
            raise ClusterUnavailable("The dummy connector is closed.")
        return self._store

    def _dir(self, job: Job) -> Path:
        return self.config.jobs_dir / str(job.jobid)

    def _write_job_dir(self, job: Job, script: str) -> None:
        job_dir = self._dir(job)
        try:
            shutil.rmtree(job_dir, ignore_errors=True)  # left by a submit that failed
            job_dir.mkdir(mode=0o700)
            (job_dir / processes.SCRIPT).write_text(script, encoding="utf-8")
        except OSError as error:
            raise ConnectorError(
                f"The dummy cannot write the job's folder {job_dir}: {error.strerror}."
            ) from None

    def _script(self, job: Job, default: str) -> str:
        try:
            return (self._dir(job) / processes.SCRIPT).read_text(encoding="utf-8")
        except OSError:
            return default


def _lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive flock on ``<state dir>/lock``: one DSSR per state dir."""
    path = state_dir / "lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise ConnectorError(
            f"The dummy state dir {state_dir} is not writable: {error.strerror}. "
            "Set JARVICE_DUMMY_STATE_DIR to a writable folder."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConnectorError(
            f"The dummy state dir {state_dir} is in use by another DSSR process (pid {holder}); "
            "stop it, or set JARVICE_DUMMY_STATE_DIR to another folder."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _reap_abandoned() -> None:
    with _abandoned_lock:
        ended = [pid for pid, child in _abandoned.items() if child.poll() is not None]
        for pid in ended:
            del _abandoned[pid]


def _timer_exit_code(failing_percent: float) -> int:
    return 1 if random.uniform(0.0, 100.0) < failing_percent else 0


def _final_state(job: Job, marked: bool) -> str:
    if job.cancelled:
        return "CANCELLED"
    if job.exit_code == 0 and (not job.success_marker or marked):
        return "COMPLETED"
    return "FAILED"


def _elapsed(job: Job, until: float | None) -> int:
    if job.start_time is None or until is None:
        return 0
    return max(int(until - job.start_time), 0)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "Unknown"
    return datetime.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def _dir_entry(path: str, info: os.stat_result) -> DirEntry:
    return DirEntry(path=path, is_dir=stat.S_ISDIR(info.st_mode), mtime=int(info.st_mtime),
                    size=info.st_size)


def _note(job_dir: Path, text: str) -> None:
    """Append a line of the dummy's own to a job's output (best effort)."""
    try:
        with open(job_dir / processes.OUTPUT, "a", encoding="utf-8") as output:
            output.write(text)
    except OSError:
        pass
