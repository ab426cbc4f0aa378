"""Job facts -> sbatch options."""

import pytest

from dssr_core.errors import InvalidRequest
from dssr_core.models import JobFacts
from dssr_slurm.options import (
    device_option,
    sbatch_arguments,
    slurm_time,
    submission_options,
)
from dssr_slurm.ssh import quote_command


def options_of(facts, held=False, scratch="/scratch"):
    return dict(submission_options(facts, name="job-1", scratch_dir=scratch, held=held))


def test_every_fact_becomes_an_option():
    facts = JobFacts(nodes=2, cores=4, gpus=1, memory_gb=16, walltime_s=90061, licenses="matlab:2",
                     partition="gpu", scheduler_options=(("qos", "high"), ("constraint", "a|b")))
    assert submission_options(facts, name="job-1", scratch_dir="/scratch", held=True) == [
        ("job-name", "jarvice_job-1"),
        ("output", "/scratch/jarvice_job-1.%j.out"),
        ("nodes", "2"),
        ("ntasks", "8"),
        ("partition", "gpu"),
        ("mem", "16G"),
        ("gpus-per-node", "1"),
        ("exclusive", None),
        ("time", "1-01:01:01"),
        ("licenses", "matlab:2"),
        ("hold", None),
        ("qos", "high"),
        ("constraint", "a|b"),
    ]


def test_defaults_leave_out_what_was_not_asked():
    options = options_of(JobFacts(exclusive=False))
    assert set(options) == {"job-name", "output", "nodes", "ntasks"}


def test_a_service_port_is_remembered_in_the_job_comment():
    options = submission_options(JobFacts(), name="job-1", scratch_dir="/s", held=False, service_port=2228)
    assert ("comment", "dssr-service-port=2228") in options
    assert sbatch_arguments(options)[-1] == "--comment=dssr-service-port=2228"
    assert "comment" not in options_of(JobFacts())


def test_output_in_the_home_directory_when_no_scratch_dir_and_percent_escaped():
    assert options_of(JobFacts(), scratch="")["output"] == "jarvice_job-1.%j.out"
    assert options_of(JobFacts(), scratch="/s%x")["output"] == "/s%%x/jarvice_job-1.%j.out"


def test_arguments_are_quoted_for_the_shell():
    arguments = sbatch_arguments([("job-name", "jarvice_x"), ("exclusive", None), ("comment", "a|b&c")])
    assert arguments == ["--job-name=jarvice_x", "--exclusive", "--comment=a|b&c"]
    assert quote_command(*arguments) == "--job-name=jarvice_x --exclusive '--comment=a|b&c'"


@pytest.mark.parametrize("value", ["$(touch /tmp/x)", "`id`", "a;b", "a b", "'q'", '"q"', "a\\b",
                                   "-x", "--wrap=id", "a>b", "", "x" * 300])
def test_device_values_that_could_mislead_are_refused(value):
    with pytest.raises(InvalidRequest, match="sbatch_comment"):
        device_option("comment", value)


@pytest.mark.parametrize("option", ["container", "bbf", "clusters", "nodefile"])
def test_device_options_that_leave_the_job_are_refused(option):
    with pytest.raises(InvalidRequest, match="not allowed"):
        device_option(option, "x")


def test_slurm_time():
    assert slurm_time(59) == "0-00:00:59"
    assert slurm_time(3 * 86400 + 3600) == "3-01:00:00"
