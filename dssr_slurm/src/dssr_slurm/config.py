"""Settings shared by the Slurm connectors, read once from :class:`dssr_core.settings.Settings`."""

import attrs

from dssr_core.errors import SettingsError

DEFAULT_STATUS_INTERVAL = 2.0
#: Where an interactive job's web service is reached: ``{node}`` is the job's first node,
#: ``{port}`` the service port the executor gave.
DEFAULT_SERVICE_URL = "http://{node}:{port}/"


@attrs.frozen
class SlurmConfig:
    """Where jobs keep their files and how often the scheduler is asked for status.

    ``scratch_dir`` empty means the job user's home directory (the working directory of a
    login): job files are then named relative to it. ``service_url`` is the template of an
    interactive job's ``url`` (see :meth:`service_url_of`).
    """

    scratch_dir: str = ""
    data_root: str = ""
    status_interval: float = DEFAULT_STATUS_INTERVAL
    service_url: str = DEFAULT_SERVICE_URL

    @classmethod
    def from_settings(cls, settings) -> "SlurmConfig":
        scratch = _directory(settings.get("JARVICE_JOB_SCRATCH_DIR", ""), "JARVICE_JOB_SCRATCH_DIR")
        data_root = _directory(settings.get("JARVICE_SLURM_DATA_ROOT", scratch), "JARVICE_SLURM_DATA_ROOT")
        return cls(
            scratch_dir=scratch,
            data_root=data_root,
            status_interval=settings.get_float("JARVICE_SLURM_STATUS_INTERVAL", DEFAULT_STATUS_INTERVAL),
            service_url=_service_url(settings.get("JARVICE_SLURM_SERVICE_URL", DEFAULT_SERVICE_URL)),
        )

    def service_url_of(self, node: str, port: int) -> str:
        """Where the web service on ``port`` of ``node`` is reached."""
        return self.service_url.format(node=node, port=port)


def _service_url(template: str) -> str:
    """A URL template that formats with ``{node}`` and ``{port}`` (and nothing else)."""
    try:
        template.format(node="node01", port=2228)
    except (AttributeError, KeyError, IndexError, ValueError) as error:
        raise SettingsError(f"JARVICE_SLURM_SERVICE_URL must be a URL in which only {{node}} and "
                            f"{{port}} are replaced, such as {DEFAULT_SERVICE_URL!r}; {template!r} "
                            f"does not format ({type(error).__name__}: {error}).") from None
    if any(char in template for char in "\n\r\0"):
        raise SettingsError("JARVICE_SLURM_SERVICE_URL must be one line.")
    return template


def _directory(path: str, name: str) -> str:
    """An absolute directory without a trailing slash, or empty (the user's home)."""
    if not path:
        return ""
    if not path.startswith("/") or any(char in path for char in "\n\r\0"):
        raise SettingsError(f"{name} must be an absolute directory path, not {path!r}.")
    return path.rstrip("/") or "/"
