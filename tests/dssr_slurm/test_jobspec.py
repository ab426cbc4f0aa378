"""A submission -> one job spec (typed, its devices checked) -> sbatch arguments, slurmrestd's fields."""

import pytest

from dssr_core.errors import InvalidRequest
from dssr_core.models import JobFacts, Submission
from dssr_core.remote.ssh import quote_command
from dssr_slurm.commands.programs import sbatch_arguments, slurm_time
from dssr_slurm.jobspec import SET_BY_DSSR, Device, JobSpec, device, job_spec, rest_device_fields


def spec_of(facts, held=False, scratch="/scratch", service_port=None):
    submission = Submission(name="job-1", number=1, script="true\n", facts=facts, held=held,
                            service_port=service_port)
    return job_spec(submission, scratch)


def options_of(facts, held=False, scratch="/scratch"):
    return dict(argument.removeprefix("--").partition("=")[::2] for argument in
                sbatch_arguments(spec_of(facts, held=held, scratch=scratch)))


def test_every_fact_becomes_an_option():
    facts = JobFacts(nodes=2, cores=4, gpus=1, memory_gb=16, walltime_s=90061, licenses="matlab:2",
                     partition="gpu", scheduler_options=(("qos", "high"), ("constraint", "a|b")))
    assert sbatch_arguments(spec_of(facts, held=True)) == [
        "--job-name=jarvice_job-1",
        "--output=/scratch/jarvice_job-1.%j.out",
        "--nodes=2",
        "--ntasks=8",
        "--partition=gpu",
        "--mem=16384M",
        "--gpus-per-node=1",
        "--exclusive",
        "--time=1-01:01:01",
        "--licenses=matlab:2",
        "--hold",
        "--qos=high",
        "--constraint=a|b",
    ]


def test_the_spec_holds_typed_values():
    facts = JobFacts(nodes=2, cores=4, gpus=1, memory_gb=16, walltime_s=90061,
                     scheduler_options=(("cpus-per-task", "2"), ("qos", "high")))
    spec = spec_of(facts)
    assert (spec.nodes, spec.tasks, spec.memory_mb, spec.gpus_per_node) == (2, 8, 16384, 1)
    assert spec.walltime_s == 90061
    assert spec.devices == (Device("cpus-per-task", 2), Device("qos", "high"))


def test_defaults_leave_out_what_was_not_asked():
    options = options_of(JobFacts(exclusive=False))
    assert set(options) == {"job-name", "output", "nodes", "ntasks"}


def test_a_service_port_is_remembered_in_the_job_comment():
    arguments = sbatch_arguments(spec_of(JobFacts(), scratch="/s", service_port=2228))
    assert arguments[-1] == "--comment=dssr-service-port=2228 dssr-job-number=1"  # number: the proxy's
    assert "comment" not in options_of(JobFacts())


def test_output_in_the_home_directory_when_no_scratch_dir_and_percent_escaped():
    assert options_of(JobFacts(), scratch="")["output"] == "jarvice_job-1.%j.out"
    assert options_of(JobFacts(), scratch="/s%x")["output"] == "/s%%x/jarvice_job-1.%j.out"


def test_arguments_are_quoted_for_the_shell():
    spec = JobSpec(name="jarvice_x", output="o", nodes=1, tasks=1, exclusive=True,
                   devices=(Device("constraint", "a|b&c"),))
    arguments = sbatch_arguments(spec)
    assert arguments == ["--job-name=jarvice_x", "--output=o", "--nodes=1", "--ntasks=1", "--exclusive",
                         "--constraint=a|b&c"]
    assert quote_command(*arguments) == ("--job-name=jarvice_x --output=o --nodes=1 --ntasks=1 --exclusive "
                                         "'--constraint=a|b&c'")


def test_a_device_of_zero_is_passed_on():
    spec = JobSpec(name="n", output="o", nodes=1, tasks=1, devices=(Device("nice", 0),))
    assert sbatch_arguments(spec)[-1] == "--nice=0"


def test_every_option_dssr_renders_itself_is_refused_as_a_device():
    facts = JobFacts(gpus=1, memory_gb=1, walltime_s=60, licenses="l:1", partition="p")
    rendered = {argument.removeprefix("--").partition("=")[0]
                for argument in sbatch_arguments(spec_of(facts, held=True, service_port=2228))}
    assert rendered == SET_BY_DSSR
    for option in rendered:
        with pytest.raises(InvalidRequest, match=f"sbatch_{option} is not allowed: DSSR sets --{option} "):
            device(option, "1")


@pytest.mark.parametrize("option", ["wrap", "comment", "export", "chdir", "uid", "output", "dependency"])
def test_device_options_that_dssr_sets_or_that_act_outside_the_job_are_refused(option):
    with pytest.raises(InvalidRequest, match=f"sbatch_{option} is not allowed"):
        spec_of(JobFacts(scheduler_options=((option, "x"),)))


@pytest.mark.parametrize("value", ["$(touch /tmp/x)", "`id`", "a;b", "a b", "'q'", '"q"', "a\\b",
                                   "-x", "--wrap=id", "a>b", "", "x" * 300])
def test_device_values_that_could_mislead_are_refused(value):
    with pytest.raises(InvalidRequest, match="sbatch_account has a value that is not allowed"):
        device("account", value)


@pytest.mark.parametrize("option", ["container", "bbf", "clusters", "nodefile"])
def test_device_options_that_leave_the_job_are_refused(option):
    with pytest.raises(InvalidRequest, match="not allowed"):
        device(option, "x")


@pytest.mark.parametrize("value", ["two", "1.5", "+2"])
def test_numeric_devices_need_whole_numbers(value):
    with pytest.raises(InvalidRequest, match=r"sbatch_cpus-per-task needs a whole number"):
        device("cpus-per-task", value)


def test_slurmrestd_takes_the_devices_it_has_fields_for():
    devices = (device("constraint", "a|b"), device("ntasks-per-node", "4"), device("account", "acct"))
    assert rest_device_fields(devices) == {"constraints": "a|b", "tasks_per_node": 4, "account": "acct"}
    with pytest.raises(InvalidRequest, match="sbatch_mail-type is not supported by the slurmrestd connector; "
                                             "it supports sbatch_account, "):
        rest_device_fields((device("mail-type", "END"),))


def test_slurm_time():
    assert slurm_time(59) == "0-00:00:59"
    assert slurm_time(3 * 86400 + 3600) == "3-01:00:00"
