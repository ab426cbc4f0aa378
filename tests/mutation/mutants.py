"""Mutation testing of the connector contract suite: does it fail a connector with a bug?

Each mutant is one deliberate, realistic bug (the kinds a connector author makes: the tail of
another job, a waiting job listed running, state kept per process, a wrong exit code, ...)
written into a copy of the dummy connector or of the example connector of
docs/writing-a-connector.md (tests/example_connector). The script runs that connector's
contract module against each copy (first on ``PYTHONPATH``, so the tests and the ``dssr serve``
they start import it) and reports which mutants the suite caught, by which test, and which
survived. A survivor must be one the docs list under what the suite does not check
(``survives`` says why); any other fails the run.

    python tests/mutation/mutants.py            # every mutant of both connectors
    python tests/mutation/mutants.py local      # one connector; or a mutant's id: local-tail
    nox -s mutants
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]


@attrs.frozen
class Target:
    """A connector: its package folder and the contract module that proves it."""

    name: str
    package: Path
    contract: Path


TARGETS = {
    "dummy": Target("dummy", ROOT / "dssr_dummy" / "src" / "dssr_dummy",
                    ROOT / "tests" / "dssr_dummy" / "test_dummy_contract.py"),
    "local": Target("local", ROOT / "tests" / "example_connector" / "src" / "dssr_local",
                    ROOT / "tests" / "example_connector" / "test_local_contract.py"),
}


@attrs.frozen
class Mutant:
    """One bug: in ``target``'s ``module``, each ``(old, new)`` replacement (``old`` must occur
    exactly once). ``survives``: why the suite cannot catch it, when it cannot."""

    target: str
    key: str
    bug: str
    module: str
    edits: tuple[tuple[str, str], ...]
    survives: str = ""

    @property
    def ident(self) -> str:
        return f"{self.target}-{self.key}"


def local(key: str, bug: str, *edits: tuple[str, str], survives: str = "") -> Mutant:
    return Mutant("local", key, bug, "plugin.py", edits, survives)


def dummy(key: str, bug: str, *edits: tuple[str, str], module: str = "connector.py",
          survives: str = "") -> Mutant:
    return Mutant("dummy", key, bug, module, edits, survives)


MUTANTS = (
    # The example connector of docs/writing-a-connector.md --------------------------------
    local("tail", "tail gives the output of the newest job, not of the job asked for",
          ('text = _last_lines(self._folder(ref) / "output", lines)',
           'text = _last_lines(self._jobs()[-1][1] / "output", lines)')),
    local("waiting-running", "a job waiting for a slot is listed running (only held jobs are queued)",
          ('    def running(self):\n        return self._listing("RUNNING")\n\n'
           '    def queued(self):\n        return self._listing("PENDING")\n',
           '    def running(self):\n        return self._listing("RUNNING") + [\n'
           '            job for job in self._listing("PENDING")\n'
           '            if not (self.root / job.jobid / "held").exists()]\n\n'
           '    def queued(self):\n        return [job for job in self._listing("PENDING")\n'
           '                if (self.root / job.jobid / "held").exists()]\n')),
    local("per-process", "the job folder is per process: a restarted DSSR finds no job",
          ('self.root = Path(settings.read(JOB_DIR) or Path.home() / ".dssr-local")',
           'self.root = Path(settings.read(JOB_DIR) or Path.home() / ".dssr-local") / f"pid-{os.getpid()}"')),
    local("exit-code", "the script's exit code is not read: every job exits 0",
          ('code = _read_int(folder / "rc")\n', 'code = 0\n'),
          ('if _read_int(folder / "rc") == 0 and', 'if True and')),
    local("cancelled-failed", "a terminated job is reported FAILED, not CANCELLED",
          ('        if cancelled.exists():\n            return "CANCELLED"\n',
           '        if cancelled.exists():\n            return "FAILED"\n')),
    local("lost-hold", "a held job is not held: it starts at once",
          ('            if submission.held:\n                (folder / "held").touch()\n', '')),
    local("terminate-no-op", "terminate does nothing",
          ('            (folder / "cancelled").touch()\n            if state == "RUNNING":\n'
           '                _signal(folder, signal.SIGTERM)\n', '            pass\n')),
    local("no-kill", "no KILL after the grace: a job that ignores TERM runs on",
          ('                _signal(folder, signal.SIGKILL)\n', '                pass\n')),
    local("marker-ignored", "the success marker is ignored: exit code 0 is COMPLETED",
          ('(marker is None or _has_line(folder / "output", marker))', 'True')),
    local("retried-submit", "a retried submit of a live name starts a second job",
          ('self._state(folder) in (\n                        "PENDING", "RUNNING")',
           'self._state(folder) in (\n                        "NEVER",)')),
    local("files-kept", "exitstatus does not remove the job's files",
          ('            shutil.rmtree(folder, ignore_errors=True)\n', '')),
    local("check-constant", "check() answers without looking at the job folder",
          ('            probe.write_text("ok")\n            probe.unlink()\n', '            pass\n')),
    local("outage-empty", "a job folder that cannot be read lists no job (an empty list)",
          ('            raise ClusterUnavailable(f"The job folder {self.root} cannot be read: '
           '{error.strerror}.") \\\n                from None', '            return []')),
    local("release-no-op", "release does nothing",
          ('                (folder / "held").unlink()\n                self._start_waiting()\n',
           '                pass\n')),
    local("runstatus-waiting", "a running job's /runstatus is the waiting shape",
          ('return RunStatus((socket.gethostname(),), int(time.time() - started))',
           'return RunStatus.waiting()')),
    local("no-slot-limit", "the slot limit is ignored: every job runs at once",
          ('free = self.slots - sum(', 'free = 1000 - sum(')),
    local("submit-race", "submit takes no lock: two submissions at once may share an id or a name",
          ('    def submit(self, submission):\n        with self.lock:',
           '    def submit(self, submission):\n        with threading.Lock():'),
          survives="a race: the concurrency tests catch it only when two of their four "
                   "submissions interleave, which is likely, not certain"),

    # The dummy connector -----------------------------------------------------------------
    dummy("tail", "tail gives the output of the newest job, not of the job asked for",
          ('return last_lines(self._dir(found) / processes.OUTPUT, lines)',
           'return last_lines(self._dir(max(self._jobs.values(), key=lambda j: j.jobid))\n'
           '                              / processes.OUTPUT, lines)')),
    dummy("waiting-running", "a job waiting for a slot is listed running (only held jobs are queued)",
          ('for j in jobs if j.state == RUNNING)', 'for j in jobs if j.state in (RUNNING, QUEUED))'),
          ('if j.state in (HELD, QUEUED))', 'if j.state == HELD)')),
    dummy("per-process", "the jobs are read only by the process that wrote them",
          ('jobs = self._jobs_with_their_folders(store.load())',
           'jobs = self._jobs_with_their_folders(\n'
           '            store.load() if store.get_meta("writer") == str(os.getpid()) else [])\n'
           '        store.set_meta("writer", str(os.getpid()))')),
    dummy("exit-code", "the job's exit code is lost: every job exits 0",
          ('return attrs.evolve(job, state=ENDED, exit_code=code,',
           'return attrs.evolve(job, state=ENDED, exit_code=code and 0,')),
    dummy("cancelled-failed", "a terminated job is reported FAILED, not CANCELLED",
          ('    if job.cancelled:\n        return "CANCELLED"',
           '    if job.cancelled:\n        return "FAILED"')),
    dummy("lost-hold", "a held job is not held: it starts at once",
          ('state=HELD if submission.held else QUEUED,', 'state=QUEUED,')),
    dummy("terminate-no-op", "terminate does nothing",
          ('simply cancelled. A job that already ended is left as it ended."""\n',
           'simply cancelled. A job that already ended is left as it ended."""\n        return\n')),
    dummy("no-kill", "no KILL after the grace: a job that ignores TERM runs on",
          ('                processes.signal_group(job.pid, signal.SIGKILL)\n', '')),
    dummy("marker-ignored", "the success marker is ignored: exit code 0 is COMPLETED",
          ('if job.exit_code == 0 and (not job.success_marker or marked):', 'if job.exit_code == 0:')),
    dummy("retried-submit", "a retried submit of a live name starts a second job",
          ('existing = self._jobs.get(self._active_by_name.get(submission.name, -1))', 'existing = None')),
    dummy("files-kept", "exitstatus does not forget the job",
          ('                del self._jobs[found.jobid]\n                self._reindex()\n',
           '                pass\n'),
          ('            store.delete(found.jobid)  #', '            pass  #'),
          ('        shutil.rmtree(job_dir, ignore_errors=True)\n        status = ExitStatus(',
           '        status = ExitStatus(')),
    dummy("check-constant", "check() answers without looking at SQLite, the disk or the tick thread",
          ('"""SQLite answers, the state dir is writable and the tick thread runs."""\n',
           '"""SQLite answers, the state dir is writable and the tick thread runs."""\n'
           '        return "dummy: ok"\n')),
    dummy("outage-empty", "a closed connector lists its last snapshot (or nothing), not a 503",
          ('closed) they would go stale, and upstream takes a job missing from /running as ended."""\n',
           'closed) they would go stale, and upstream takes a job missing from /running as ended."""\n'
           '        return\n')),
    dummy("release-no-op", "release does nothing",
          ('            self._commit(attrs.evolve(found, state=QUEUED))\n', '')),
    dummy("runstatus-waiting", "a running job's /runstatus is the waiting shape",
          ('        if found.state in (HELD, QUEUED):\n            return RunStatus.waiting()',
           '        if found.state in (HELD, QUEUED, RUNNING):\n            return RunStatus.waiting()')),
    dummy("no-slot-limit", "the slot limit is ignored: every job runs at once",
          ('if limit and running >= limit:', 'if False:')),
    dummy("terminate-waiting", "terminate of a job that has not started leaves it waiting",
          ('                self._commit(attrs.evolve(found, state=ENDED, cancelled=True, end_time=now))\n'
           '                log.info("job %s cancelled before it started", found.jobid)\n',
           '                pass\n')),
)


def canary(target: str) -> Mutant:
    """A copy that cannot be imported: the contract must fail it, or it tests another copy."""
    module = "plugin.py"
    text = (TARGETS[target].package / module).read_text()
    return Mutant(target, "canary", "the module cannot be imported", module,
                  ((text, "raise ImportError('the mutation canary')\n" + text),))


@attrs.frozen
class Outcome:
    mutant: Mutant
    caught_by: str  # the first failing test, "" when the suite passed
    seconds: float
    output: str

    @property
    def caught(self) -> bool:
        return bool(self.caught_by)


def write_mutant(mutant: Mutant, into: Path) -> Path:
    """A copy of the mutant's package under ``into`` with its edits applied; ``into`` is then
    the folder to put first on ``PYTHONPATH``."""
    target = TARGETS[mutant.target]
    package = into / target.package.name
    shutil.copytree(target.package, package, ignore=shutil.ignore_patterns("__pycache__"))
    path = package / mutant.module
    text = path.read_text()
    for old, new in mutant.edits:
        count = text.count(old)
        if count != 1:
            raise SystemExit(f"mutant {mutant.ident}: {old!r} occurs {count} times in {mutant.module}, "
                             "not once: the connector changed, update the mutant")
        text = text.replace(old, new)
    path.write_text(text)
    return into


def run_contract(target: Target, pythonpath: Path | None, extra: tuple[str, ...] = ()) -> tuple[str, str]:
    """Run the target's contract module (stopping at the first failure); the first failing
    test's name ("" when every test passed) and pytest's output."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                           str(target.contract), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    failed = re.findall(r"^(?:FAILED|ERROR) \S+::(\S+)", done.stdout, re.M)
    if done.returncode not in (0, 1):
        failed = failed or [f"(pytest exit code {done.returncode})"]
    return (failed[0] if failed else ""), done.stdout + done.stderr


def run_mutant(mutant: Mutant, extra: tuple[str, ...] = ()) -> Outcome:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"dssr-mutant-{mutant.ident}-") as folder:
        caught_by, output = run_contract(TARGETS[mutant.target], write_mutant(mutant, Path(folder)), extra)
    return Outcome(mutant, caught_by, time.monotonic() - started, output)


def report(outcomes: list[Outcome]) -> str:
    lines = []
    for target in sorted({outcome.mutant.target for outcome in outcomes}):
        mine = [outcome for outcome in outcomes if outcome.mutant.target == target]
        caught = sum(outcome.caught for outcome in mine)
        lines.append(f"{target}: {len(mine)} bugs, {caught} caught, {len(mine) - caught} survived")
        for outcome in mine:
            mutant = outcome.mutant
            verdict = (f"caught by {outcome.caught_by}" if outcome.caught
                       else f"SURVIVED (expected: {mutant.survives})" if mutant.survives else "SURVIVED")
            lines.append(f"  {mutant.key:<18} {outcome.seconds:5.1f} s  {mutant.bug}: {verdict}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("select", nargs="*",
                        help="targets (dummy, local) or mutant ids (local-tail); all by default")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    chosen = [mutant for mutant in MUTANTS if not args.select
              or mutant.target in args.select or mutant.ident in args.select]
    if args.list:
        print("\n".join(f"{mutant.ident}: {mutant.bug}" for mutant in chosen))
        return 0
    if not chosen:
        parser.error(f"no mutant matches {' '.join(args.select)}")
    for name in sorted({mutant.target for mutant in chosen}):
        failing, output = run_contract(TARGETS[name], None)
        if failing:
            print(output[-4000:])
            print(f"the {name} connector fails its contract without a bug ({failing}): fix that first")
            return 2
        if not run_mutant(canary(name)).caught:
            print(f"the {name} contract module does not import the copy on PYTHONPATH: no mutant would count")
            return 2
    outcomes = []
    for mutant in chosen:
        outcome = run_mutant(mutant)
        outcomes.append(outcome)
        verdict = f"caught by {outcome.caught_by}" if outcome.caught else "survived"
        print(f"{mutant.ident}: {verdict}", flush=True)
    print()
    print(report(outcomes))
    unexpected = [outcome.mutant.ident for outcome in outcomes
                  if not outcome.caught and not outcome.mutant.survives]
    if unexpected:
        print(f"\nsurvived, and not listed as what the suite does not check: {', '.join(unexpected)}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
