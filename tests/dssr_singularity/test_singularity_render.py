"""Rendering: the export block, overlay and verbosity rules, proxies, and every refusal."""

import subprocess

import pytest

from dssr_core.errors import InvalidRequest, SettingsError
from dssr_core.models import ScriptRequest
from dssr_core.plugins import make_registry
from dssr_singularity.executor import SingularityExecutor

#: The Singularity block of the legacy API, in its order.
LEGACY_BLOCK = [
    "JARVICE_JOB_SCRATCH_DIR", "JARVICE_JOB_GLOBAL_SCRATCH_DIR",
    "JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES", "SINGULARITYENV_JARVICE_SERVICE_PORT",
    "SINGULARITYENV_JARVICE_SSH_PORT", "JARVICE_SINGULARITY_TMPDIR", "JOB_LOCAL_USER",
    "JARVICE_SINGULARITY_OVERLAY_SIZE", "JARVICE_INIT_DOCKER_USERNAME",
    "JARVICE_INIT_DOCKER_PASSWORD", "JARVICE_DOCKER_USERNAME", "JARVICE_DOCKER_PASSWORD",
    "JARVICE_APP_IMAGE", "JARVICE_INIT_IMAGE", "JARVICE_CMD", "SV", "SV_FLAG",
    "SCHTTP_PROXY", "SCHTTPS_PROXY", "SCNO_PROXY",
]


def block_of(script: str) -> str:
    start = script.index("# --- DSSR singularity executor parameters ---")
    end = script.index("# --- end of DSSR singularity executor parameters ---")
    return script[start:end]


def test_the_block_exports_exactly_the_legacy_variables_in_order(render):
    job, _ = render()
    names = [line.split("=", 1)[0].removeprefix("export ")
             for line in block_of(job.script).splitlines() if line.startswith("export ")]
    assert names == LEGACY_BLOCK


def test_the_block_replaces_the_parameters_field_and_the_rest_stays(render, template):
    job, _ = render()
    assert "{DOWNSTREAM_PARAMETERS}" not in job.script
    assert 'rank="${PROCESS_PROCID:-0}"' in job.script          # braces back to single
    assert job.script.startswith("#!/bin/bash\n")


def test_job_local_user_expands_when_the_job_runs(render, tmp_path):
    job, block = render(JARVICE_CMD="echo $(touch pwned) `touch pwned2`; rm -rf '/x'")
    assert 'export JOB_LOCAL_USER="$USER"' in job.script
    script = tmp_path / "block.sh"
    script.write_text(block_of(job.script) + 'printf "%s\\n" "$JOB_LOCAL_USER" "$JARVICE_CMD"\n')
    out = subprocess.run(["bash", str(script)], cwd=tmp_path, env={"USER": "kirby"},
                         capture_output=True, text=True, check=True).stdout
    assert out == "kirby\necho $(touch pwned) `touch pwned2`; rm -rf '/x'\n"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    assert block["JARVICE_CMD"] == "echo $(touch pwned) `touch pwned2`; rm -rf '/x'"


def test_the_rendered_job_carries_facts_and_the_success_marker(render):
    job, _ = render(nodes=3, JARVICE_CPU_CORES="16", JOBOBJ_DEVICES='["partition=gpu"]')
    assert job.success_marker == "JARVICE_CMD_SUCCESS"
    assert (job.facts.nodes, job.facts.cores, job.facts.partition) == (3, 16, "gpu")


def test_defaults(render):
    _, block = render()
    assert {k: block[k] for k in (
        "JARVICE_JOB_SCRATCH_DIR", "JARVICE_JOB_GLOBAL_SCRATCH_DIR", "JARVICE_SINGULARITY_TMPDIR",
        "SINGULARITYENV_JARVICE_SERVICE_PORT", "SINGULARITYENV_JARVICE_SSH_PORT",
        "JARVICE_SINGULARITY_OVERLAY_SIZE", "SV", "SV_FLAG", "SCHTTP_PROXY", "SCHTTPS_PROXY",
        "SCNO_PROXY", "JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES")} == {
        "JARVICE_JOB_SCRATCH_DIR": "", "JARVICE_JOB_GLOBAL_SCRATCH_DIR": "",
        "JARVICE_SINGULARITY_TMPDIR": "/tmp", "SINGULARITYENV_JARVICE_SERVICE_PORT": "2228",
        "SINGULARITYENV_JARVICE_SSH_PORT": "2227", "JARVICE_SINGULARITY_OVERLAY_SIZE": "600",
        "SV": "false", "SV_FLAG": "-s", "SCHTTP_PROXY": "", "SCHTTPS_PROXY": "", "SCNO_PROXY": "",
        "JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES": "False"}


def test_directories_and_ports_come_from_the_settings(render):
    _, block = render({"JARVICE_JOB_SCRATCH_DIR": "/scratch/jobs",
                       "JARVICE_JOB_GLOBAL_SCRATCH_DIR": "/global/", "JARVICE_SINGULARITY_TMPDIR":
                       "/var/tmp/sing", "DSSR_SINGULARITY_SERVICE_PORT": "8443",
                       "DSSR_SINGULARITY_SSH_PORT": "2222"})
    assert block["JARVICE_JOB_SCRATCH_DIR"] == "/scratch/jobs/"      # the '/' scripts expect
    assert block["JARVICE_JOB_GLOBAL_SCRATCH_DIR"] == "/global/"
    assert block["JARVICE_SINGULARITY_TMPDIR"] == "/var/tmp/sing"
    assert block["SINGULARITYENV_JARVICE_SERVICE_PORT"] == "8443"
    assert block["SINGULARITYENV_JARVICE_SSH_PORT"] == "2222"


@pytest.mark.parametrize("setting, value", [
    ("JARVICE_JOB_SCRATCH_DIR", "scratch"),
    ("JARVICE_JOB_GLOBAL_SCRATCH_DIR", "/a,b"),
    ("JARVICE_SINGULARITY_TMPDIR", "/tmp:/x"),
    ("DSSR_SINGULARITY_SERVICE_PORT", "0"),
    ("DSSR_SINGULARITY_INTERACTIVE", "maybe"),
    ("JARVICE_SINGULARITY_VERBOSE", "loud"),
])
def test_bad_settings_fail_at_start_naming_the_setting(executor_for, setting, value):
    with pytest.raises(SettingsError, match=setting):
        executor_for(**{setting: value})


# Overlay ---------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, devices, expected", [
    ({}, None, "600"),
    ({"JARVICE_SLURM_OVERLAY_SIZE": "700"}, None, "700"),
    ({"JARVICE_SINGULARITY_OVERLAY_SIZE": "800", "JARVICE_SLURM_OVERLAY_SIZE": "700"}, None, "800"),
    ({"JARVICE_SINGULARITY_OVERLAY_SIZE": "0"}, None, "0"),
    ({"JARVICE_SINGULARITY_OVERLAY_SIZE": "800"}, '["overlay=2048"]', "2048"),
    ({"JARVICE_SINGULARITY_OVERLAY_SIZE": "800"}, '["overlay=0"]', "0"),
    ({"JARVICE_SLURM_OVERLAY_SIZE": "0"}, '["exclusive=False", "overlay=64"]', "64"),
])
def test_overlay_size_device_then_setting_then_legacy_then_600(render, settings, devices,
                                                                expected):
    _, block = render(settings, JOBOBJ_DEVICES=devices)
    assert block["JARVICE_SINGULARITY_OVERLAY_SIZE"] == expected


@pytest.mark.parametrize("name", ["JARVICE_SINGULARITY_OVERLAY_SIZE", "JARVICE_SLURM_OVERLAY_SIZE"])
@pytest.mark.parametrize("value", ["32", "-1", "big"])
def test_a_bad_overlay_setting_fails_at_start(executor_for, name, value):
    with pytest.raises(SettingsError, match=name):
        executor_for(**{name: value})


# Verbosity and proxies -----------------------------------------------------------------------

@pytest.mark.parametrize("value, sv, flag", [("true", "true", "-v"), ("1", "true", "-v"),
                                             ("false", "false", "-s"), ("no", "false", "-s")])
def test_verbosity(render, value, sv, flag):
    _, block = render({"JARVICE_SINGULARITY_VERBOSE": value})
    assert (block["SV"], block["SV_FLAG"]) == (sv, flag)


@pytest.mark.parametrize("prefix", ["JARVICE_BAREMETAL", "JARVICE_SLURM"])
def test_proxies_in_both_spellings(render, prefix):
    _, block = render({f"{prefix}_HTTP_PROXY": "http://proxy:3128",
                       f"{prefix}_HTTPS_PROXY": "http://proxy:3129",
                       f"{prefix}_NO_PROXY": "localhost,.cluster"})
    assert (block["SCHTTP_PROXY"], block["SCHTTPS_PROXY"], block["SCNO_PROXY"]) == \
        ("http://proxy:3128", "http://proxy:3129", "localhost,.cluster")


def test_the_new_proxy_spelling_wins(render):
    _, block = render({"JARVICE_BAREMETAL_HTTP_PROXY": "http://new:1",
                       "JARVICE_SLURM_HTTP_PROXY": "http://old:1"})
    assert block["SCHTTP_PROXY"] == "http://new:1"


# Refusals (HTTP 400) ---------------------------------------------------------------------

@pytest.mark.parametrize("facts, message", [
    ({"JOBOBJ_APPDEFVERSION": None}, "does not set JOBOBJ_APPDEFVERSION"),
    ({"JOBOBJ_APPDEFVERSION": "two"}, "JOBOBJ_APPDEFVERSION must be a whole number"),
    ({"JOBOBJ_APPDEFVERSION": "1"}, "JOBOBJ_APPDEFVERSION is 1; .* version 2 or later"),
    ({"JARVICE_CPU_CORES": None}, "does not set JARVICE_CPU_CORES"),
    ({"JARVICE_CPU_CORES": "0"}, "JARVICE_CPU_CORES must be a whole number from 1 to"),
    ({"JOBOBJ_REPO": None}, "does not set JOBOBJ_REPO"),
    ({"JOBOBJ_DEVICES": '["gpu=2"]'}, "Unknown device 'gpu' in JOBOBJ_DEVICES"),
    ({"JOBOBJ_DEVICES": '["overlay=-5"]'}, "overlay device .* from 0 to"),
    ({"JOBOBJ_DEVICES": '["overlay=big"]'}, "overlay device .* whole number"),
    ({"JOBOBJ_DEVICES": '["overlay=32"]'}, "overlay device must be 0 .* or at least 64 MB"),
    ({"JOBOBJ_INTERACTIVE": "True"}, "Interactive jobs are not supported on this cluster"),
])
def test_refusals_name_the_field(render, facts, message):
    with pytest.raises(InvalidRequest, match=message):
        render(**facts)


def test_interactive_jobs_are_accepted_where_the_operator_says_they_are_reachable(render):
    job, block = render({"DSSR_SINGULARITY_INTERACTIVE": "true"}, JOBOBJ_INTERACTIVE="True")
    assert job.facts.interactive and job.facts.exclusive
    assert block["SINGULARITYENV_JARVICE_SERVICE_PORT"] == "2228"


@pytest.mark.parametrize("settings, interactive, port", [
    ({"DSSR_SINGULARITY_INTERACTIVE": "true"}, "True", 2228),
    ({"DSSR_SINGULARITY_INTERACTIVE": "true", "DSSR_SINGULARITY_SERVICE_PORT": "8443"}, "True", 8443),
    ({"DSSR_SINGULARITY_INTERACTIVE": "true"}, "False", None),
    ({}, "False", None),
])
def test_an_interactive_job_tells_the_connector_its_service_port(render, settings, interactive, port):
    job, _ = render(settings, JOBOBJ_INTERACTIVE=interactive)
    assert job.service_port == port


def test_a_single_brace_in_the_template_is_refused(executor_for, template):
    broken = template() + "echo ${HOME}\n"
    with pytest.raises(InvalidRequest, match="single '{'"):
        executor_for().render(ScriptRequest("job", 1, 1, broken))


# template_for -------------------------------------------------------------------------------

def test_template_for_writes_the_facts_it_was_given(executor_for):
    template = SingularityExecutor.template_for("echo '{a}' \"b\"", image="docker://alpine:3.19",
                                                cores=3)
    job = executor_for().render(ScriptRequest("job", 1, 2, template))
    assert (job.facts.cores, job.facts.interactive) == (3, False)
    assert "export JARVICE_APP_IMAGE=docker://alpine:3.19" in job.script
    assert "export JARVICE_CMD='echo '\"'\"'{a}'\"'\"' \"b\"'" in job.script


def test_template_for_has_a_default_image(executor_for):
    job = executor_for().render(ScriptRequest("job", 1, 1, SingularityExecutor.template_for("id")))
    assert "export JARVICE_APP_IMAGE=docker://docker.io/library/ubuntu:24.04" in job.script


@pytest.mark.parametrize("command, kwargs, message", [
    ("echo a\necho b", {}, "--command must be one non-empty line"),
    ("  ", {}, "--command must be one non-empty line"),
    ("id", {"image": "library://sylabs/alpine"}, "--image must be a container image"),
    ("id", {"image": "Ubuntu"}, "--image must be a container image"),
    ("id", {"cores": 0}, "cores must be a whole number of at least 1"),
])
def test_template_for_refuses_what_it_cannot_write(command, kwargs, message):
    with pytest.raises(InvalidRequest, match=message):
        SingularityExecutor.template_for(command, **kwargs)


# Registration and report ----------------------------------------------------------------------

def test_the_plugin_registers_the_singularity_executor():
    backend = make_registry().select("executor", "singularity")
    assert backend.spec.backend is SingularityExecutor
    assert backend.distribution == "dssr_singularity"
    assert backend.spec.description == "JARVICE apps in Singularity/Apptainer containers"


def test_the_report_shows_the_settings(executor_for):
    report = dict(executor_for(JARVICE_SINGULARITY_OVERLAY_SIZE="0",
                               JARVICE_REGISTRY_PROXY_PORT="5001",
                               JARVICE_REGISTRY_PROXY_REPOS="nvcr.io").report())
    assert report["init image"] == \
        "docker://us-docker.pkg.dev/jarvice-system/images/initv<N>:jarvice-master"
    assert report["overlay"] == "writable tmpfs"
    assert report["app images"] == "JOBOBJ_REPO, through localhost:5001 for nvcr.io"
    assert report["interactive jobs"] == "refused"
    assert report["init image credentials"] == "not set"


def rules_env(render, tmp_path, files: dict[str, str], gpus: str = "0", home: bool = True) -> dict[str, str]:
    """Run the block with these files in $HOME (or no $HOME); what the job then exports."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    job, _ = render(JOBOBJ_GPUS=gpus)
    script = tmp_path / "block.sh"
    script.write_text(block_of(job.script) + "env\n")
    env = {"PATH": "/usr/bin:/bin", **({"HOME": str(tmp_path)} if home else {})}
    out = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_the_users_custom_env_is_sourced_and_no_nv_without_a_cuda_env(render, tmp_path):
    env = rules_env(render, tmp_path, {".jarvice_custom_env": "export MINE=custom\n"})
    assert env["MINE"] == "custom"
    assert "APPTAINER_NV" not in env and "SINGULARITY_NV" not in env


def test_a_cuda_env_is_sourced_and_turns_nv_on_for_apptainer_and_singularity(render, tmp_path):
    env = rules_env(render, tmp_path, {".jarvice_cuda_env": "export CUDA_HOME=/opt/cuda\n"})
    assert (env["CUDA_HOME"], env["APPTAINER_NV"], env["SINGULARITY_NV"]) == ("/opt/cuda", "1", "1")


def test_a_gpu_job_runs_with_nv_without_a_cuda_env(render, tmp_path):
    env = rules_env(render, tmp_path, {}, gpus="2")
    assert (env["APPTAINER_NV"], env["SINGULARITY_NV"]) == ("1", "1")


def test_without_home_the_rules_look_in_the_users_home_from_the_user_database(render, tmp_path):
    home = subprocess.run(["sh", "-c", 'getent passwd "$(id -u)" | cut -d: -f6'], capture_output=True,
                          text=True, check=True).stdout.strip()
    job, _ = render()
    script = tmp_path / "block.sh"
    script.write_text(block_of(job.script) + 'echo "home=$jarvice_home"\n')
    out = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"home={home}" and home


def test_the_rules_leave_upstreams_singularity_lines_as_they_are(render):
    job, _ = render(JOBOBJ_GPUS="1")
    assert 'singularity "$SV_FLAG" exec "${writable[@]}" "${binds[@]}"' in job.script
    assert "--nv" not in job.script.replace("with --nv", "")
