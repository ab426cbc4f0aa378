"""``dssr serve``, ``dssr check`` and ``dssr plugins``: the commands that build DSSR here."""

import contextlib
import errno
import functools
import logging
import signal
import socket
import sys

import attrs

import dssr_core
from dssr_core.cli.logs import configure_logging
from dssr_core.cli.parsing import add_command
from dssr_core.client import Client, ClientError, ServerUnreachable
from dssr_core.errors import DssrError, SettingsError
from dssr_core.plugins import disabled_plugins, make_registry
from dssr_core.report import REPORT_FOOTER, init_report
from dssr_core.settings import DEFAULT_CONNECTOR_REASON, Settings

log = logging.getLogger("dssr_core.cli")

#: Seconds ``dssr check`` waits for a running server to connect, and to make its report
#: (a live test of the cluster, which may wait for SSH or slurmrestd timeouts).
CHECK_CONNECT_TIMEOUT_S = 3.0
CHECK_REPORT_TIMEOUT_S = 120.0
#: Connections the kernel queues while the server starts, as waitress's default.
LISTEN_BACKLOG = 1024


class CannotListen(DssrError):
    """``dssr serve`` cannot take its address and port."""


def add_commands(commands) -> None:
    serve = add_command(
        commands, "serve", "serve the JARVICE legacy downstream API", cmd_serve,
        "Takes the port, logs the init report, then answers upstream until stopped "
        "(SIGTERM or Ctrl-C).")
    backend_options(serve)
    serve.add_argument("--host", help="bind address (WAITRESS_BIND_ADDRESS, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (WAITRESS_PORT, default 5000)")
    serve.add_argument("--threads", type=int, help="worker threads (DSSR_THREADS, default 16)")

    check = add_command(
        commands, "check", "print the init report and test the cluster", cmd_check,
        "First asks a DSSR server at --server (default: where these settings serve). When it runs "
        "the same connector and executor, it makes the report (a connector's state belongs to the "
        "server that runs it); when it refuses the credentials or fails, check fails with its "
        "answer. With no server there, or one running other backends, the report is made here, "
        "with the connector built from these settings. Exits 1 when the cluster does not answer.")
    backend_options(check)
    check.add_argument("--server", help="ask this running server (host:port or URL; default: "
                                        "the address these settings serve on, http://127.0.0.1:5000)")

    plugins = add_command(commands, "plugins", "list the installed connectors, executors and plugins",
                          cmd_plugins, "Broken plugins are listed with their error, and plugins that "
                          "DSSR_DISABLE_PLUGINS disables as disabled.")
    plugins.add_argument("--config", help="YAML file of settings (DSSR_CONFIG)")

    settings = add_command(
        commands, "settings", "print the effective settings (secrets masked) and where each came from",
        cmd_settings, "Every installed distribution's settings: value, and whether it came from the "
        "default, the environment, the config file or an older spelling. Exits 2 when a value is invalid "
        "(each invalid value is shown with its sentence).")
    backend_options(settings)
    settings.add_argument("--markdown", action="store_true",
                          help="print the declarations as the tables of docs/settings.md instead")


def backend_options(parser) -> None:
    """The options that choose what to build: connector, executor, settings file."""
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
    settings = Settings.from_env(config_file=getattr(args, "config", None), overrides=overrides)
    return _only_connector_installed(settings)


def _only_connector_installed(settings: Settings) -> Settings:
    """Without dssr_dummy, the default connector is the one connector installed, if one is.

    A third-party connector's author who installed only their own connector is not asked for
    ``dummy``; with several installed, selection fails listing them (as it does by name).
    """
    if settings.connector_reason != DEFAULT_CONNECTOR_REASON:
        return settings
    installed = make_registry(block=disabled_plugins(settings)).backends("connector")
    if settings.connector in installed or len(installed) != 1:
        return settings
    only = next(iter(installed))
    return attrs.evolve(settings, connector=only, connector_reason=(
        f"the only connector installed (the default {settings.connector} is not)"))


def _text(value):
    return None if value is None else str(value)


def build_backends(settings: Settings):
    """The selected connector and executor, built, with their registry entries."""
    registry = make_registry(block=disabled_plugins(settings))
    connector_backend = registry.select("connector", settings.connector)
    executor_backend = registry.select("executor", settings.executor)
    executor = executor_backend.spec.backend.from_settings(settings)
    connector = connector_backend.spec.backend.from_settings(settings)
    return connector_backend, executor_backend, connector, executor


# serve ----------------------------------------------------------------------------------


def cmd_serve(args) -> int:
    from dssr_core import __version__, metrics
    from dssr_core.app import create_app
    from dssr_core.front import front_domain, serve_behind_front
    from dssr_core.metricsport import metrics_port, serve_metrics
    from dssr_core.serving import serve_with_waitress

    settings = load_settings(args)
    configure_logging(settings)
    scrape_port = metrics_port(settings)
    with contextlib.ExitStack() as cleanup:
        sockets = listen_on(settings.bind, settings.port, settings.backlog)
        for listening in sockets:
            cleanup.callback(listening.close)
        if settings.port == 0:  # the port the kernel chose is the one to report and to call
            settings = attrs.evolve(settings, port=sockets[0].getsockname()[1])
        if scrape_port is not None:
            try:
                cleanup.callback(serve_metrics(settings.bind, scrape_port).shutdown)
            except OSError as error:
                raise CannotListen(_listen_failure(settings.bind, scrape_port, error).replace(
                    "WAITRESS_PORT", "DSSR_METRICS_PORT")) from None
        # Only now that the port is ours does anything touch the cluster or its state.
        connector_backend, executor_backend, connector, executor = build_backends(settings)
        cleanup.callback(connector.close)
        metrics.build_info(__version__, connector_backend.name, executor_backend.name)
        report = functools.partial(init_report, settings, connector_backend, executor_backend,
                                   connector, executor)
        lines, _ = report()
        for line in lines:
            log.info("%s", line)
        app = create_app(settings, connector, executor, executor_name=executor_backend.name,
                         report=report)
        log.info("%s", REPORT_FOOTER)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        domain = front_domain(settings)
        if domain is not None:  # the proxy of interactive jobs: the front listener takes the port
            serve_behind_front(app, settings, connector, domain, sockets)
            return 0
        serve_with_waitress(app, settings, sockets)
    return 0


def listen_on(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> list[socket.socket]:
    """Sockets bound to ``host:port`` and listening, one per address the host resolves to."""
    try:
        found = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                   socket.IPPROTO_TCP, socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise SettingsError(f"WAITRESS_BIND_ADDRESS {host!r} is not an address of this "
                            f"machine: {error.strerror}.") from None
    sockets = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            if port == 0 and sockets:  # every address on the one port the kernel chose first
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sockets.append(socket.socket(family, kind, proto))
            sockets[-1].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sockets[-1].setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sockets[-1].bind(address)
            sockets[-1].listen(backlog)
    except OSError as error:
        for sock in sockets:
            sock.close()
        raise CannotListen(_listen_failure(host, port, error)) from None
    return sockets


def _listen_failure(host: str, port: int, error: OSError) -> str:
    where = f"Cannot listen on {host}:{port}: {error.strerror}"
    if error.errno == errno.EADDRINUSE:
        return (f"{where}; another server has that port (a dssr serve already running?): "
                "stop it, or choose another port with --port or WAITRESS_PORT.")
    return (f"{where}; choose another address or port (--host and --port, or "
            "WAITRESS_BIND_ADDRESS and WAITRESS_PORT).")


def _exit_on_sigterm(signum, frame):
    log.info("SIGTERM: stopping; running jobs keep running")
    raise SystemExit(0)  # lets serve() return so that the connector closes cleanly


# check ----------------------------------------------------------------------------------


def cmd_check(args) -> int:
    settings = load_settings(args)
    configure_logging(settings)
    answer = ask_running_server(settings, args.server)
    if answer is not None:
        url, report = answer
        print("\n".join(report["report"]))
        print(f"(made by the server running at {url})")
        return 0 if report["ok"] else 1
    connector_backend, executor_backend, connector, executor = build_backends(settings)
    try:
        lines, ok = init_report(settings, connector_backend, executor_backend, connector, executor)
    finally:
        connector.close()
    print("\n".join(lines))
    return 0 if ok else 1


def ask_running_server(settings: Settings, explicit: str | None) -> tuple[str, dict] | None:
    """``(url, /check answer)`` of the server that runs these backends, else None.

    Without ``explicit``, a server is looked for where these settings would serve, and
    None means: build the backends here. An explicit server must answer.
    """
    client = Client(explicit or served_url(settings), settings.server_key,
                    timeout=(CHECK_CONNECT_TIMEOUT_S, CHECK_REPORT_TIMEOUT_S))
    try:
        answer = client.call("GET", "/check")
    except ServerUnreachable:
        if explicit:
            raise
        return None
    except ClientError as error:
        if error.status != 404 or explicit:
            raise
        answer = None
    if not (isinstance(answer, dict) and isinstance(answer.get("report"), list)):
        if explicit:
            raise ClientError(f"{client.server} has no /check: it is not a DSSR server, or an "
                              "older one; stop it to check here.")
        print(f"dssr: {client.server} is not a DSSR server that answers /check; checking here.",
              file=sys.stderr)
        return None
    chosen = (settings.connector, settings.executor)
    if (answer.get("connector"), answer.get("executor")) != chosen and not explicit:
        print(f"dssr: the server at {client.server} runs connector {answer.get('connector')} "
              f"with executor {answer.get('executor')}; checking {chosen[0]} with {chosen[1]} here.",
              file=sys.stderr)
        return None
    return client.server, answer


def served_url(settings: Settings) -> str:
    """Where a client on this machine reaches a server started with ``settings``."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.bind, settings.bind)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


# settings -------------------------------------------------------------------------------


def cmd_settings(args) -> int:
    from dssr_core import catalogue

    settings = load_settings(args)
    registry = make_registry(block=disabled_plugins(settings))
    if args.markdown:
        print(catalogue.markdown(catalogue.declared_settings(registry)), end="")
        return 0
    lines, ok = catalogue.settings_report(settings, registry)
    print("\n".join(lines))
    return 0 if ok else 2  # a setting to fix, as when one of DSSR's own is invalid


# plugins --------------------------------------------------------------------------------


def cmd_plugins(args) -> int:
    settings = load_settings(args)
    registry = make_registry(block=disabled_plugins(settings))
    print(f"dssr_core {dssr_core.__version__}, plugin API {dssr_core.PLUGIN_API_VERSION}")
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
    for name, distribution in sorted(registry.disabled.items()):
        print(f"disabled   {name:<13} {distribution:<27} by DSSR_DISABLE_PLUGINS")
    return 0
