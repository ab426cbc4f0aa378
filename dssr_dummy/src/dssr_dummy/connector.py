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
import errno
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

from dssr_core import metrics
from dssr_core.connector import Connector, check_retried_submit
from dssr_core.errors import (
    ClusterUnavailable,
    ConnectorError,
    DssrError,
    Forbidden,
    JobNotFound,
    NotAvailable,
)
from dssr_core.executor import Executor, drop_lines_naming
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
    script_fingerprint,
)
from dssr_core.settings import is_secret
from dssr_core.textfiles import last_lines
from dssr_dummy import processes
from dssr_dummy.config import DummyConfig
from dssr_dummy.store import ENDED, HELD, QUEUED, RUNNING, UNWRITABLE, DamagedState, Job, JobStore

log = logging.getLogger(__name__)

#: Seconds between two ticks of the background thread.
TICK_S = 0.2
#: Lines of output that ``exitstatus`` returns.
OUTPUT_LINES = 10_000
#: Seconds between two log lines about the same failure (a full disk fails every tick).
_FAILURE_LOG_S = 60.0
#: Upstream's secret facts: the executor has read them; no job needs them in its job.sh.
UPSTREAM_SECRETS = Executor.secret_names
#: Prefix of a job folder being written, before the job has an id.
DRAFT_PREFIX = ".new-"

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
        metrics.set_scheduler_up(True)  # no scheduler to lose: its jobs are this process's children
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
        self._last_failure: dict[str, tuple[str, float]] = {}
        #: Jobs whose latest state, a fact of the OS (started with a pid, ended with a code),
        #: is shown but not saved yet (a full disk): each tick saves them again.
        self._unsaved: set[int] = set()
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
                kept = self._script(existing, None)  # as it was written: secret lines dropped
                script = drop_lines_naming(submission.script, UPSTREAM_SECRETS)
                check_retried_submit(submission.name, str(existing.jobid),
                                     None if kept is None else script_fingerprint(kept),
                                     script_fingerprint(script))
                log.info("submit of %s again: it is job %s already (%s); not run twice",
                         submission.name, existing.jobid, existing.state.lower())
                return SubmitResult(str(existing.jobid), kept or script, existing=True)
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
            script = drop_lines_naming(submission.script, UPSTREAM_SECRETS)
            draft = self._write_draft(script)
            try:
                with store.transaction():
                    job = store.insert(job)
                self._place_draft(draft, job)
            except BaseException:
                shutil.rmtree(draft, ignore_errors=True)
                raise
            self._publish(job)
            log.info("job %s submitted: %s/%s%s", job.jobid, job.name, job.number,
                     " (held)" if submission.held else "")
            if submission.facts.nodes > 1:
                log.info("job %s asked for %d nodes; the dummy runs it once, on %s",
                         job.jobid, submission.facts.nodes, self.config.hostname)
            self._tick_now()
        return SubmitResult(str(job.jobid), script)

    def running(self) -> list[JobListing]:
        self._check_ticking()
        metrics.snapshot_taken()  # the listings are kept as jobs change: always fresh
        with self._lock:
            return list(self._running)

    def queued(self) -> list[JobListing]:
        self._check_ticking()
        with self._lock:
            return list(self._queued)

    def _check_ticking(self) -> None:
        """The listings are what the tick thread last saw: once it stopped (the connector
        closed) they would go stale, and upstream takes a job missing from /running as ended."""
        if self._store is None or self._stop.is_set():
            raise ClusterUnavailable("The dummy connector is closed.")
        if not self._thread.is_alive():
            raise ClusterUnavailable("The dummy's tick thread stopped; restart DSSR.")

    def ended(self) -> list[JobListing]:
        """Ended jobs stay in the store, files and all, until their exit status is taken."""
        with self._lock:
            jobs = [self._jobs[jobid] for jobid in sorted(self._jobs)]
        return [JobListing(job.name, str(job.jobid)) for job in jobs if job.state == ENDED]

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
            store.delete(found.jobid)  # on a full disk, 503: the job stays for the next call
            self._unsaved.discard(found.jobid)
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
        if found.state in (HELD, QUEUED):
            raise NotAvailable(f"Job {job} has not started, so it has no output yet.")
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
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise ConnectorError(
                f"The dummy state dir {config.state_dir} cannot be created: {error.strerror}. "
                "Set JARVICE_DUMMY_STATE_DIR to a writable folder."
            ) from None
        self._lock_fd = _lock_state_dir(config.state_dir)
        try:
            _make_private(config.state_dir, config.jobs_dir)
            _check_database_is_there(config)
            self._store = JobStore(config.database)
            _make_private(config.database)
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
        jobs = self._jobs_with_their_folders(store.load())
        same_boot = store.get_meta("boot_id") in (None, boot)
        store.set_meta("boot_id", boot)
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
        if self._jobs:
            log.info("dummy resumed with %d job(s): %d running, %d queued",
                     len(self._jobs), len(self._running), len(self._queued))

    def _jobs_with_their_folders(self, jobs: list[Job]) -> list[Job]:
        """Match the saved jobs with the job folders; a folder the database cannot have known
        stops the start (the database is older than the folders, or not theirs)."""
        jobs_dir = self.config.jobs_dir
        last = self._store.last_jobid()
        folders = _job_folders(jobs_dir)
        unknown = [jobid for jobid in folders if jobid > last]
        if unknown:
            raise DamagedState(
                f"The dummy's job database {self.config.database} does not know the job "
                f"folder(s) {_ids(unknown)} in {jobs_dir} (the last job id it issued is {last}): "
                "it is older than they are, or not theirs. Restore the database that goes with "
                f"them, or move {jobs_dir} away to start afresh (its jobs are then forgotten)."
            )
        known = {job.jobid for job in jobs}
        for jobid in folders - known:
            shutil.rmtree(jobs_dir / str(jobid), ignore_errors=True)  # a collected job's folder
        for draft in jobs_dir.glob(DRAFT_PREFIX + "*"):
            shutil.rmtree(draft, ignore_errors=True)  # a submit that was cut short
        kept = []
        for job in jobs:
            if job.state in (HELD, QUEUED) and job.jobid not in folders:
                # Saved, then cut short before its folder was in place: never acknowledged.
                log.warning("job %s (%s) has no folder: its submit did not finish; dropped",
                            job.jobid, job.name)
                self._store.delete(job.jobid)
                continue
            kept.append(job)
        return kept

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
                self._failed("tick", error, f"dummy tick failed; it runs again every {TICK_S:g} s")
            else:
                self._works_again("tick", "dummy tick works again")

    def _tick_now(self) -> None:
        """Tick in the caller's thread; a failure is the tick thread's to retry, not the
        caller's (the job is saved already)."""
        try:
            self._tick()
        except Exception as error:
            self._failed("tick", error, "dummy tick failed; the tick thread tries again")
            self._wake.set()

    def _failed(self, what: str, error: Exception, message: str) -> None:
        """Log ``message`` once, and again only every :data:`_FAILURE_LOG_S` while it lasts."""
        text = getattr(error, "detail", None) or f"{type(error).__name__}: {error}"
        last_text, last_time = self._last_failure.get(what, ("", 0.0))
        if text != last_text or time.monotonic() - last_time > _FAILURE_LOG_S:
            log.error("%s: %s", message, text, exc_info=not isinstance(error, DssrError))
            self._last_failure[what] = (text, time.monotonic())

    def _works_again(self, what: str, message: str) -> None:
        if self._last_failure.pop(what, None) is not None:
            log.info("%s", message)

    def _tick(self) -> None:
        """Save what could not be saved, notice ended jobs, KILL terminated jobs past their
        grace, start queued jobs."""
        with self._work:
            if self._store is None:
                return
            self._save_unsaved()
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
                self._record(job)
            return job
        returncode = None
        if child is not None:
            if processes.CAN_PEEK:
                # The zombie still holds the group id: what the job left behind dies with it.
                processes.signal_group(child.pid, signal.SIGKILL)
            returncode = child.wait()
            del self._children[job.jobid]
        job = self._ended(job, returncode, now)
        self._record(job)
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
        self._record(job)
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
        """Save a changed job, then show it: a decision (submit, start, terminate) is kept
        only once saved. The caller holds ``_work``."""
        self._open_store().save(job)
        self._publish(job)
        self._unsaved.discard(job.jobid)

    def _record(self, job: Job) -> None:
        """Show a fact the OS told (a pid, an exit code) at once, and save it, now or at a
        later tick: a full disk never turns a job's true outcome into a guess."""
        self._publish(job)
        self._unsaved.add(job.jobid)
        self._save_unsaved()

    def _save_unsaved(self) -> None:
        """Save the jobs :meth:`_record` could not; they stay in memory until saved."""
        try:
            for jobid in sorted(self._unsaved):
                with self._lock:
                    job = self._jobs.get(jobid)
                if job is not None:
                    self._open_store().save(job)
                self._unsaved.discard(jobid)
        except DssrError as error:
            self._failed("save", error, f"the dummy cannot save what {len(self._unsaved)} job(s) did; "
                         "it keeps that in memory and tries again")
        else:
            self._works_again("save", "the dummy saved what its jobs did")

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

    def _write_draft(self, script: str) -> Path:
        """A new job's folder under a temporary name: a submit cut short leaves no job folder."""
        draft = None
        try:
            draft = Path(tempfile.mkdtemp(prefix=DRAFT_PREFIX, dir=self.config.jobs_dir))
            _write_private(draft / processes.SCRIPT, script)
            _write_private(draft / processes.OUTPUT, "")  # so that starting the job needs no space
        except OSError as error:
            if draft is not None:
                shutil.rmtree(draft, ignore_errors=True)
            raise _state_error(f"cannot write a new job's folder in {self.config.jobs_dir}", error) from None
        return draft

    def _place_draft(self, draft: Path, job: Job) -> None:
        """Give a saved job its folder; when that fails, the job is not kept."""
        job_dir = self._dir(job)
        try:
            shutil.rmtree(job_dir, ignore_errors=True)  # the folder of a collected job of old
            draft.rename(job_dir)
            _sync_folder(self.config.jobs_dir)
        except OSError as error:
            try:
                self._open_store().delete(job.jobid)
            finally:
                raise _state_error(f"cannot create the job's folder {job_dir}", error) from None

    def _script(self, job: Job, default: str) -> str:
        try:
            return (self._dir(job) / processes.SCRIPT).read_text(encoding="utf-8")
        except OSError:
            return default


def _check_database_is_there(config: DummyConfig) -> None:
    """A missing or empty database while job folders exist stops the start: going on would
    forget every job, running ones included, and issue their ids again."""
    database, folders = config.database, _job_folders(config.jobs_dir)
    size = database.stat().st_size if database.exists() else None
    if folders and not size:
        raise DamagedState(
            f"The dummy's job database {database} is {'missing' if size is None else 'empty'}, "
            f"but {config.jobs_dir} holds {len(folders)} job folder(s) ({_ids(folders)}): "
            f"restore {database.name} from a backup, or, to start afresh, move {config.jobs_dir} "
            "away (its jobs are then forgotten; running ones keep running)."
        )


def _job_folders(jobs_dir: Path) -> set[int]:
    """The ids of the job folders in ``jobs_dir``."""
    return {int(entry.name) for entry in jobs_dir.iterdir()
            if entry.name.isascii() and entry.name.isdigit() and entry.is_dir()}


def _ids(jobids) -> str:
    shown = sorted(jobids)
    return ", ".join(map(str, shown[:5])) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")


def _make_private(*paths: Path) -> None:
    """Take group's and others' rights away (0700 folders, 0600 files): jobs hold secrets."""
    for path in paths:
        try:
            mode = path.stat().st_mode
            if mode & 0o077:
                path.chmod(stat.S_IMODE(mode) & 0o700)
        except OSError as error:
            log.warning("cannot make %s private: %s", path, error.strerror)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file only its owner may read (0600), through to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(path: Path) -> None:
    """Make a rename in ``path`` reach the disk (a submit answered is a job kept)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _state_error(what: str, error: OSError) -> Exception:
    """A failed write of the state: ClusterUnavailable for a full or read-only disk (the caller
    may retry), else ConnectorError; the path goes to the log, never to the caller."""
    if error.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        return ClusterUnavailable(UNWRITABLE, detail=f"it {what}: {error.strerror}")
    return ConnectorError(f"The dummy {what}: {error.strerror}.")


def _lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive flock on ``<state dir>/lock``: one DSSR per state dir."""
    path = state_dir / "lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
