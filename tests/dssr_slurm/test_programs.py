"""Command lines for the remote shell, and reading what Slurm answers."""

import subprocess

import pytest

from dssr_core.errors import ClusterUnavailable, ConnectorError, InvalidRequest, SchedulerRejected
from dssr_core.remote.jobs import JobRecord, check_job_id, script_fingerprint_of
from dssr_core.remote.login import EXISTING
from dssr_core.remote.ssh import CommandResult
from dssr_core.testing import wait_until
from dssr_slurm.commands import programs as commands

SQUEUE = """\
12|jarvice_job-a|kirby|RUNNING|1-02:03:04|node[01-02]|(null)
13|jarvice_job-b|mario|PENDING|0:00||
14|somebody_elses|root|RUNNING|5:00|node03|
15|jarvice_odd|name|x|RUNNING|0:01|n1|
16_3|jarvice_array|kirby|RUNNING|0:01|n1|
17|jarvice_bad name|kirby|RUNNING|0:01|n1|
18|jarvice_job-c|kirby|CANCELLED by 0|0:07|node01|
"""


def test_squeue_lines_of_our_jobs_become_records():
    assert commands.parse_squeue(SQUEUE) == [
        JobRecord("12", "job-a", "kirby", "RUNNING", 93784, ("node01", "node02")),
        JobRecord("13", "job-b", "mario", "PENDING", 0, ()),
        JobRecord("18", "job-c", "kirby", "CANCELLED", 7, ("node01",)),
    ]


def test_the_snapshots_reader_parses_only_the_lines_that_changed():
    reader = commands.SqueueReader()
    first = reader.parse(SQUEUE)
    assert first == commands.parse_squeue(SQUEUE)
    later = SQUEUE.replace("1-02:03:04", "1-02:03:09") + "19|jarvice_job-d|kirby|PENDING|0:00||\n"
    second = reader.parse(later)
    assert second == commands.parse_squeue(later)
    assert second[0].elapsed_s == 93789 and second[0] is not first[0], "a running job's line changed"
    assert second[1] is first[1] and second[2] is first[2], "unchanged lines keep their records"
    assert [record.jobid for record in reader.parse(later.replace("13|jarvice_job-b|mario|PENDING|0:00||\n",
                                                                  ""))] == ["12", "18", "19"]


def test_squeue_asks_for_the_comment():
    assert "%k" in commands.squeue_all() and "%k" in commands.squeue_job("12")


@pytest.mark.parametrize("comment, port", [
    ("dssr-service-port=2228", 2228),
    ("set by the admin; dssr-service-port=8443 | with a pipe", 8443),
    ("dssr-service-port=2228|and|pipes", 2228),
    ("(null)", None), ("", None), ("dssr-service-port=", None), ("dssr-service-port=99999", None),
    ("dssr-service-port=0", None), ("dssr-service-port=22x8", None), ("xdssr-service-port=2228", None),
    ("dssr-service-port=123456", None),
])
def test_squeue_reads_the_service_port_from_the_comment_and_never_fails_on_it(comment, port):
    (record,) = commands.parse_squeue(f"12|jarvice_job-a|kirby|RUNNING|0:05|node[01-02]|{comment}\n")
    assert (record.jobid, record.state, record.nodes) == ("12", "RUNNING", ("node01", "node02"))
    assert record.service_port == port


@pytest.mark.parametrize("comment, port, fingerprint", [
    ("dssr-service-port=2228 dssr-job-number=7 dssr-script=0123456789abcdef", 2228, "0123456789abcdef"),
    ("dssr-script=0123456789abcdef", None, "0123456789abcdef"),
    ("dssr-service-port=2228", 2228, None), ("dssr-script=0123", None, None), ("(null)", None, None),
])
def test_squeue_reads_the_scripts_fingerprint_beside_the_service_port(comment, port, fingerprint):
    (record,) = commands.parse_squeue(f"12|jarvice_job-a|kirby|RUNNING|0:05|node01|{comment}\n")
    assert (record.service_port, record.fingerprint) == (port, fingerprint)


def test_a_submit_that_finds_a_live_job_answers_its_id_and_its_comment_holds_the_fingerprint():
    found = CommandResult(0, f"{EXISTING} 12 dssr-script=0123456789abcdef\n", "")
    assert commands.parse_submit(found, "job-a") == ("12", True)
    assert script_fingerprint_of(found.stdout) == "0123456789abcdef"
    record = "/scratch/jarvice_job-a.jobid"
    assert "--format=%i %k" in commands.submit("job-a", ["--job-name=jarvice_job-a"], 15, record)


def test_sacct_lines():
    text = ("21|jarvice_job-a|CANCELLED by 1001|0:15|42|kirby\n22|other|COMPLETED|0:0|1|x\n"
            "23|jarvice_f|FAILED|3:0|2|mario\n")
    assert commands.parse_sacct(text) == [
        JobRecord("21", "job-a", "kirby", "CANCELLED", 42, exit_code=0),
        JobRecord("23", "f", "mario", "FAILED", 2, exit_code=3),
    ]


def test_submit_answers():
    def parse(*result):
        return commands.parse_submit(CommandResult(*result), "job-1")

    assert parse(0, "123\n", "") == ("123", False)
    assert parse(0, "123;cluster\n", "") == ("123", False)
    assert parse(0, "existing 77\n", "") == ("77", True)
    with pytest.raises(SchedulerRejected, match="Invalid partition name specified"):
        parse(1, "", "sbatch: error: invalid partition specified: nope\n"
              "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    with pytest.raises(ClusterUnavailable, match="Unable to contact slurm controller"):
        parse(1, "", "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
              "(connect failure)\n")
    with pytest.raises(ClusterUnavailable):
        parse(97, "", "slurm_load_jobs error: Unable to contact slurm controller")


def run_submit_command(home, path="/usr/bin:/bin", lock_wait=0.5):
    """The submit command line in a local bash (it stops before squeue in these cases)."""
    record = str(home / "jarvice_job-1.jobid")
    line = commands.submit("job-1", ["--job-name=jarvice_job-1"], lock_wait, record)
    done = subprocess.run(["/bin/bash", "-c", line], env={"HOME": str(home), "PATH": path},
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return CommandResult(done.returncode, done.stdout, done.stderr)


def test_without_flock_the_submission_says_what_to_install(tmp_path):
    with pytest.raises(ConnectorError, match=r"flock\(1\) is not installed on the login node .*util-linux"):
        commands.parse_submit(run_submit_command(tmp_path, path=str(tmp_path)), "job-1")


def test_a_lock_held_too_long_is_a_503_with_a_sentence(tmp_path):
    lock = tmp_path / commands.submit_lock("job-1")
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(["flock", str(lock), "sleep", "5"])
    try:
        wait_until(lambda: subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 1, 5,
                   what="the lock to be held")
        result = run_submit_command(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_status == commands.LOCK_NOT_TAKEN
    with pytest.raises(ClusterUnavailable, match=r"Another submission held the submit lock ~/\.dssr/locks/"
                                                 r"submit-[0-9a-f]{2}\.lock on the login node"):
        commands.parse_submit(result, "job-1")


def test_a_lock_file_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / ".dssr").write_text("a file where the folder should be")
    result = run_submit_command(tmp_path)
    with pytest.raises(ConnectorError, match=r"Cannot create the submit lock ~/\.dssr/locks/submit-.*: "
                                             "mkdir:"):
        commands.parse_submit(result, "job-1")


def test_flock_that_cannot_lock_says_the_home_must_support_it():
    result = CommandResult(commands.LOCK_NOT_TAKEN, "", "flock: 9: No locks available\n")
    with pytest.raises(ConnectorError, match=r"cannot lock .* \(flock: 9: No locks available\); the home "
                                             "directory must support flock"):
        commands.parse_submit(result, "job-1")


def test_job_names_share_one_of_256_lock_files():
    locks = {commands.submit_lock(f"job-{number}") for number in range(5000)}
    assert len(locks) == 256 and commands.submit_lock("job-1") == commands.submit_lock("job-1")


@pytest.mark.parametrize("jobid", ["12a", "", "1;id", "-1", "1 2", "$(id)", "1" * 13])
def test_job_ids_must_be_digits(jobid):
    with pytest.raises(InvalidRequest, match="digits only"):
        check_job_id(jobid)


def test_submit_command_is_valid_shell_with_hostile_looking_arguments():
    line = commands.submit("job-1", ["--job-name=jarvice_job-1", "--comment=a|b&c;$(x)`y`"], 15,
                           "/s p/x.jobid")
    assert subprocess.run(["bash", "-n", "-c", line]).returncode == 0
    assert "'--comment=a|b&c;$(x)`y`'" in line


def test_directory_listing_stays_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "file one").write_text("x")
    (root / "escape").symlink_to(tmp_path)

    def listing(path):
        done = subprocess.run(["bash", "-c", commands.list_directory(str(root), path)], capture_output=True)
        return done.returncode, done.stdout.decode()

    status, text = listing("")
    assert status == 0
    kinds = {item.split("|")[3]: item.split("|")[0] for item in text.split("\0") if item}
    assert kinds == {"sub": "d", "file one": "f", "escape": "d"}
    assert listing("sub")[0] == 0
    assert listing("escape")[0] == 4
    assert listing("missing")[0] == 3
    assert listing("file one")[0] == 3
