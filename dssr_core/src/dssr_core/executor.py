"""The base class of executors: upstream's script in, the script to run and its facts out."""

import abc

from dssr_core.errors import InvalidRequest
from dssr_core.facts import PARAMETERS_FIELD, escape_braces
from dssr_core.models import RenderedJob, ScriptRequest


class Executor(abc.ABC):
    """Turns ``hpc_script[<name>]`` into a :class:`RenderedJob`; subclasses implement :meth:`render`.

    ``<name>`` is the name its plugin registers (:class:`dssr_core.models.ExecutorSpec`); the
    class does not repeat it. ``secret_names`` lists the variables whose assignments
    :meth:`redact` removes from the script handed back to upstream and from anything logged.
    """

    secret_names: frozenset[str] = frozenset({"JOBOBJ_CTRSECRET", "JOBOBJ_DOCKER_SECRET"})

    @classmethod
    def from_settings(cls, settings):
        return cls(settings)

    def __init__(self, settings):
        self.settings = settings

    @abc.abstractmethod
    def render(self, request: ScriptRequest) -> RenderedJob:
        """The script to run and the job's facts; ``InvalidRequest`` for a bad template."""

    @classmethod
    def template_for(cls, command: str, *, image: str | None = None, cores: int = 1) -> str:
        """A script template in upstream's form that runs ``command``.

        Used by ``dssr submit --command`` so that a person can submit without upstream.
        Executors that run images override it; this one runs the command as it is.
        """
        if image is not None:
            raise InvalidRequest("This executor runs no image; drop --image.")
        return (f"#!/bin/bash\n{{{PARAMETERS_FIELD}}}\nJARVICE_CPU_CORES={cores}\n"
                f"{escape_braces(command)}\n")

    def redact(self, script: str) -> str:
        """The script without any line that mentions one of ``secret_names``.

        A line that names a secret at all goes, however it assigns it (``declare -x X=``,
        ``true; X=``, ``export A=1 X=``). Lines are split on every boundary that
        ``str.splitlines`` knows (CR, U+2028...), as :func:`dssr_core.facts.read_facts` splits
        them, so that no fact it reads can hide on a line this keeps.
        """
        return drop_lines_naming(script, self.secret_names)

    def report(self) -> list[tuple[str, str]]:
        """Settings for the init report, as (label, value); never a secret."""
        return []


def drop_lines_naming(text: str, names) -> str:
    """``text`` without the lines that contain one of ``names``, split as str.splitlines does."""
    names = sorted(names)
    return "".join(line for line in text.splitlines(keepends=True)
                   if not any(name in line for name in names))
