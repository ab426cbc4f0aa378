"""The logging of ``dssr serve``: every line reaches stderr, warnings while the process runs."""

import os
import select
import subprocess
import sys
import textwrap

SETUP = """
import atexit, logging, sys, threading
from dssr_core.cli.logs import configure_logging
from dssr_core.settings import Settings
atexit.register(lambda: logging.getLogger("late").warning("logged by an earlier atexit handler"))
configure_logging(Settings.from_env({}))
"""


def run_child(body: str, **kwargs) -> subprocess.Popen:
    code = SETUP + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, **kwargs)


def test_nothing_is_lost_at_exit():
    child = run_child("""
        def work(n):
            for i in range(2000):
                logging.getLogger("dssr_core.access").info("thread %d line %d", n, i)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        try:
            1 / 0
        except ZeroDivisionError:
            logging.getLogger("dssr_core.app").exception("failed on purpose")
        raise SystemExit(0)
    """)
    stderr = child.communicate(timeout=120)[1].decode()
    assert child.returncode == 0, stderr
    lines = stderr.splitlines()
    assert sum(" INFO dssr_core.access: thread " in line for line in lines) == 16 * 2000
    assert "thread 15 line 1999" in stderr
    assert "ERROR dssr_core.app: failed on purpose" in stderr and "ZeroDivisionError" in stderr
    assert lines[-1].endswith("WARNING late: logged by an earlier atexit handler")


def test_a_warning_reaches_stderr_while_the_process_runs():
    child = run_child("""
        logging.getLogger("dssr_core.app").info("started")
        logging.getLogger("dssr_core.app").warning("the cluster is not reachable")
        sys.stdin.read()
    """, stdin=subprocess.PIPE)
    try:
        shown = b""
        while shown.count(b"\n") < 2:
            ready, _, _ = select.select([child.stderr], [], [], 60)
            assert ready, f"no log line while the process runs; so far: {shown!r}"
            shown += os.read(child.stderr.fileno(), 4096)
        started, warning = shown.decode().splitlines()
        assert "INFO dssr_core.app: started" in started
        assert "WARNING dssr_core.app: the cluster is not reachable" in warning
        assert child.poll() is None
    finally:
        child.stdin.close()
        child.wait(30)


def test_the_scheduler_log_level_reaches_every_connector_to_a_scheduler_and_their_ssh():
    child = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import logging
        from dssr_core.cli.logs import configure_logging, stop_logging
        from dssr_core.settings import Settings
        configure_logging(Settings.from_env({"JARVICE_SCHED_LOGLEVEL": "INFO",
                                             "JARVICE_SLURM_SCHED_LOGLEVEL": "DEBUG"}))
        for name in ("dssr_slurm.commands", "dssr_gridengine.connector", "dssr_core.remote.ssh"):
            logging.getLogger(name).debug("debug from %s", name)
        logging.getLogger("dssr_core.app").debug("not shown")
        stop_logging()
    """)], capture_output=True, text=True, timeout=60)
    lines = child.stderr.splitlines()
    for name in ("dssr_slurm.commands", "dssr_gridengine.connector", "dssr_core.remote.ssh"):
        assert any(f"debug from {name}" in line for line in lines), child.stderr
    assert "not shown" not in child.stderr
