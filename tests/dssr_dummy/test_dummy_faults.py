"""The dummy's fault matrix (docs/reliability.md): a full or read-only state disk, a missing,
empty or damaged database, secrets at rest. Real disks: a 2 MiB tmpfs and an ext4 image that
the kernel turns read-only, mounted by the test (it runs as root, as CI does).

The rule under test: a job's outcome, once its process ended, is never replaced by a guess,
and a state that cannot be trusted stops the start with a sentence, touching nothing.
"""

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dssr_core.errors import ClusterUnavailable, ConnectorError
from dssr_dummy.store import UNWRITABLE


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed (the fault tests mount disks, as root): "
                    f"{done.stderr.strip()}", pytrace=False)


@pytest.fixture
def small_disk(tmp_path):
    """The state dir on a 2 MiB tmpfs."""
    mount_point = tmp_path / "state"
    mount_point.mkdir()
    _run("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point))
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; return the file that fills it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (65536, 4096, 512, 1):
            try:
                while handle.write(b"\0" * size):
                    pass
            except OSError:
                continue
    return filler


def waiting_script(flag: Path, code: int) -> str:
    return f"echo started; while [ ! -e {flag} ]; do sleep 0.05; done; echo done; exit {code}"


def test_a_job_that_ends_on_a_full_disk_keeps_its_true_outcome(small_disk, dummy, tmp_path, caplog):
    connector = dummy.connect()
    job = dummy.submit(connector, waiting_script(tmp_path / "go", 0))
    dummy.wait_running(connector, job)
    filler = fill(small_disk)
    with caplog.at_level(logging.INFO, logger="dssr_dummy"):
        (tmp_path / "go").touch()
        dummy.wait_ended(connector, job)  # it leaves /running though nothing can be written
        assert not (small_disk / "jobs" / job.jobid / ".exit").exists()  # the wrapper could not
        time.sleep(1.5)  # some seven ticks, each of which fails to save
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) <= 2, [r.getMessage() for r in failures]  # not one every 0.2 s
    assert "without recording its exit code" not in caplog.text

    try:
        status = connector.exitstatus(job)  # on a full disk: COMPLETED, or 503 until writable
        assert (status.state, status.rc, status.exit_code) == ("COMPLETED", 0, 0)
        return
    except ClusterUnavailable as error:
        assert error.message == UNWRITABLE
    filler.unlink()
    dummy.wait_for(lambda: not connector._unsaved, what="the outcome to be saved")
    connector.close()  # what the first server knew is on disk now: a second one knows it too
    status = dummy.connect().exitstatus(job)  # (its output is what fitted on the disk)
    assert (status.state, status.rc, status.exit_code) == ("COMPLETED", 0, 0)


def test_a_failing_job_on_a_full_disk_is_failed_with_its_code(small_disk, dummy, tmp_path):
    connector = dummy.connect()
    job = dummy.submit(connector, waiting_script(tmp_path / "go", 5))
    dummy.wait_running(connector, job)
    filler = fill(small_disk)
    (tmp_path / "go").touch()
    dummy.wait_ended(connector, job)
    filler.unlink()
    status = connector.exitstatus(job)
    assert (status.state, status.rc, status.exit_code) == ("FAILED", 1, 5)


def test_a_submit_on_a_full_disk_is_503_and_leaves_nothing(small_disk, dummy):
    connector = dummy.connect()
    filler = fill(small_disk)
    with pytest.raises(ClusterUnavailable) as refused:
        dummy.submit(connector, "echo never " + "x" * 100_000)
    assert refused.value.message == UNWRITABLE
    assert str(small_disk) not in refused.value.message
    assert connector.queued() == [] and connector.running() == []
    assert os.listdir(small_disk / "jobs") == []
    filler.unlink()
    job = dummy.submit(connector, "echo now")
    dummy.wait_ended(connector, job)
    assert connector.exitstatus(job).output == "now\n"


@pytest.fixture
def fragile_disk(tmp_path):
    """The state dir on an ext4 image mounted errors=remount-ro; ``fail()`` makes the kernel
    turn it read-only, as it does on an I/O error, with the files still open."""
    image, mount_point = tmp_path / "disk.img", tmp_path / "state"
    mount_point.mkdir()
    _run("truncate", "-s", "16M", str(image))
    _run("mkfs.ext4", "-q", "-F", str(image))
    _run("mount", "-o", "loop,errors=remount-ro", str(image), str(mount_point))
    device = Path(next(line.split()[0] for line in Path("/proc/mounts").read_text().splitlines()
                       if line.split()[1] == str(mount_point)))

    class Disk:
        path = mount_point

        @staticmethod
        def fail():
            Path(f"/sys/fs/ext4/{device.name}/trigger_fs_error").write_text("dssr fault test\n")

        @staticmethod
        def repair():
            """Unmount, check and mount again, writable (the state as the failure left it)."""
            _run("umount", str(mount_point))
            subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True)
            _run("mount", "-o", "loop,errors=remount-ro", str(image), str(mount_point))

    yield Disk
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_a_state_disk_that_turns_read_only(fragile_disk, dummy, tmp_path):
    connector = dummy.connect()
    collected_later = dummy.submit(connector, "exit 3")
    dummy.wait_ended(connector, collected_later)
    running = dummy.submit(connector, waiting_script(tmp_path / "go", 0))
    dummy.wait_running(connector, running)

    fragile_disk.fail()
    with pytest.raises(ClusterUnavailable) as refused:
        dummy.submit(connector, "echo never")
    assert refused.value.message == UNWRITABLE
    assert dummy.listed(connector, running, "running")  # what runs is still listed, not []
    with pytest.raises(ClusterUnavailable):
        connector.exitstatus(collected_later)  # 503, never a made-up status; nothing removed
    (tmp_path / "go").touch()
    dummy.wait_ended(connector, running)  # it ended: it leaves /running at once
    with pytest.raises(ClusterUnavailable):
        connector.exitstatus(running)
    with pytest.raises(ClusterUnavailable, match="not writable"):
        connector.check()  # /gc answers BAD
    assert connector._thread.is_alive()
    dummy.cleanup()

    fragile_disk.repair()
    second = dummy.connect()
    status = second.exitstatus(collected_later)
    assert (status.state, status.exit_code) == ("FAILED", 3)
    # Ended while nothing could be written, and the server stopped before the disk came back:
    # nothing recorded its exit code, so it counts FAILED without one (docs/reliability.md).
    status = second.exitstatus(running)
    assert (status.state, status.exit_code) == ("FAILED", None)
    job = dummy.submit(second, "echo back")  # and the state works again
    dummy.wait_ended(second, job)
    assert second.exitstatus(job).output == "back\n"


def test_a_read_only_state_dir_stops_the_start_with_a_sentence(small_disk, dummy):
    first = dummy.connect()
    first.close()
    _run("mount", "-o", "remount,ro", str(small_disk))
    with pytest.raises(ConnectorError) as refused:
        dummy.connect()
    assert "is not writable: Read-only file system" in refused.value.message
    assert "JARVICE_DUMMY_STATE_DIR" in refused.value.message


def _running_job_then_stop(dummy, tmp_path):
    first = dummy.connect()
    job = dummy.submit(first, waiting_script(tmp_path / "go", 0))
    dummy.wait_running(first, job)
    first.close()
    return job


@pytest.mark.parametrize("damage,words", [
    ("missing", "is missing, but"),
    ("empty", "is empty, but"),
    ("header", "is damaged"),
])
def test_a_lost_database_stops_the_start_and_keeps_the_jobs(dummy, tmp_path, damage, words):
    job = _running_job_then_stop(dummy, tmp_path)
    database = dummy.state_dir / "jobs.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    if damage == "missing":
        database.unlink()
    elif damage == "empty":
        database.write_bytes(b"")
    else:
        with open(database, "r+b") as handle:
            handle.write(b"this is no SQLite header" * 4)
    with pytest.raises(ConnectorError) as refused:
        dummy.connect()
    message = refused.value.message
    assert words in message and str(database) in message
    assert "restore" in message and "afresh" in message
    job_dir = dummy.state_dir / "jobs" / job.jobid
    assert (job_dir / "job.sh").exists()  # nothing deleted: not the folder, not its output
    (tmp_path / "go").touch()
    dummy.wait_for(lambda: (job_dir / ".exit").exists(), what="the job to end on its own")
    assert (job_dir / "output").read_text() == "started\ndone\n"


def test_a_database_older_than_the_job_folders_stops_the_start(dummy, tmp_path):
    first = dummy.connect()
    database = dummy.state_dir / "jobs.sqlite3"
    backup = tmp_path / "backup.sqlite3"
    with sqlite3.connect(database) as source, sqlite3.connect(backup) as target:
        source.backup(target)
    job = dummy.submit(first, "echo after the backup")
    dummy.wait_ended(first, job)
    first.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    backup.rename(database)
    with pytest.raises(ConnectorError) as refused:
        dummy.connect()
    assert f"does not know the job folder(s) {job.jobid}" in refused.value.message
    assert (dummy.state_dir / "jobs" / job.jobid / "output").read_text() == "after the backup\n"


def test_a_fresh_state_dir_with_no_database_starts(dummy):
    connector = dummy.connect()
    assert connector.running() == [] and (dummy.state_dir / "jobs.sqlite3").exists()


@pytest.mark.parametrize("column,value,words", [
    ("state", "'BOGUS'", "state is 'BOGUS', not one of HELD, QUEUED, RUNNING, ENDED"),
    ("number", "'seven'", "number is 'seven'"),
    ("name", "NULL", "name is None"),
])
def test_a_damaged_row_stops_the_start_with_a_sentence(dummy, column, value, words):
    first = dummy.connect()
    job = dummy.submit(first, "true", held=True)
    first.close()
    with sqlite3.connect(dummy.state_dir / "jobs.sqlite3") as database:
        database.execute("PRAGMA ignore_check_constraints = 1")
        database.execute("PRAGMA writable_schema = 0")
        if value == "NULL":  # the column is NOT NULL: rebuild the row without the constraint
            database.execute("CREATE TABLE jobs_copy AS SELECT * FROM jobs")
            database.execute("UPDATE jobs_copy SET name = NULL")
            database.execute("DROP TABLE jobs")
            database.execute("ALTER TABLE jobs_copy RENAME TO jobs")
        else:
            database.execute(f"UPDATE jobs SET {column} = {value}")
    with pytest.raises(ConnectorError) as refused:
        dummy.connect()
    message = refused.value.message
    assert f"damaged row, job {int(job.jobid)}" in message and words in message
    assert "Correct or delete that row" in message


def test_dssr_check_says_the_sentence_without_a_traceback(dummy):
    first = dummy.connect()
    dummy.submit(first, "true", held=True)
    first.close()
    with sqlite3.connect(dummy.state_dir / "jobs.sqlite3") as database:
        database.execute("UPDATE jobs SET state = 'BOGUS'")
    env = {**os.environ, "JARVICE_BAREMETAL_CONNECTOR": "dummy",
           "JARVICE_DUMMY_STATE_DIR": str(dummy.state_dir)}
    done = subprocess.run([sys.executable, "-m", "dssr_core", "check"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "has a damaged row" in done.stderr and "BOGUS" in done.stderr


UPSTREAM_SECRETS = ('JOBOBJ_CTRSECRET=eyJhdXRocyI6IHt9fQ==\n'
                    'JOBOBJ_DOCKER_SECRET={"server": "r", "username": "u", "password": "pw-at-rest"}\n')


def test_secrets_are_not_kept_in_clear_and_the_state_is_private(dummy, connector):
    # The script names the variable indirectly: a line naming it is dropped whole.
    script = UPSTREAM_SECRETS + 'v=JOBOBJ_CTR; v=${v}SECRET; echo "ran, secret: ${!v:-none}"'
    job = dummy.submit(connector, script)
    dummy.wait_ended(connector, job)
    job_dir = dummy.state_dir / "jobs" / job.jobid
    script = (job_dir / "job.sh").read_text()
    assert "eyJhdXRocyI6IHt9fQ==" not in script and "pw-at-rest" not in script
    assert "JOBOBJ_CTRSECRET" not in script
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in
             [dummy.state_dir, dummy.state_dir / "jobs", job_dir, job_dir / "job.sh",
              job_dir / "output", job_dir / ".exit", dummy.state_dir / "jobs.sqlite3",
              dummy.state_dir / "lock"]}
    assert modes == {dummy.state_dir.name: 0o700, "jobs": 0o700, job.jobid: 0o700, "job.sh": 0o600,
                     "output": 0o600, ".exit": 0o600, "jobs.sqlite3": 0o600, "lock": 0o600}
    assert connector.exitstatus(job).output == "ran, secret: none\n"


def test_an_old_state_dir_is_made_private_at_start(dummy):
    dummy.connect().close()
    os.chmod(dummy.state_dir, 0o755)
    os.chmod(dummy.state_dir / "jobs.sqlite3", 0o644)
    dummy.connect()
    assert stat.S_IMODE(dummy.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((dummy.state_dir / "jobs.sqlite3").stat().st_mode) == 0o600
