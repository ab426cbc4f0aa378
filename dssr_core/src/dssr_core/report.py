"""The init report logged at start and printed by ``dssr check``."""

import logging

from dssr_core.bearer import BearerCheck
from dssr_core.errors import DssrError
from dssr_core.settings import LOG_FORMAT

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
        f"connector: {_origin(connector_backend)}, {settings.connector_reason}",
        f"executor: {_origin(executor_backend)}, {settings.executor_reason}",
        f"listen: {settings.bind}:{settings.port} with {settings.threads} threads",
        "authentication: " + ("HTTP Basic (JARVICE_SCHED_SERVER_KEY is set)" if settings.server_key
                              else "none (JARVICE_SCHED_SERVER_KEY is not set)"),
        "interactive jobs: " + _job_urls(settings),
        "bearer signatures: "
        + BearerCheck.from_settings(settings).describe(connector.bearer_decides_account),
        f"log level: {logging.getLevelName(settings.log_level)}" + (
            f", {logging.getLevelName(settings.slurm_log_level)} for the Slurm connectors"
            if settings.slurm_log_level != settings.log_level else ""),
        f"log format: {settings.read(LOG_FORMAT)} (DSSR_LOG_FORMAT)",
        "metrics: " + _metrics(settings),
    ]
    lines += [f"{label}: {value}" for label, value in connector.report() + executor.report()]
    lines.append("settings read by no installed distribution: " + (", ".join(_unread(settings)) or "none"))
    try:
        summary = connector.check()
        lines.append(f"first connection: OK, {summary}")
        ok = True
    except DssrError as error:
        lines.append(f"first connection: FAILED, {error.message}")
        ok = False
    return lines, ok


def _unread(settings) -> list[str]:
    """Set ``JARVICE_``/``DSSR_`` names nothing declares (names only); two plugins declaring one
    setting differently stop the start here."""
    from dssr_core.catalogue import declared_settings, unread_names
    from dssr_core.plugins import make_registry

    return unread_names(settings, declared_settings(make_registry(block=settings.disabled_plugins)))


def _job_urls(settings) -> str:
    from dssr_core.front import front_domain

    domain = front_domain(settings)
    if domain is None:
        return "no proxy (JARVICE_JOBS_DOMAIN is not set)"
    return f"proxied by the front listener on port {settings.port} at {domain.describe()}"


def _metrics(settings) -> str:
    from dssr_core.metricsport import metrics_port

    on_api = f"GET /metrics on port {settings.port}" + (" with the server key" if settings.server_key else "")
    port = metrics_port(settings)
    return on_api if port is None else f"{on_api}; on port {port} without a key (DSSR_METRICS_PORT)"


def _origin(backend) -> str:
    return f"{backend.name} ({backend.distribution} {backend.version})"
