"""Settings shared by the Slurm connectors, read once from :class:`dssr_core.settings.Settings`."""

import attrs

from dssr_core.errors import SettingsError

DEFAULT_STATUS_INTERVAL = 2.0


@attrs.frozen
class SlurmConfig:
    """Where jobs keep their files and how often the scheduler is asked for status.

    ``scratch_dir`` empty means the job user's home directory (the working directory of a
    login): job files are then named relative to it.
    """

    scratch_dir: str = ""
    data_root: str = ""
    status_interval: float = DEFAULT_STATUS_INTERVAL

    @classmethod
    def from_settings(cls, settings) -> "SlurmConfig":
        scratch = _directory(settings.get("JARVICE_JOB_SCRATCH_DIR", ""), "JARVICE_JOB_SCRATCH_DIR")
        data_root = _directory(settings.get("JARVICE_SLURM_DATA_ROOT", scratch), "JARVICE_SLURM_DATA_ROOT")
        return cls(
            scratch_dir=scratch,
            data_root=data_root,
            status_interval=settings.get_float("JARVICE_SLURM_STATUS_INTERVAL", DEFAULT_STATUS_INTERVAL),
        )


def _directory(path: str, name: str) -> str:
    """An absolute directory without a trailing slash, or empty (the user's home)."""
    if not path:
        return ""
    if not path.startswith("/") or any(char in path for char in "\n\r\0"):
        raise SettingsError(f"{name} must be an absolute directory path, not {path!r}.")
    return path.rstrip("/") or "/"
