"""Grid Engine's words without a cluster: qstat -xml and qacct read, states, qsub options and
refusals, the batch script, and the submit command run by bash against test doubles of qstat
and qsub (the live tests run the real ones)."""

import os
import subprocess

import pytest

from dssr_core.errors import ClusterUnavailable, InvalidRequest, SchedulerRejected
from dssr_core.models import JobFacts, JobRef, Submission
from dssr_core.plugins import make_registry
from dssr_core.remote.jobs import matching
from dssr_core.remote.ssh import CommandResult
from dssr_gridengine import commands
from dssr_gridengine.jobscript import batch_script
from dssr_gridengine.jobspec import qsub_arguments
from dssr_gridengine.settings import GridEngineOptions
from dssr_gridengine.states import ended_state, live_state

QSTAT = """2026-12-07T13:20:10
--dssr--
<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>7</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>jarvice_run-1</JB_name>
      <JB_owner>kirby</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-12-07T13:19:41</JAT_start_time>
      <queue_name>all.q@node07</queue_name>
      <slots>2</slots>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>8</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>jarvice_held-1</JB_name>
      <JB_owner>mario</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-12-07T13:19:27</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
    <job_list state="pending">
      <JB_job_number>9</JB_job_number>
      <JB_name>somebody-elses</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
    </job_list>
  </job_info>
</job_info>
"""

QACCT = """==============================================================
qname        all.q
hostname     node07
owner        kirby
jobname      jarvice_run-1
jobnumber    7
failed       0
exit_status  0
ru_wallclock 12s
==============================================================
qname        all.q
hostname     node07
owner        kirby
jobname      jarvice_run-1
jobnumber    7
failed       100 : assumedly after job
exit_status  137
ru_wallclock 30s
"""


def test_qstat_gives_our_jobs_with_state_host_and_elapsed_time_by_the_clusters_clock():
    records = commands.parse_status(QSTAT)
    assert [(r.jobid, r.name, r.user, r.state, r.nodes, r.elapsed_s) for r in records] == [
        ("7", "run-1", "kirby", "RUNNING", ("node07",), 29),
        ("8", "held-1", "mario", "PENDING", (), 0),
    ]


def test_qstat_that_is_not_xml_is_an_error_not_an_empty_list():
    with pytest.raises(Exception, match="not XML"):
        commands.parse_status("2026-12-07T13:20:10\n--dssr--\nerror: commlib error")


def test_qacct_gives_each_record_and_the_last_of_a_reused_id_counts():
    records = commands.parse_accounting(QACCT)
    assert [(r.state, r.exit_code, r.elapsed_s) for r in records] == [("COMPLETED", 0, 12),
                                                                       ("CANCELLED", 137, 30)]
    assert matching(JobRef("run-1", 1, "7"), records).state == "CANCELLED"
    assert matching(JobRef("other", 1, "7"), records) is None


@pytest.mark.parametrize(("letters", "state"), [("qw", "PENDING"), ("hqw", "PENDING"), ("Eqw", "PENDING"),
                                                ("r", "RUNNING"), ("t", "RUNNING"), ("Rr", "RUNNING"),
                                                ("dr", "COMPLETING"), ("s", "SUSPENDED"), ("S", "SUSPENDED")])
def test_live_states(letters, state):
    assert live_state(letters) == state


@pytest.mark.parametrize(("failed", "exit_status", "state"), [
    ("0", 0, "COMPLETED"), ("0", 3, "FAILED"), ("100 : assumedly after job", 137, "CANCELLED"),
    ("100 : assumedly after job", 143, "CANCELLED"), ("0", 137, "FAILED"),
    ("26  : opening input/output file", 0, "FAILED"), ("1  : assumedly before job", None, "FAILED")])
def test_ended_states(failed, exit_status, state):
    assert ended_state(failed, exit_status) == state


def submission(**facts) -> Submission:
    held = facts.pop("held", False)
    port = facts.pop("port", None)
    return Submission(name="job-1", number=12, script="true\n", facts=JobFacts(**facts), held=held,
                      service_port=port)


def test_devices_become_qsub_options():
    wanted = submission(cores=4, memory_gb=8, walltime_s=3600, partition="long.q", held=True, port=2228)
    arguments = qsub_arguments(wanted, "/scratch", GridEngineOptions())
    assert arguments == ["-terse", "-S", "/bin/bash", "-N", "jarvice_job-1",
                         "-o", "/scratch/jarvice_job-1.$JOB_ID.out", "-j", "y", "-notify", "-pe", "smp", "4",
                         "-l", "h_vmem=2048M,h_rt=3600", "-q", "long.q", "-h",
                         "-ac", "dssr-service-port=2228,dssr-job-number=12"]


def test_gpus_and_exclusive_need_the_sites_resources():
    options = GridEngineOptions(gpu_resource="gpu", exclusive_resource="exclusive",
                                memory_resource="mem_free")
    arguments = qsub_arguments(submission(gpus=2, memory_gb=1, exclusive=True), "", options)
    assert arguments[arguments.index("-l") + 1] == "mem_free=1024M,gpu=2,exclusive=true"
    assert "-l" not in qsub_arguments(submission(exclusive=True), "", GridEngineOptions())


@pytest.mark.parametrize(("facts", "words"), [
    ({"nodes": 2}, "runs a job on one host"),
    ({"gpus": 1}, "no standard GPU resource"),
    ({"licenses": "matlab:1"}, "licenses is Slurm's"),
    ({"scheduler_options": (("qos", "high"),)}, "sbatch_qos is an sbatch option"),
    ({"partition": "a;b"}, "not a Grid Engine queue name"),
])
def test_what_grid_engine_cannot_do_is_refused_with_a_sentence(facts, words):
    with pytest.raises(InvalidRequest, match=words):
        qsub_arguments(submission(**facts), "", GridEngineOptions())


@pytest.mark.parametrize("marker", [None, "JARVICE_CMD_SUCCESS"])
def test_the_batch_script_runs_the_job_with_the_scheduler_mapping(tmp_path, marker):
    body = 'echo "$JOB_JOBID $JOB_NNODES $JOB_NTASKS $PROCESS_PROCID"\n'
    body += f"echo {marker}\n" if marker else ""
    script = tmp_path / "batch.sh"
    script.write_text(batch_script(body, str(tmp_path), "job-1", marker))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                          env={**os.environ, "JOB_ID": "42", "NSLOTS": "3"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "42 1 3 0"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["batch.sh"]  # helper files removed


def test_a_missing_success_marker_fails_the_job(tmp_path):
    script = tmp_path / "batch.sh"
    script.write_text(batch_script("echo no marker\n", str(tmp_path), "job-1", "JARVICE_CMD_SUCCESS"))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                          env={**os.environ, "JOB_ID": "1"})
    assert done.returncode == 1 and "did not print" in done.stderr


@pytest.fixture
def doubles(tmp_path):
    """Test doubles of qstat (prints QSTAT's XML) and qsub (answers job 77) first on the PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "qstat.xml").write_text(QSTAT.partition("--dssr--\n")[2])
    (bin_dir / "qstat").write_text(f"#!/bin/sh\ncat {tmp_path / 'qstat.xml'}\n")
    (bin_dir / "qsub").write_text("#!/bin/sh\ncat >/dev/null\necho 77\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {**os.environ, "HOME": str(tmp_path), "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize(("name", "answer"), [("held-1", "existing 8"), ("run-1", "existing 7"),
                                              ("new-1", "77")])
def test_submit_answers_the_live_job_of_the_name_or_submits(doubles, name, answer):
    command = commands.submit(name, ["-N", f"jarvice_{name}"], lock_wait=2)
    done = subprocess.run(["bash", "-c", command], input="echo job\n", capture_output=True, text=True,
                          env=doubles)
    assert (done.returncode, done.stdout.strip()) == (0, answer), done.stderr
    answered = commands.parse_submit(CommandResult(0, done.stdout, ""), name)
    assert answered == (answer.split()[-1], "existing" in answer)


def test_submit_failures_say_whether_grid_engine_answered():
    unreachable = CommandResult(1, "", "error: unable to contact qmaster using port 6444 on host \"vm\"")
    with pytest.raises(ClusterUnavailable, match="could not take the job"):
        commands.parse_submit(unreachable, "job-1")
    refused = CommandResult(1, "", "Unable to run job: job requests unknown queue \"x\".")
    with pytest.raises(SchedulerRejected, match="refused the job"):
        commands.parse_submit(refused, "job-1")
    with pytest.raises(ClusterUnavailable, match="does not answer"):
        raise commands.failed("qstat", unreachable)


def test_dssr_lists_the_connector_with_its_distribution():
    backend = make_registry().select("connector", "gridengine")
    assert (backend.distribution, backend.version) == ("dssr_gridengine", "0.2.0")
    assert backend.spec.description.startswith("Grid Engine over SSH")
