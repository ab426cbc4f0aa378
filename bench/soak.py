"""The soak: two ``dssr serve`` replicas behind haproxy on a private Slurm cluster, driven as
upstream drives them for ``--minutes``, with faults on a schedule; then every answer is checked
against Slurm's own accounting. Prints p50/p99 per endpoint, the replicas' RSS and open file
descriptors, and a verdict; exits 1 on FAIL.

    python bench/soak.py --connector slurm-cli --minutes 60
    python bench/soak.py --connector slurmrestd --minutes 3        # the smoke run of .ci/run

Needs root (the private cluster, haproxy). The driver, one thread each:

- submits: one job every ``--interval`` seconds, alternating kirby and mario; each script
  sleeps 0 to 3 s and exits with a status it chose (recorded); every 6th is held and released
  10 s later, every 8th sleeps 300 s and is terminated once it runs; every 10th is sent twice
  (the same name and number, as a client that timed out would), every 15th twice at once (both
  replicas at the same instant); a submit that got no 200 is sent again until one comes;
- polls: ``/queued`` and ``/running``, then ``/runstatus`` for every listed job, every
  ``--poll`` seconds; a job listed by neither is asked ``/exitstatus`` until it answers a final
  state;
- faults: after a warm-up, one every ``--fault-every`` seconds in turn: ``kill -9`` of one
  replica (the two alternate) restarted 5 s later; sshd, slurmctld, slurmrestd each stopped and
  started 5 s later (``cluster.sh stop-X``/``start-X``);
- samples: each replica's RSS and open fds every 5 s.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import jwt
import requests

sys.path.insert(0, str(Path(__file__).parent))
from soak_rig import SERVER_KEY, LoadBalancer, PrivateCluster, Replica  # noqa: E402

from dssr_core.testing import encode_script, shell_template  # noqa: E402

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "DEADLINE", "PREEMPTED", "BOOT_FAIL"}
USERS = ("kirby", "mario")
CHOICES = (0, 0, 0, 1, 2, 3, 7, 42)
#: after a daemon or replica is back: the status snapshot's interval, an SSH reconnect, slack
GRACE = 15.0


def bearer(user: str) -> str:
    """A JWT naming ``user``@example.org (DSSR reads the e-mail; the signature is upstream's)."""
    return jwt.encode({"email": f"{user}@example.org"}, "soak-key-dssr-does-not-check-it-at-all")


class Log:
    """Every request the driver made: when, which endpoint, status, latency, body of non-200s."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: list[tuple[float, str, int, float, str]] = []

    def add(self, started: float, endpoint: str, status: int, seconds: float, body: str) -> None:
        with self.lock:
            self.calls.append((started, endpoint, status, seconds, body if status != 200 else ""))


class Upstream:
    """Upstream's calls through the load balancer, each timed and logged; status 0 means no
    HTTP answer (connection refused or reset, timeout)."""

    def __init__(self, port: int, log: Log):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.local = threading.local()
        user, password = SERVER_KEY.split(":", 1)
        self.auth = (user, password)

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.auth = self.auth
        return self.local.session

    def call(self, method: str, path: str, args: dict | None = None, timeout: float = 60):
        endpoint = "/" + path.split("/")[1]
        started = time.monotonic()
        try:
            if args is None:
                answer = self.session().get(self.url + path, timeout=timeout)
            else:
                answer = self.session().post(self.url + path, data={"args": json.dumps(args)},
                                             timeout=timeout)
            status, text = answer.status_code, answer.text
        except requests.RequestException as error:
            status, text = 0, repr(error)
            self.local.__dict__.pop("session", None)
        self.log.add(started, endpoint, status, time.monotonic() - started, text)
        return status, text


class Job:
    def __init__(self, index: int, run: str):
        self.index = index
        self.user = USERS[index % 2]
        self.name = f"soak{run}-{index}"
        self.number = index
        self.kind = ("terminate" if index % 8 == 7 else "hold" if index % 6 == 5 else "normal")
        self.resend = ("twice-at-once" if index % 15 == 14 else "again" if index % 10 == 9 else "")
        self.choice = random.choice(CHOICES)
        seconds = 300 if self.kind == "terminate" else random.randint(0, 3)
        self.script = shell_template(f"echo soak choice={self.choice}\nsleep {seconds}\nexit {self.choice}")
        self.submitted_at = 0.0
        self.jobids: list[str] = []  # every 200 answer's job id
        self.jobid = ""
        self.released = False
        self.terminated = False
        self.seen_running = False
        self.exit: list | None = None  # the final /exitstatus answer

    def args(self) -> dict:
        args = {"name": self.name, "number": self.number, "nodes": 1,
                "hpc_script": {"shell": encode_script(self.script)}, "bearer": bearer(self.user)}
        if self.kind == "hold":
            args["hold"] = True
        return args

    def ids(self) -> dict:
        return {"name": self.name, "number": self.number, "jobid": self.jobid}


class Driver:
    def __init__(self, api: Upstream, interval: float, poll: float, run: str):
        self.api = api
        self.interval = interval
        self.poll = poll
        self.run = run
        self.jobs: list[Job] = []
        self.lock = threading.Lock()
        self.submitting = threading.Event()
        self.stopping = threading.Event()
        self.problems: list[str] = []

    def submit_once(self, job: Job) -> bool:
        status, text = self.api.call("POST", "/submit", job.args())
        if status == 200:
            job.jobids.append(str(json.loads(text)[0]))
            return True
        return False

    def submit(self, job: Job) -> None:
        job.submitted_at = time.monotonic()
        if job.resend == "twice-at-once":
            twin = threading.Thread(target=self.submit_until_answered, args=(job,))
            twin.start()
            self.submit_until_answered(job)
            twin.join()
        else:
            self.submit_until_answered(job)
            if job.resend == "again":
                self.submit_until_answered(job)
        if job.jobids:
            job.jobid = job.jobids[0]
        with self.lock:
            self.jobs.append(job)

    def submit_until_answered(self, job: Job) -> None:
        deadline = time.monotonic() + 180
        while not self.submit_once(job):
            if time.monotonic() > deadline:
                return
            time.sleep(2)

    def submitter(self) -> None:
        index = 0
        next_at = time.monotonic()
        while self.submitting.is_set():
            self.submit(Job(index, self.run))
            index += 1
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def poller(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.poll_cycle()
            except Exception:  # noqa: BLE001 - a driver bug is a finding, not a crash
                self.problems.append(traceback.format_exc())
            time.sleep(max(0.0, self.poll - (time.monotonic() - started)))

    def poll_cycle(self) -> None:
        status_q, queued = self.api.call("GET", "/queued")
        status_r, running = self.api.call("GET", "/running")
        if status_q != 200 or status_r != 200:
            return
        listed_running = {jobid for _, jobid in json.loads(running)}
        listed = {jobid for _, jobid in json.loads(queued)} | listed_running
        by_id = {}
        with self.lock:
            jobs = [job for job in self.jobs if job.jobid and job.exit is None]
        for job in jobs:
            by_id[job.jobid] = job
        for name, jobid in json.loads(queued) + json.loads(running):
            job = by_id.get(str(jobid))
            self.api.call("POST", "/runstatus", {"name": name, "number": job.number if job else 1,
                                                 "jobid": jobid})
        now = time.monotonic()
        for job in jobs:
            if job.jobid in listed_running:
                job.seen_running = True
            if job.kind == "hold" and not job.released and now - job.submitted_at > 10:
                status, _ = self.api.call("POST", "/release", job.ids())
                job.released = status == 200
            if job.kind == "terminate" and not job.terminated and job.seen_running:
                status, _ = self.api.call("POST", "/terminate", job.ids())
                job.terminated = status == 200
            if job.jobid not in listed and now - job.submitted_at > 6:
                self.collect(job)

    def collect(self, job: Job) -> None:
        status, text = self.api.call("POST", "/exitstatus", job.ids())
        if status != 200:
            return
        answer = json.loads(text)
        state = answer[2][1].split("termination state: ")[-1].split(" ")[0] if answer[2] else ""
        if state in FINAL_STATES:
            job.exit = answer

    def unfinished(self) -> list[Job]:
        with self.lock:
            return [job for job in self.jobs if job.jobid and job.exit is None]


class Faults:
    """The schedule: ``(name, started, ended)`` of each fault, ended when what it stopped answers
    again."""

    def __init__(self, cluster: PrivateCluster, replicas: list[Replica]):
        self.cluster = cluster
        self.replicas = replicas
        self.windows: list[tuple[str, float, float]] = []
        self.kills = 0

    def inject(self, kind: str) -> None:
        started = time.monotonic()
        if kind == "replica":
            replica = self.replicas[self.kills % len(self.replicas)]
            self.kills += 1
            kind = f"kill -9 replica {replica.name}"
            replica.kill()
            time.sleep(5)
            replica.start()
        else:
            self.cluster.run(f"stop-{kind}")
            time.sleep(5)
            self.cluster.run(f"start-{kind}")
            kind = f"restart {kind}"
        self.windows.append((kind, started, time.monotonic()))
        print(f"  {time.strftime('%H:%M:%S')} {kind}: {time.monotonic() - started:.1f} s", flush=True)

    def inside(self, started: float, seconds: float = 0.0) -> bool:
        """Whether a request that began at ``started`` and took ``seconds`` met a fault window."""
        return any(started <= end + GRACE and started + seconds >= start for _, start, end in self.windows)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def sentence(body: str) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return (isinstance(answer, dict) and bool(answer.get("title"))
            and len(str(answer.get("description", ""))) > 10)


class Verdict:
    def __init__(self):
        self.checks: list[tuple[str, bool, str]] = []

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append((what, ok, detail))

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    def print(self) -> None:
        for what, ok, detail in self.checks:
            print(f"  {'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}")


def check_accounting(driver: Driver, cluster: PrivateCluster, verdict: Verdict) -> None:
    """Every answered submit is exactly one Slurm job with its exit status; sacct is the judge."""
    rows = cluster.slurm("sacct", "-a", "-X", "-n", "-P", "-S", "now-2days", "-o",
                         "JobID,JobName,State,ExitCode,User").splitlines()
    by_name: dict[str, list[list[str]]] = {}
    for row in rows:
        jobid, name, state, code, user = row.split("|")
        if name.startswith(f"jarvice_soak{driver.run}-"):
            by_name.setdefault(name[len("jarvice_"):], []).append([jobid, state, code, user])
    answered = [job for job in driver.jobs if job.jobid]
    unanswered = [job for job in driver.jobs if not job.jobid]
    twins, disagree, exits, terminated, owners = [], [], [], [], []
    for job in answered:
        records = by_name.get(job.name, [])
        if len(records) != 1 or records[0][0] != job.jobid:
            twins.append(f"{job.name}: answered {sorted(set(job.jobids))}, Slurm has "
                         f"{[r[0] for r in records]}")
            continue
        if len(set(job.jobids)) != 1:
            disagree.append(f"{job.name}: {job.jobids}")
        _, state, code, user = records[0]
        if user != job.user:
            owners.append(f"{job.name}: {user}")
        if job.exit is None:
            continue
        rc = job.exit[0]
        if job.kind == "terminate":
            if rc != -15 or not state.startswith("CANCELLED"):
                terminated.append(f"{job.name}: rc {rc}, Slurm {state}")
        elif rc != (0 if job.choice == 0 else 1) or code != f"{job.choice}:0" or \
                f"soak choice={job.choice}" not in job.exit[2][0]:
            exits.append(f"{job.name}: chose {job.choice}, DSSR rc {rc} "
                         f"({job.exit[2][1][:60]}), Slurm {state} {code}")
    for job in unanswered:
        if len(by_name.get(job.name, [])) > 1:
            twins.append(f"{job.name} (never answered): Slurm has {len(by_name[job.name])} jobs")
    resent = sum(1 for job in answered if len(job.jobids) > 1)
    verdict.check(f"every answered submit is exactly one Slurm job ({len(answered)} answered, "
                  f"{resent} of them answered more than once)", not twins, "; ".join(twins[:5]))
    verdict.check("every answer to a re-sent submit names the same job", not disagree,
                  "; ".join(disagree[:5]))
    verdict.check("every submit was answered within 3 minutes", not unanswered,
                  ", ".join(job.name for job in unanswered[:5]))
    verdict.check("every job runs as its user", not owners, "; ".join(owners[:5]))
    collected = [job for job in answered if job.exit is not None]
    verdict.check(f"every job's /exitstatus was collected ({len(collected)} of {len(answered)})",
                  len(collected) == len(answered),
                  ", ".join(j.name for j in answered if j.exit is None)[:300])
    verdict.check("every exit status is the script's choice (DSSR's rc, Slurm's ExitCode, the output)",
                  not exits, "; ".join(exits[:5]))
    verdict.check(f"terminated jobs answer -15 ({sum(j.terminated for j in answered)} terminated)",
                  not terminated, "; ".join(terminated[:5]))


def check_answers(log: Log, faults: Faults, verdict: Verdict, began: float) -> None:
    outside, bad_inside, lb_cut, inside_503 = [], [], 0, 0
    for started, endpoint, status, seconds, body in log.calls:
        if status == 200 or 400 <= status < 500:
            continue
        if not faults.inside(started, seconds):
            outside.append(f"at {started - began:.1f} s {endpoint} {status} {body[:120]}")
        elif status == 503 and sentence(body):
            inside_503 += 1
        elif status in (0, 502) and any(kind.startswith("kill") and started <= end + GRACE
                                        and started + seconds >= start
                                        for kind, start, end in faults.windows):
            lb_cut += 1  # the killed replica had this request: cut, as a Service's reset would
        else:
            bad_inside.append(f"{endpoint} {status} {body[:120]}")
    verdict.check("no 5xx or lost answer outside a fault window", not outside, "; ".join(outside[:5]))
    verdict.check(f"inside fault windows only 503 with a sentence ({inside_503}), or a request "
                  f"cut by a replica's kill -9 ({lb_cut})", not bad_inside, "; ".join(bad_inside[:5]))
    client = [f"{endpoint} {status} {body[:120]}" for _, endpoint, status, _, body in log.calls
              if 400 <= status < 500]
    verdict.check("no 4xx", not client, "; ".join(client[:5]))


def check_flat(replicas: list[Replica], verdict: Verdict, warmup: float) -> list[str]:
    """Each process that lived long enough: RSS and fds after warm-up against the end of its life."""
    lines = []
    for replica in replicas:
        for life in replica.lives:
            samples = life["samples"]
            if not samples:
                continue
            span = samples[-1][0] - life["started"]
            settled = [s for s in samples if s[0] - life["started"] >= warmup]
            head = [s for s in settled if s[0] - settled[0][0] <= 60] if settled else []
            tail = [s for s in samples if samples[-1][0] - s[0] <= 60]
            peak = max(s[1] for s in samples) / 1024
            if span < warmup + 90 or not head:
                lines.append(f"  replica {replica.name} pid {life['pid']}: lived {span:.0f} s, "
                             f"RSS peak {peak:.0f} MB (too short to judge)")
                continue
            rss0, rss1 = (statistics.median(s[1] for s in part) / 1024 for part in (head, tail))
            fds0, fds1 = (statistics.median(s[2] for s in part) for part in (head, tail))
            flat = rss1 <= rss0 * 1.10 + 5 and fds1 <= fds0 + 5
            lines.append(f"  replica {replica.name} pid {life['pid']}: lived {span:.0f} s, RSS "
                         f"{rss0:.0f} -> {rss1:.0f} MB (peak {peak:.0f}), fds {fds0:.0f} -> {fds1:.0f}")
            verdict.check(f"replica {replica.name} pid {life['pid']}: RSS and fds flat after warm-up "
                          f"({rss0:.0f} -> {rss1:.0f} MB, {fds0:.0f} -> {fds1:.0f} fds)", flat)
    return lines


def print_latencies(log: Log, faults: Faults) -> None:
    groups: dict[str, list[float]] = {}
    for started, endpoint, status, seconds, _ in log.calls:
        if status == 200:
            groups.setdefault(endpoint, []).append(seconds)
            if not faults.inside(started, seconds):
                groups.setdefault(endpoint + " (calm)", []).append(seconds)
    print(f"  {'endpoint':<24} {'answers':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for endpoint in sorted(groups):
        values = groups[endpoint]
        print(f"  {endpoint:<24} {len(values):>8} {statistics.median(values) * 1000:>8.1f} "
              f"{percentile(values, 0.99) * 1000:>8.1f} {max(values) * 1000:>8.1f}")


def soak(connector: str, minutes: float, version: str, interval: float, poll: float,
         fault_every: float, keep: bool) -> bool:
    run = f"{random.randrange(16**4):04x}"
    print(f"soak {run}: {connector} on a private Slurm {version} cluster for {minutes:g} min, a submit "
          f"every {interval:g} s, a poll every {poll:g} s, a fault every {fault_every:g} s", flush=True)
    cluster = PrivateCluster(connector, version)
    cluster.up()
    log_dir = Path(tempfile.mkdtemp(prefix=f"soak-{connector}-"))
    env = {**os.environ, **cluster.env, "JARVICE_BAREMETAL_CONNECTOR": connector,
           "JARVICE_BAREMETAL_EXECUTOR": "shell", "JARVICE_SCHED_SERVER_KEY": SERVER_KEY,
           "JARVICE_SCHED_LOGLEVEL": "30",
           # slurmrestd reads the output over SSH too, so its /exitstatus shows the job's own words
           "JARVICE_SLURMRESTD_OUTPUT_ACCESS": "ssh"}
    replicas = [Replica(name, env, log_dir) for name in ("a", "b")]
    balancer = LoadBalancer(replicas, log_dir)
    log = Log()
    faults = Faults(cluster, replicas)
    driver = Driver(Upstream(balancer.port, log), interval, poll, run)
    sampling = threading.Event()
    verdict = Verdict()
    try:
        for replica in replicas:
            replica.start()
        balancer.start()
        print(f"  replicas on ports {[r.port for r in replicas]}, haproxy on {balancer.port}, "
              f"logs in {log_dir}", flush=True)

        def sampler():
            while not sampling.wait(5):
                for replica in replicas:
                    replica.sample()

        threads = [threading.Thread(target=driver.submitter), threading.Thread(target=driver.poller),
                   threading.Thread(target=sampler)]
        driver.submitting.set()
        began = time.monotonic()
        for thread in threads:
            thread.start()
        warmup = min(120.0, max(30.0, minutes * 60 / 10))
        end_at = began + minutes * 60
        kinds = ["replica", "sshd", "slurmctld", "slurmrestd"]
        next_fault = began + warmup
        count = 0
        next_report = began + 300
        while time.monotonic() < end_at:
            if time.monotonic() >= next_report:
                next_report += 300
                print(f"  {time.strftime('%H:%M:%S')} {len(driver.jobs)} jobs submitted, "
                      f"{sum(job.exit is not None for job in driver.jobs)} collected, {len(log.calls)} "
                      f"requests, {sum(call[2] != 200 for call in log.calls)} not 200", flush=True)
            if time.monotonic() >= next_fault and end_at - time.monotonic() > 45:
                faults.inject(kinds[count % len(kinds)])
                count += 1
                next_fault += fault_every
            time.sleep(0.5)
        driver.submitting.clear()
        threads[0].join()
        drain = time.monotonic() + 180
        while driver.unfinished() and time.monotonic() < drain:
            time.sleep(2)
        driver.stopping.set()
        threads[1].join()
        sampling.set()
        threads[2].join()
        elapsed = time.monotonic() - began
        print(f"\nsoak {run} on {connector}: {elapsed / 60:.1f} min, {len(driver.jobs)} jobs, "
              f"{len(log.calls)} requests, {len(faults.windows)} faults, "
              f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print_latencies(log, faults)
        with (log_dir / "calls.jsonl").open("w") as out:
            for started, endpoint, status, seconds, body in log.calls:
                out.write(json.dumps([round(started - began, 3), endpoint, status, round(seconds, 4),
                                      body[:300]]) + "\n")
            for kind, start, end in faults.windows:
                out.write(json.dumps(["fault", kind, round(start - began, 3), round(end - began, 3)]) + "\n")
        for line in check_flat(replicas, verdict, warmup):
            print(line)
        check_accounting(driver, cluster, verdict)
        check_answers(log, faults, verdict, began)
        verdict.check("the driver ran without an error", not driver.problems,
                      driver.problems[0][-400:] if driver.problems else "")
    finally:
        sampling.set()
        driver.submitting.clear()
        driver.stopping.set()
        balancer.stop()
        for replica in replicas:
            replica.stop()
        if not keep:
            cluster.down()
    verdict.print()
    print(f"VERDICT {connector}: {'PASS' if verdict.passed else 'FAIL'}", flush=True)
    return verdict.passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connector", action="append", choices=["slurm-cli", "slurmrestd"],
                        help="one soak per connector given, one after the other (default: both)")
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--slurm", default="26.05", choices=["24.11", "26.05"])
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between submits")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between upstream's polls")
    parser.add_argument("--fault-every", type=float, default=None,
                        help="seconds between faults (default: 4 in the run, at least every 3 min)")
    parser.add_argument("--keep", action="store_true", help="leave the private cluster up")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the soak needs root: it runs a private Slurm cluster and haproxy")
    fault_every = args.fault_every or min(180.0, max(20.0, (args.minutes * 60 - 90) / 4))
    results = [soak(connector, args.minutes, args.slurm, args.interval, args.poll, fault_every, args.keep)
               for connector in args.connector or ["slurm-cli", "slurmrestd"]]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
