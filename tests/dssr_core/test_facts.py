import base64

import pytest

from dssr_core.durations import format_hms, parse_slurm_duration
from dssr_core.errors import InvalidRequest
from dssr_core.facts import decode_script, export_lines, job_facts, read_facts, render_template


def test_render_replaces_parameters_and_undoubles_braces():
    template = "#!/bin/bash\n{DOWNSTREAM_PARAMETERS}\necho ${{HOME}} {{a}}\n"
    assert render_template(template, "export A=1") == "#!/bin/bash\nexport A=1\necho ${HOME} {a}\n"


@pytest.mark.parametrize("template", ["echo {x}", "echo {", "echo }", "{DOWNSTREAM_PARAMETERS.__class__}"])
def test_render_refuses_single_braces_and_other_fields(template):
    with pytest.raises(InvalidRequest, match="line 1"):
        render_template(template, "")


def test_parameters_text_is_not_reinterpreted():
    assert render_template("{DOWNSTREAM_PARAMETERS}", "{x} {{y}}") == "{x} {{y}}"


def test_read_facts_undoubles_json_braces_and_strips_quotes():
    template = (
        "JOBOBJ_DOCKER_SECRET={{\"server\": \"r.io\"}}\n"
        "export JARVICE_CPU_CORES='4'\n"
        "JOBOBJ_DEVICES=[\"partition=gpu\"]\n"
        "JARVICE_CPU_CORES=8\n"
        "OTHER=1\n"
    )
    facts = read_facts(template)
    assert facts == {
        "JOBOBJ_DOCKER_SECRET": '{"server": "r.io"}',
        "JARVICE_CPU_CORES": "4",
        "JOBOBJ_DEVICES": '["partition=gpu"]',
    }


def test_job_facts_types_every_field():
    facts = job_facts({
        "JARVICE_CPU_CORES": "16", "JOBOBJ_GPUS": "0", "JOBOBJ_RAM": "64",
        "JOBOBJ_WALLTIME": "1-02:00:00", "JOBOBJ_LICENSES": "fluent:2",
        "JOBOBJ_DEVICES": '["partition=big", "exclusive=False", "overlay=100", "sbatch_qos=high"]',
        "JOBOBJ_ARCH": "amd64",
    }, nodes=2)
    assert (facts.nodes, facts.cores, facts.gpus, facts.memory_gb) == (2, 16, 0, 64)
    assert facts.walltime_s == 26 * 3600
    assert facts.licenses == "fluent:2"
    assert facts.partition == "big"
    assert facts.exclusive is False
    assert facts.overlay_mb == 100
    assert facts.scheduler_options == (("qos", "high"),)


def test_which_sbatch_options_a_device_may_set_is_the_connectors_to_say():
    facts = job_facts({"JOBOBJ_DEVICES": '["sbatch_wrap=id", "sbatch_comment=x"]'}, nodes=1)
    assert facts.scheduler_options == (("wrap", "id"), ("comment", "x"))


@pytest.mark.parametrize("gpus,interactive", [("1", "False"), ("0", "True")])
def test_gpu_and_interactive_jobs_stay_exclusive(gpus, interactive):
    facts = job_facts({"JOBOBJ_GPUS": gpus, "JOBOBJ_INTERACTIVE": interactive,
                       "JOBOBJ_DEVICES": '["exclusive=False"]'}, nodes=1)
    assert facts.exclusive is True


@pytest.mark.parametrize("devices,message", [
    ('["bogus=1"]', "Unknown device 'bogus'"),
    ('["overlay=-1"]', "from 0 to"),
    ('["overlay=big"]', "whole number"),
    ('["sbatch_--uid=0"]', "valid option"),
    ('["sbatch_qos=a\\nb"]', "line break"),
    ('["partition=$(id)"]', "may hold only"),
    ('["partition=-x"]', "may hold only"),
    ('not json', "JSON list"),
    ('{"a": 1}', "JSON list"),
    ('["noequals"]', "key=value"),
])
def test_bad_devices_are_refused(devices, message):
    with pytest.raises(InvalidRequest, match=message.replace("$", r"\$").replace("(", r"\(")
                       .replace(")", r"\)")):
        job_facts({"JOBOBJ_DEVICES": devices}, nodes=1)


@pytest.mark.parametrize("facts,message", [
    ({"JARVICE_CPU_CORES": "0"}, "from 1 to"),
    ({"JARVICE_CPU_CORES": "x"}, "whole number"),
    ({"JOBOBJ_INTERACTIVE": "maybe"}, "True or False"),
    ({"JOBOBJ_WALLTIME": "soon"}, "JOBOBJ_WALLTIME"),
    ({"JOBOBJ_LICENSES": "a;b"}, "may hold only"),
])
def test_bad_facts_are_refused(facts, message):
    with pytest.raises(InvalidRequest, match=message):
        job_facts(facts, nodes=1)


def test_cores_can_be_required():
    with pytest.raises(InvalidRequest, match="JARVICE_CPU_CORES"):
        job_facts({}, nodes=1, require_cores=True)


def test_export_lines_quote_every_value():
    text = export_lines({"A": "x y", "B": "$(touch /tmp/pwned)", "C": "it's", "D": None})
    assert text.splitlines() == [
        "export A='x y'",
        "export B='$(touch /tmp/pwned)'",
        "export C='it'\"'\"'s'",
        "export D=''",
    ]


def test_decode_script_accepts_wrapped_base64():
    encoded = base64.encodebytes(b"echo hi\n" * 40).decode()
    assert "\n" in encoded
    assert decode_script(encoded, "f") == "echo hi\n" * 40


@pytest.mark.parametrize("value,message", [
    ("%%%", "not valid base64"), ("", "non-empty"), (None, "non-empty"),
    (base64.b64encode(b"\xff\xfe").decode(), "UTF-8"),
])
def test_decode_script_refuses_bad_input(value, message):
    with pytest.raises(InvalidRequest, match=message):
        decode_script(value, "hpc_script.shell")


@pytest.mark.parametrize("text,seconds", [
    ("0:05", 5), ("12:34", 754), ("1:02:03", 3723), ("2-03:04:05", 183845),
    ("2-03", 183600), ("2-03:04", 183840), ("UNLIMITED", 0), ("", 0), ("45", 45),
])
def test_slurm_durations(text, seconds):
    assert parse_slurm_duration(text) == seconds


def test_hours_may_exceed_24():
    assert format_hms(183845) == "51:04:05"
    assert format_hms(None) == "00:00:00"

