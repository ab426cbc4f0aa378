"""The init report logged at start and printed by ``dssr check``."""

import logging

from dssr_core.errors import DssrError

#: The title JARVICE's own Slurm scheduler logs, which operators grep: the connectors that
#: replace it (its ``cli`` and ``http`` interfaces) keep it.
SLURM_REPORT_HEADER = "+----- Slurm Scheduler init report -----+"
SLURM_CONNECTORS = ("slurm-cli", "slurmrestd")
REPORT_FOOTER = "Init done. Entering main loop."


def report_header(connector_name: str) -> str:
    """The report's first line, named after the connector."""
    if connector_name in SLURM_CONNECTORS:
        return SLURM_REPORT_HEADER
    return f"+----- {connector_name} connector init report -----+"


def init_report(settings, connector_backend, executor_backend, connector, executor) -> tuple[list[str], bool]:
    """The report's lines and whether the first connection to the cluster worked."""
    lines = [
        report_header(connector_backend.name),
        f"connector: {connector_backend.name} ({connector_backend.distribution} {connector_backend.version})",
        f"executor: {executor_backend.name} ({executor_backend.distribution} {executor_backend.version})",
        f"listen: {settings.bind}:{settings.port} with {settings.threads} threads",
        "authentication: " + ("HTTP Basic (JARVICE_SCHED_SERVER_KEY is set)" if settings.server_key
                              else "none (JARVICE_SCHED_SERVER_KEY is not set)"),
        f"log level: {logging.getLevelName(settings.log_level)}",
    ]
    lines += [f"{label}: {value}" for label, value in connector.report() + executor.report()]
    try:
        summary = connector.check()
        lines.append(f"first connection: OK, {summary}")
        ok = True
    except DssrError as error:
        lines.append(f"first connection: FAILED, {error.message}")
        ok = False
    return lines, ok
