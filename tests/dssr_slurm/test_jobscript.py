"""The srun wrapper, run with bash and a stand-in srun that starts one task per node."""

import os
import subprocess

import pytest

from dssr_core.remote.files import job_files
from dssr_slurm.jobscript import batch_script

FAKE_SRUN = """#!/bin/bash
# srun -N N -n N --ntasks-per-node=1 /bin/bash FILE: run FILE once per "node", like Slurm.
echo "srun $*" >>"$SRUN_LOG"
nodes=$2; shift 5; worst=0
for ((rank = 0; rank < nodes; rank++)); do
    SLURM_PROCID=$rank SLURMD_NODENAME=node$rank "$@"
    rc=$?; ((rc > worst)) && worst=$rc
done
exit $worst
"""
FAKE_SCONTROL = """#!/bin/bash
[[ "$1 $2 $3" == "show hostnames node[0-1]" ]] && printf 'node0\\nnode1\\n'
"""


@pytest.fixture
def run_job(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def run(script, marker=None, nodes=2):
        wrapper = batch_script(script, str(scratch), "job-1", marker)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_ID": "42", "SLURM_NNODES": str(nodes),
               "SLURM_JOB_NUM_NODES": str(nodes), "SLURM_JOB_NODELIST": "node[0-1]", "SLURM_NTASKS": "8",
               "SLURM_SUBMIT_DIR": str(tmp_path), "SRUN_LOG": str(tmp_path / "srun.log")}
        done = subprocess.run(["bash", "-c", wrapper], env=env, cwd=tmp_path, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    run.scratch = scratch
    run.tmp = tmp_path
    return run


def test_one_copy_per_node_with_the_scheduler_mapping(run_job):
    script = ('echo "rank=$PROCESS_PROCID node=$PROCESS_NODENAME job=$JOB_JOBID list=$JOB_JOB_NODELIST '
              'hosts=$JOB_JOB_FORMATED_NODELIST nnodes=$JOB_NNODES ntasks=$JOB_NTASKS '
              'dir=$JOB_SUBMIT_DIR gpus=$JOB_GPUS_PER_NODE"')
    rc, out, err = run_job(script)
    assert rc == 0, err
    common = f"job=42 list=node[0-1] hosts=node0 node1 nnodes=2 ntasks=8 dir={run_job.tmp} gpus=0"
    assert out.splitlines() == [f"rank=0 node=node0 {common}", f"rank=1 node=node1 {common}"]
    assert (run_job.tmp / "srun.log").read_text().startswith("srun -N 2 -n 2 --ntasks-per-node=1 /bin/bash ")


def test_without_a_marker_the_exit_code_is_the_scripts(run_job):
    assert run_job("exit 3")[0] == 3
    assert run_job("true")[0] == 0


def test_with_a_marker_only_rank_0_printing_it_succeeds(run_job):
    assert run_job("echo JARVICE_CMD_SUCCESS", marker="JARVICE_CMD_SUCCESS")[0] == 0
    rc, _, err = run_job('[ "$PROCESS_PROCID" = 1 ] && echo JARVICE_CMD_SUCCESS; true',
                         marker="JARVICE_CMD_SUCCESS")
    assert rc != 0
    assert "did not print JARVICE_CMD_SUCCESS" in err
    assert run_job("echo not JARVICE_CMD_SUCCESS", marker="JARVICE_CMD_SUCCESS")[0] != 0


def test_marker_printed_but_other_nodes_failed_still_succeeds(run_job):
    script = '[ "$PROCESS_PROCID" = 0 ] && echo JARVICE_CMD_SUCCESS; [ "$PROCESS_PROCID" = 0 ]'
    assert run_job(script, marker="JARVICE_CMD_SUCCESS")[0] == 0


def test_the_script_arrives_byte_for_byte(run_job):
    tricky = ("cat <<'EOF'\n$(not run) `nor this` 'single' \"double\" \\ { } DSSR_JOB_SCRIPT\nEOF\n"
              "printf '%s\\n' 'ünïcödé'")
    rc, out, _ = run_job(tricky, nodes=1)
    assert rc == 0
    assert out == "$(not run) `nor this` 'single' \"double\" \\ { } DSSR_JOB_SCRIPT\nünïcödé\n"


def test_helper_files_are_removed_and_private_while_they_exist(run_job):
    rc, out, _ = run_job('stat -c %a "$DSSR_JOB_SCRIPT"', marker="X", nodes=1)
    assert out.splitlines()[0] == "600"
    assert sorted(os.listdir(run_job.scratch)) == []


def test_job_files_are_named_after_the_job():
    files = job_files("/scratch", "job-1", "42")
    assert files.output == "/scratch/jarvice_job-1.42.out"
    assert files.all() == ("/scratch/jarvice_job-1.42.out", "/scratch/jarvice_job-1.42.sh",
                           "/scratch/jarvice_job-1.42.task", "/scratch/jarvice_job-1.42.rank0")
    assert job_files("", "job-1", "42").output == "jarvice_job-1.42.out"
