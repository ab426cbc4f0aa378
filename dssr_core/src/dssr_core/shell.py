"""The built-in ``shell`` executor: upstream's script runs as it is, with no container."""

import dssr_core
from dssr_core.declarations import Setting
from dssr_core.durations import format_hms
from dssr_core.executor import Executor
from dssr_core.facts import export_lines, job_facts, read_facts, render_template
from dssr_core.models import ExecutorSpec, JobFacts, RenderedJob, ScriptRequest

SERVICE_PORT = Setting("DSSR_SHELL_SERVICE_PORT", "the port an interactive job's web service listens on, "
                       "given to the script as `JARVICE_SERVICE_PORT`", kind="int", default=2228, minimum=1,
                       maximum=65535)


class ShellExecutor(Executor):
    """Fills ``{DOWNSTREAM_PARAMETERS}`` with ``export`` lines of the job's facts."""

    def render(self, request: ScriptRequest) -> RenderedJob:
        facts = job_facts(read_facts(request.template), request.nodes)
        port = self.settings.read(SERVICE_PORT) if facts.interactive and self.settings is not None else None
        block = export_lines(parameters(request, facts, port))
        return RenderedJob(script=render_template(request.template, block), facts=facts, service_port=port)


def parameters(request: ScriptRequest, facts: JobFacts, service_port: int | None = None) -> dict[str, object]:
    """The variables a plain job script can rely on (``JARVICE_SERVICE_PORT`` for an interactive one)."""
    service = {"JARVICE_SERVICE_PORT": service_port} if service_port is not None else {}
    return {
        **service,
        "DSSR_JOB_NAME": request.name,
        "DSSR_JOB_NUMBER": request.number,
        "DSSR_NODES": facts.nodes,
        "DSSR_CORES_PER_NODE": facts.cores,
        "DSSR_GPUS_PER_NODE": facts.gpus,
        "DSSR_MEMORY_GB": facts.memory_gb or "",
        "DSSR_WALLTIME": format_hms(facts.walltime_s) if facts.walltime_s else "",
        "DSSR_INTERACTIVE": facts.interactive,
    }


@dssr_core.hookimpl
def dssr_register_executors():
    return [ExecutorSpec("shell", ShellExecutor, "Runs the script as it is, no container")]
