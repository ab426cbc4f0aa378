"""The ``dssr`` command. Each module adds its subcommands to the parser:

- :mod:`dssr_core.cli.server`: ``serve``, ``check`` and ``plugins``, which build DSSR here;
- :mod:`dssr_core.cli.jobs`: the client of a running server (``submit``, ``queued``, ...);
- :mod:`dssr_core.cli.logs`: the logging that ``serve`` and ``check`` set up.

Exit codes: 0 done; 1 it failed (the server, the cluster or the job said no, or could not be
reached); 2 the command line, a setting or a file must be fixed; 130 interrupted.
"""

import argparse
import os
import sys

import dssr_core
from dssr_core.cli import jobs, server
from dssr_core.errors import DssrError, InvalidRequest, PluginError, SettingsError

#: Errors that the caller fixes by calling differently (exit code 2); any other is 1.
USAGE_ERRORS = (InvalidRequest, PluginError, SettingsError)
#: The modules whose ``add_commands(commands)`` adds subcommands, in the order of ``dssr -h``.
COMMAND_MODULES = (server, jobs)


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
        return 2 if isinstance(error, USAGE_ERRORS) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `dssr plugins | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def version_line() -> str:
    """``dssr 0.2.0 (plugin API 0.2)``: the core's version and the plugin API it offers."""
    return f"dssr {dssr_core.__version__} (plugin API {dssr_core.PLUGIN_API_VERSION})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dssr", description="DSSR: downstream scheduler bridge for HPC. "
                                 "`dssr COMMAND -h` describes a command.")
    parser.add_argument("--version", action="version", version=version_line())
    commands = parser.add_subparsers(metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser

