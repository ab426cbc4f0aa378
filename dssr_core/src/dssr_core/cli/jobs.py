"""The client commands: submit jobs to a running DSSR server, list them, follow them."""

import argparse
import json
import sys
import time
import uuid

from dssr_core.cli.parsing import add_command
from dssr_core.cli.server import served_url
from dssr_core.client import Client, ClientError, parse_job, termination_state
from dssr_core.errors import InvalidRequest
from dssr_core.facts import escape_braces
from dssr_core.models import check_job_name
from dssr_core.numbers import is_digits
from dssr_core.settings import SERVER, Settings

JOB_HELP = "the job as name/number/jobid (as submit prints it)"


def add_commands(commands) -> None:
    submit = _client_command(
        commands, "submit", "submit a script file or a command", cmd_submit,
        "Prints the job as name/number/jobid, the form the other commands take.")
    submit.add_argument("script", nargs="?", help="a bash script file (- for standard input)")
    submit.add_argument("--command", help="a command to run instead of a script file")
    submit.add_argument("--image", help="the image to run the command in (executors with containers)")
    submit.add_argument("--executor", default="shell", help="the server's executor (default shell)")
    submit.add_argument("--name", help="job name: letters, digits, - _ . "
                                       "(default dssr-<date>-<time>-<random>, unique)")
    submit.add_argument("--number", type=_whole_number(0), default=1,
                        help="the job's number, as upstream numbers its jobs (default 1)")
    submit.add_argument("--nodes", type=_whole_number(1), default=1,
                        help="nodes to run on, one copy of the script on each (default 1)")
    submit.add_argument("--cores", type=_whole_number(1), default=1, help="cores per node (default 1)")
    submit.add_argument("--hold", action="store_true", help="submit held, run after release")
    submit.add_argument("--template", action="store_true",
                        help="the file is upstream's template already "
                             "({DOWNSTREAM_PARAMETERS}, doubled braces)")

    _client_command(commands, "queued", "list the jobs that wait (held ones included)",
                    cmd_list_queued, "Prints NAME and JOBID columns, as the API lists them.")
    _client_command(commands, "running", "list the jobs that run", cmd_list_running,
                    "Prints NAME and JOBID columns, as the API lists them.")
    _client_command(commands, "ended", "list the jobs that ended and were not collected", cmd_list_ended,
                    "Prints NAME and JOBID columns (GET /ended), oldest first. Upstream collects each "
                    "ended job with exitstatus, which removes its files; the jobs listed here keep "
                    "theirs: `dssr exitstatus` collects one.")
    _job_command(commands, "status", "where and for how long a job runs", cmd_status,
                 "Exits 1 when the job neither waits nor runs (it ended, or is not known).")
    _job_command(commands, "exitstatus", "how a job ended, its output; removes the job's files",
                 cmd_exitstatus,
                 "Ask once: a second call finds nothing. Exits 1 for a job that the server "
                 "does not know.")
    _job_command(commands, "terminate", "cancel a job (its files stay until exitstatus)",
                 _job_call("/terminate"))
    _job_command(commands, "release", "release a held job", _job_call("/release"))
    _job_command(commands, "events", "what the scheduler says of a job", _job_call("/events"))
    tail = _job_command(commands, "tail", "the last lines of a job's output", cmd_tail)
    tail.add_argument("--lines", type=_whole_number(1), default=100,
                      help="how many lines, counted from the end (default 100)")


def _client_command(commands, name, summary, handler, details=""):
    sub = add_command(commands, name, summary, handler, details)
    sub.add_argument("--server", help="the DSSR server, host:port or URL (DSSR_SERVER; "
                                      "default http://127.0.0.1:$WAITRESS_PORT)")
    sub.add_argument("--config", help="YAML file of settings (DSSR_CONFIG): DSSR_SERVER, "
                                      "WAITRESS_PORT and JARVICE_SCHED_SERVER_KEY are read from it too")
    return sub


def _job_command(commands, name, summary, handler, details=""):
    sub = _client_command(commands, name, summary, handler, details)
    sub.add_argument("job", help=JOB_HELP)
    return sub


def _whole_number(minimum: int):
    def parse(text: str) -> int:
        if not is_digits(text) or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {minimum}, "
                                             f"not {text!r}")
        return int(text)

    return parse


def _client(args) -> Client:
    """A client of the server that ``--server``, else DSSR_SERVER, else WAITRESS_PORT names, with
    the key of JARVICE_SCHED_SERVER_KEY: read as ``dssr serve`` reads them (DSSR_CONFIG too)."""
    settings = Settings.from_env(config_file=args.config)
    return Client(args.server or settings.read(SERVER) or served_url(settings), settings.server_key)


# submit ---------------------------------------------------------------------------------


def cmd_submit(args) -> int:
    template = _submit_template(args)
    name = check_job_name(args.name, "--name") if args.name is not None else default_job_name()
    jobid, _ = _client(args).submit(name, args.number, args.nodes, args.executor, template,
                                    hold=args.hold)
    print(f"{name}/{args.number}/{jobid}")
    return 0


def default_job_name() -> str:
    """``dssr-<date>-<time>-<random>``: two submits in one second are two jobs, not a retry."""
    return f"dssr-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def _submit_template(args) -> str:
    if args.command is not None:
        if args.script is not None:
            raise InvalidRequest("Give a script file or --command, not both.")
        if args.template:
            raise InvalidRequest("--template describes a script file; --command needs none.")
        from dssr_core.plugins import make_registry

        backend = make_registry().select("executor", args.executor).spec.backend
        return backend.template_for(args.command, image=args.image, cores=args.cores)
    if args.script is None:
        raise InvalidRequest("Give a script file, - for standard input, or --command.")
    if args.image is not None:
        raise InvalidRequest("--image goes with --command; a script file runs as it is written.")
    text = read_script(args.script)
    return text if args.template else script_to_template(text, args.cores)


def read_script(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as script:
            return script.read()
    except UnicodeDecodeError:
        raise InvalidRequest(f"The script {path} is not UTF-8 text.") from None
    except OSError as error:
        raise InvalidRequest(f"The script {path} cannot be read: {error.strerror}.") from None


def script_to_template(script: str, cores: int) -> str:
    """A plain bash script in upstream's template form: braces doubled, parameters after line 1."""
    escaped = escape_braces(script)
    first, _, rest = escaped.partition("\n") if escaped.startswith("#!") else ("#!/bin/bash", "", escaped)
    return f"{first}\n{{DOWNSTREAM_PARAMETERS}}\nJARVICE_CPU_CORES={cores}\n{rest}"


# listings and jobs ----------------------------------------------------------------------


def cmd_list_queued(args) -> int:
    return _print_listing(_client(args).call("GET", "/queued"))


def cmd_list_running(args) -> int:
    return _print_listing(_client(args).call("GET", "/running"))


def cmd_list_ended(args) -> int:
    return _print_listing(_client(args).call("GET", "/ended"))


def _print_listing(rows) -> int:
    width = max([len("NAME")] + [len(name) for name, _ in rows])
    print(f"{'NAME':<{width}}  JOBID")
    for name, jobid in rows:
        print(f"{name:<{width}}  {jobid}")
    return 0


def cmd_status(args) -> int:
    answer = _client(args).job("/runstatus", parse_job(args.job))
    if answer[2] is None:
        raise ClientError(f"Job {args.job} neither waits nor runs: it ended (see `dssr "
                          "exitstatus`), or the server does not know it.")
    _print(answer)
    return 0


def cmd_exitstatus(args) -> int:
    answer = _client(args).job("/exitstatus", parse_job(args.job))
    if termination_state(answer) == "UNKNOWN":
        raise ClientError(f"The server knows no job {args.job}: it was never submitted there, "
                          "or its exit status was taken already (exitstatus removes its files).")
    _print(answer)
    return 0


def _job_call(path):
    def call(args) -> int:
        _print(_client(args).job(path, parse_job(args.job)))
        return 0

    return call


def cmd_tail(args) -> int:
    text = _client(args).request(parse_job(args.job), "tail", {"lines": [str(args.lines)]})
    sys.stdout.write(text)
    return 0


def _print(answer) -> None:
    print(answer if isinstance(answer, str) else json.dumps(answer, indent=1))
