"""The ``dssr`` command without a server: its help, its refusals and its exit codes."""

import argparse
import re
from pathlib import Path

import pytest

from dssr_core.cli import build_parser, main
from dssr_core.cli.jobs import default_job_name
from dssr_core.report import SLURM_REPORT_HEADER, report_header

ROOT = Path(__file__).resolve().parents[2]


def subcommands():
    parser = build_parser()
    (choices,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return sorted(choices.choices.items())


def dssr(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("name", "sub"), subcommands())
def test_every_subcommand_has_a_description_and_every_option_help(name, sub):
    assert sub.description and sub.description.endswith("."), f"dssr {name} has no description"
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help.strip(), f"dssr {name} {action.option_strings or action.dest}"


def test_the_command_list_gives_each_subcommand_a_line():
    listing = build_parser().format_help()
    for name, _ in subcommands():
        assert re.search(rf"^\s+{name}\s+\S", listing, re.M) or re.search(
            rf"^\s+{name}\n\s+\S", listing, re.M), f"{name} has no summary in dssr -h"


def test_exitstatus_help_says_that_it_removes_the_job(capsys):
    with pytest.raises(SystemExit):
        main(["exitstatus", "-h"])
    assert "removes the job's files" in capsys.readouterr().out


def test_default_job_names_differ_within_one_second_and_are_contract_names():
    names = {default_job_name() for _ in range(50)}
    assert len(names) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) for name in names)


def test_a_missing_script_is_one_line_and_exit_2(capsys, free_port):
    code, out, err = dssr(capsys, "submit", "/nonexistent.sh", "--server", f"127.0.0.1:{free_port}")
    assert code == 2
    assert err == "dssr: The script /nonexistent.sh cannot be read: No such file or directory.\n"


def test_a_script_and_a_command_together_are_refused(capsys, tmp_path, free_port):
    script = tmp_path / "job.sh"
    script.write_text("echo from the file\n")
    code, _, err = dssr(capsys, "submit", str(script), "--command", "echo from the option",
                        "--server", f"127.0.0.1:{free_port}")
    assert code == 2
    assert "not both" in err


def test_options_that_do_not_apply_are_refused(capsys, tmp_path, free_port):
    script = tmp_path / "job.sh"
    script.write_text("true\n")
    server = ("--server", f"127.0.0.1:{free_port}")
    assert dssr(capsys, "submit", str(script), "--image", "docker://alpine", *server)[0] == 2
    assert dssr(capsys, "submit", "--command", "true", "--template", *server)[0] == 2
    code, _, err = dssr(capsys, "submit", "--command", "true", "--name", "a b", *server)
    assert code == 2 and "--name must be" in err


def test_no_server_says_to_start_one(capsys, free_port):
    code, _, err = dssr(capsys, "running", "--server", f"127.0.0.1:{free_port}")
    assert code == 1
    assert err.count("\n") == 1
    assert f"Cannot reach http://127.0.0.1:{free_port}" in err and "dssr serve" in err


def test_a_server_that_is_not_http_is_refused(capsys):
    code, _, err = dssr(capsys, "running", "--server", "ftp://example.org")
    assert code == 2
    assert "host:port" in err


def test_a_job_that_is_not_name_number_jobid_is_refused(capsys):
    code, _, err = dssr(capsys, "status", "not-a-job")
    assert code == 2
    assert "name/number/jobid" in err


def test_the_init_report_title_names_the_connector():
    assert report_header("slurm-cli") == report_header("slurmrestd") == SLURM_REPORT_HEADER
    assert report_header("dummy") == "+----- dummy connector init report -----+"


def test_the_cluster_page_runs_as_root_without_sudo():
    text = (ROOT / "docs" / "cluster.md").read_text()
    assert "sudo" not in text
    assert "as root" in text


def test_the_readme_names_python3_venv_for_a_stock_debian():
    assert "apt-get install python3-venv" in (ROOT / "README.md").read_text()
