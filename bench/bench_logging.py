"""What an access-log line costs the thread that logs it, with 16 threads logging at once.

``queue`` is what ``dssr serve`` sets up (``dssr_core.cli.logs``: a QueueHandler, one
QueueListener thread writing to stderr); ``direct`` is a StreamHandler on stderr, where every
thread writes and flushes under the handler's lock. stderr goes to a file, as under a
process manager. Each round runs in a fresh process; the median of the rounds is printed,
with the check that every line reached the file.

Run: ``nox -s bench`` (or ``python bench/bench_logging.py [lines per thread]``). Prints figures only.
"""

import json
import logging
import subprocess
import sys
import tempfile
import threading
import time

THREADS = 16
LINES = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5000
ROUNDS = 5
SETUPS = ("queue", "direct")


def log_from_threads(lines: int) -> dict:
    """Every thread logs ``lines`` access lines; the figures of the logging threads."""
    access = logging.getLogger("dssr_core.access")
    cpu = []
    start = threading.Barrier(THREADS + 1)

    def work():
        start.wait()
        began = time.thread_time()
        for _ in range(lines):
            access.info("%s %s %s %.1fms", "POST", "/runstatus", "200", 0.3)
        cpu.append(time.thread_time() - began)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    total = THREADS * lines
    return {"lines_per_s": total / wall, "cpu_us_per_line": sum(cpu) / total * 1e6}


def child(setup: str) -> None:
    if setup == "queue":
        from dssr_core.cli.logs import configure_logging, stop_logging
        from dssr_core.settings import Settings

        configure_logging(Settings.from_env({}))
    else:
        from dssr_core.cli.logs import LOG_FORMAT

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().handlers[:] = [handler]
        logging.getLogger().setLevel(logging.INFO)
        logging._srcfile = None
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        stop_logging = sys.stderr.flush
    cpu_began = time.process_time()
    figures = log_from_threads(LINES)
    began = time.perf_counter()
    stop_logging()
    figures["drain_ms"] = (time.perf_counter() - began) * 1000
    figures["process_cpu_us_per_line"] = (time.process_time() - cpu_began) / (THREADS * LINES) * 1e6
    print(json.dumps(figures))


def round_of(setup: str) -> dict:
    with tempfile.TemporaryFile() as stderr:
        done = subprocess.run([sys.executable, __file__, str(LINES), setup], stderr=stderr,
                              stdout=subprocess.PIPE, text=True, check=True)
        stderr.seek(0)
        figures = json.loads(done.stdout)
        figures["lines_written"] = stderr.read().count(b"\n")
    return figures


def main() -> None:
    rounds = {setup: [] for setup in SETUPS}
    for _ in range(ROUNDS):
        for setup in SETUPS:
            rounds[setup].append(round_of(setup))
    print(f"Logging benchmark: {THREADS} threads x {LINES} access lines, stderr to a file, "
          f"median of {ROUNDS} rounds")
    print(f"{'setup':<8} {'lines/s':>9} {'logging threads CPU us/line':>28} "
          f"{'process CPU us/line':>20} {'drain ms':>9} {'lost':>5}")
    for setup, figures in rounds.items():
        median = sorted(figures, key=lambda f: f["lines_per_s"])[ROUNDS // 2]
        lost = THREADS * LINES - median["lines_written"]
        print(f"{setup:<8} {median['lines_per_s']:>9.0f} {median['cpu_us_per_line']:>28.1f} "
              f"{median['process_cpu_us_per_line']:>20.1f} {median['drain_ms']:>9.1f} {lost:>5}")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        child(sys.argv[2])
    else:
        main()
