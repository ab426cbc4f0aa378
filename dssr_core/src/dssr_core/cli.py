"""The ``dssr`` command: serve the API, list plugins, check the cluster, act as a client."""

import argparse
import logging
import os
import signal
import sys
import time

from dssr_core.errors import DssrError
from dssr_core.facts import escape_braces
from dssr_core.plugins import disabled_plugins, make_registry
from dssr_core.report import REPORT_FOOTER, init_report
from dssr_core.settings import Settings

log = logging.getLogger("dssr_core.cli")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except DssrError as error:
        print(f"dssr: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `dssr plugins | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dssr", description="DSSR: downstream scheduler bridge for HPC.")
    commands = parser.add_subparsers(metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the JARVICE legacy downstream API")
    _server_options(serve)
    serve.add_argument("--host", help="bind address (WAITRESS_BIND_ADDRESS, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (WAITRESS_PORT, default 5000)")
    serve.add_argument("--threads", type=int, help="worker threads (DSSR_THREADS, default 16)")
    serve.set_defaults(handler=cmd_serve)

    check = commands.add_parser("check", help="print the init report and test the cluster")
    _server_options(check)
    check.set_defaults(handler=cmd_check)

    plugins = commands.add_parser("plugins", help="list installed connectors and executors")
    plugins.set_defaults(handler=cmd_plugins)

    settings = commands.add_parser("settings", help="print the effective settings (secrets masked) and where "
                                   "each came from", description="Every installed distribution's settings: "
                                   "value, and whether it came from the default, the environment, the config "
                                   "file or an older spelling. Exits 1 when a value is invalid.")
    _server_options(settings)
    settings.add_argument("--markdown", action="store_true",
                          help="print the declarations as the tables of docs/settings.md instead")
    settings.set_defaults(handler=cmd_settings)

    _client_commands(commands)
    return parser


def _server_options(parser):
    parser.add_argument("--connector", help="connector name (JARVICE_BAREMETAL_CONNECTOR; default: a Slurm "
                        "connector when Slurm settings are set, else dummy)")
    parser.add_argument("--executor", help="executor name (JARVICE_BAREMETAL_EXECUTOR; default: singularity "
                        "with a Slurm connector, else shell)")
    parser.add_argument("--config", help="YAML file of settings (DSSR_CONFIG)")


def load_settings(args) -> Settings:
    overrides = {
        "JARVICE_BAREMETAL_CONNECTOR": getattr(args, "connector", None),
        "JARVICE_BAREMETAL_EXECUTOR": getattr(args, "executor", None),
        "WAITRESS_BIND_ADDRESS": getattr(args, "host", None),
        "WAITRESS_PORT": _text(getattr(args, "port", None)),
        "DSSR_THREADS": _text(getattr(args, "threads", None)),
    }
    return Settings.from_env(config_file=getattr(args, "config", None), overrides=overrides)


def _text(value):
    return None if value is None else str(value)


def configure_logging(settings: Settings) -> None:
    # The Logging HOWTO's optimisations for what LOG_FORMAT does not show: finding the
    # caller's frame and thread/process names cost more than the access line itself.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BufferedStderrHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    slurm_level = settings.slurm_log_level
    logging.getLogger("dssr_slurm").setLevel(slurm_level)
    logging.getLogger("paramiko").setLevel(max(slurm_level, logging.WARNING))


class BufferedStderrHandler(logging.StreamHandler):
    """Logs to stderr through a buffer flushed every half second, and at once for warnings.

    A write system call per access line made request threads queue behind each other (the
    API benchmark lost a third of its throughput at 16 clients); buffered, a line costs a few
    microseconds.
    """

    def __init__(self, interval: float = 0.5):
        import atexit
        import io
        import threading

        raw = open(sys.stderr.fileno(), "wb", buffering=0, closefd=False)  # noqa: SIM115
        super().__init__(io.TextIOWrapper(io.BufferedWriter(raw, 1 << 16), encoding="utf-8",
                                          errors="replace"))
        self._interval = interval
        threading.Thread(target=self._flush_regularly, name="log-flush", daemon=True).start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            with self.lock:
                self.stream.write(line)
            if record.levelno >= logging.WARNING:
                self.flush()
        except Exception:
            self.handleError(record)

    def _flush_regularly(self) -> None:
        import time

        while True:
            time.sleep(self._interval)
            self.flush()


def build_backends(settings: Settings):
    """The selected connector and executor, built, with their registry entries."""
    registry = make_registry(block=disabled_plugins(settings))
    connector_backend = registry.select("connector", settings.connector)
    executor_backend = registry.select("executor", settings.executor)
    executor = executor_backend.spec.backend.from_settings(settings)
    connector = connector_backend.spec.backend.from_settings(settings)
    return connector_backend, executor_backend, connector, executor


def cmd_serve(args) -> int:
    import waitress

    from dssr_core.app import create_app
    from dssr_core.front import front_domain, serve_behind_front

    settings = load_settings(args)
    configure_logging(settings)
    connector_backend, executor_backend, connector, executor = build_backends(settings)
    lines, _ = init_report(settings, connector_backend, executor_backend, connector, executor)
    for line in lines + [REPORT_FOOTER]:
        log.info("%s", line)
    app = create_app(settings, connector, executor, executor_name=executor_backend.name)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        options = {"threads": settings.threads, "max_request_body_size": settings.max_body_bytes,
                   "ident": "dssr"}
        domain = front_domain(settings)
        if domain is None:
            waitress.serve(app, host=settings.bind, port=settings.port, _quiet=True, **options)
        else:
            serve_behind_front(app, settings, connector, domain, options)
    finally:
        connector.close()
    return 0


def _exit_on_sigterm(signum, frame):
    raise SystemExit(0)  # lets serve() return so that the connector closes cleanly


def cmd_check(args) -> int:
    settings = load_settings(args)
    configure_logging(settings)
    connector_backend, executor_backend, connector, executor = build_backends(settings)
    try:
        lines, ok = init_report(settings, connector_backend, executor_backend, connector, executor)
    finally:
        connector.close()
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_settings(args) -> int:
    from dssr_core import catalogue

    settings = load_settings(args)
    registry = make_registry(block=disabled_plugins(settings))
    if args.markdown:
        print(catalogue.markdown(catalogue.declared_settings(registry)), end="")
        return 0
    lines, ok = catalogue.settings_report(settings, registry)
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_plugins(args) -> int:
    registry = make_registry()
    print(f"{'KIND':<10} {'NAME':<13} {'DISTRIBUTION':<18} {'VERSION':<8} DESCRIPTION")
    for kind in ("connector", "executor"):
        for name, backend in sorted(registry.backends(kind).items()):
            print(f"{kind:<10} {name:<13} {backend.distribution:<18} {backend.version:<8} "
                  f"{backend.spec.description}")
    for plugin_name, plugin in sorted(registry.manager.list_name_plugin()):
        hooks = ", ".join(h.name for h in registry.manager.get_hookcallers(plugin) or ())
        print(f"plugin {plugin_name}: hooks {hooks}")
    for broken in registry.broken.values():
        print(f"broken     {broken.entry_point:<13} {broken.distribution:<27} {broken.error}")
    return 0


# The client -----------------------------------------------------------------------------


def _client_commands(commands):
    def add(name, help_text, func, job=True):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--server", default=os.environ.get("DSSR_SERVER", _default_server()),
                         help="DSSR server URL (DSSR_SERVER; default http://127.0.0.1:5000)")
        if job:
            sub.add_argument("job", help="the job as name/number/jobid (as submit prints it)")
        sub.set_defaults(handler=func)
        return sub

    submit = add("submit", "submit a script file or a command", cmd_submit, job=False)
    submit.add_argument("script", nargs="?", help="a bash script file (- for standard input)")
    submit.add_argument("--command", help="a command to run instead of a script file")
    submit.add_argument("--image", help="the image to run it in (executors with containers)")
    submit.add_argument("--executor", default="shell", help="the server's executor (default shell)")
    submit.add_argument("--name", help="job name (default dssr-<time>)")
    submit.add_argument("--number", type=int, default=1)
    submit.add_argument("--nodes", type=int, default=1)
    submit.add_argument("--cores", type=int, default=1, help="cores per node")
    submit.add_argument("--hold", action="store_true", help="submit held, run after release")
    submit.add_argument("--template", action="store_true",
                        help="the file is upstream's template already "
                             "({DOWNSTREAM_PARAMETERS}, doubled braces)")
    add("queued", "list waiting jobs", cmd_list_queued, job=False)
    add("running", "list running jobs", cmd_list_running, job=False)
    add("status", "where and for how long a job runs", _job_call("/runstatus"))
    add("exitstatus", "how a job ended (then its files are removed)", _job_call("/exitstatus"))
    add("terminate", "cancel a job", _job_call("/terminate"))
    add("release", "release a held job", _job_call("/release"))
    add("events", "what the scheduler says of a job", _job_call("/events"))
    tail = add("tail", "the last lines of a job's output", cmd_tail)
    tail.add_argument("--lines", type=int, default=100)


def _default_server() -> str:
    return f"http://127.0.0.1:{os.environ.get('WAITRESS_PORT', '5000')}"


def _client(args):
    from dssr_core.client import Client

    return Client(args.server, os.environ.get("JARVICE_SCHED_SERVER_KEY") or None)


def cmd_submit(args) -> int:
    from dssr_core.client import ClientError

    template = _submit_template(args)
    if template is None:
        raise ClientError("Give a script file, - for standard input, or --command.")
    name = args.name or time.strftime("dssr-%Y%m%d%H%M%S")
    jobid, script = _client(args).submit(name, args.number, args.nodes, args.executor, template,
                                         hold=args.hold)
    print(f"{name}/{args.number}/{jobid}")
    return 0


def _submit_template(args) -> str | None:
    if args.command is not None:
        registry = make_registry()
        backend = registry.select("executor", args.executor).spec.backend
        return backend.template_for(args.command, image=args.image, cores=args.cores)
    if args.script is None:
        return None
    text = sys.stdin.read() if args.script == "-" else open(args.script, encoding="utf-8").read()
    return text if args.template else script_to_template(text, args.cores)


def script_to_template(script: str, cores: int) -> str:
    """A plain bash script in upstream's template form: braces doubled, parameters after line 1."""
    escaped = escape_braces(script)
    first, _, rest = escaped.partition("\n") if escaped.startswith("#!") else ("#!/bin/bash", "", escaped)
    return f"{first}\n{{DOWNSTREAM_PARAMETERS}}\nJARVICE_CPU_CORES={cores}\n{rest}"


def cmd_list_queued(args) -> int:
    return _print_listing(_client(args).call("GET", "/queued"))


def cmd_list_running(args) -> int:
    return _print_listing(_client(args).call("GET", "/running"))


def _print_listing(rows) -> int:
    for name, jobid in rows:
        print(f"{jobid}\t{name}")
    return 0


def _job_call(path):
    def call(args) -> int:
        import json

        from dssr_core.client import parse_job

        answer = _client(args).job(path, parse_job(args.job))
        print(answer if isinstance(answer, str) else json.dumps(answer, indent=1))
        return 0

    return call


def cmd_tail(args) -> int:
    from dssr_core.client import parse_job

    text = _client(args).request(parse_job(args.job), "tail", {"lines": [str(args.lines)]})
    sys.stdout.write(text)
    return 0
