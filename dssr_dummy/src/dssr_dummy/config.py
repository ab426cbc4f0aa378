"""The dummy connector's settings, read once from :class:`dssr_core.settings.Settings`."""

import logging
import os
import socket
from pathlib import Path

import attrs

from dssr_core.errors import SettingsError

log = logging.getLogger(__name__)

TIMER_ONLY_SETTINGS = ("JARVICE_DUMMY_JOB_QUEUED_TIME", "JARVICE_DUMMY_JOB_FAILING_PERCENT",
                       "JARVICE_DUMMY_JOBS_ARE_INTERACTIVE", "JARVICE_JOBS_ARE_INTERACTIVE")

#: Port of the URL that ``info`` gives for interactive jobs in timer mode, as the original
#: dummy connector did (it answered ``http://localhost:8080``).
DEFAULT_INTERACTIVE_PORT = 8080


@attrs.frozen
class TimerMode:
    """Jobs that do not run their script: queued ``queued_s``, then ``sleep running_s``."""

    running_s: float
    queued_s: float = 0.0
    failing_percent: float = 0.0
    interactive: bool = False

    def describe(self) -> str:
        return (f"on: queued {self.queued_s:g} s, running {self.running_s:g} s, "
                f"{self.failing_percent:g} % failing, "
                f"interactive {'yes' if self.interactive else 'no'}")


@attrs.frozen
class DummyConfig:
    """Where the dummy keeps its jobs and how many it runs at once.

    ``max_running`` 0 means no limit. ``timer`` is ``None`` unless timer mode is on.
    """

    state_dir: Path
    max_running: int
    kill_grace_s: float = 5.0
    timer: TimerMode | None = None
    interactive_url: str = ""
    hostname: str = attrs.field(factory=socket.gethostname)

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def database(self) -> Path:
        return self.state_dir / "jobs.sqlite3"

    @classmethod
    def from_settings(cls, settings) -> "DummyConfig":
        """Read the ``JARVICE_DUMMY_*`` settings; a bad value raises :class:`SettingsError`."""
        hostname = socket.gethostname()
        timer = None
        if settings.get("JARVICE_DUMMY_JOB_RUNNING_TIME") is not None:
            failing = settings.get_float("JARVICE_DUMMY_JOB_FAILING_PERCENT", 0.0)
            if failing > 100:
                raise SettingsError(
                    f"JARVICE_DUMMY_JOB_FAILING_PERCENT must be between 0 and 100, not {failing:g}."
                )
            timer = TimerMode(
                running_s=settings.get_float("JARVICE_DUMMY_JOB_RUNNING_TIME", 0.0),
                queued_s=settings.get_float("JARVICE_DUMMY_JOB_QUEUED_TIME", 0.0),
                failing_percent=failing,
                interactive=settings.get_bool("JARVICE_DUMMY_JOBS_ARE_INTERACTIVE", False,
                                              legacy=("JARVICE_JOBS_ARE_INTERACTIVE",)),
            )
        else:
            ignored = [name for name in TIMER_ONLY_SETTINGS if settings.get(name) is not None]
            if ignored:
                log.warning("%s only apply in timer mode, which JARVICE_DUMMY_JOB_RUNNING_TIME "
                            "turns on; jobs run their scripts", ", ".join(ignored))
        # A timer job is a sleeping process: no reason to cap them unless asked to.
        default_max = 0 if timer else (os.cpu_count() or 1)
        return cls(
            state_dir=state_dir(settings),
            max_running=settings.get_int("JARVICE_DUMMY_MAX_RUNNING", default_max,
                                         minimum=0, maximum=100_000),
            kill_grace_s=settings.get_float("JARVICE_DUMMY_KILL_GRACE", 5.0),
            timer=timer,
            interactive_url=settings.get("JARVICE_DUMMY_INTERACTIVE_URL")
            or f"http://{hostname}:{DEFAULT_INTERACTIVE_PORT}/",
            hostname=hostname,
        )


def state_dir(settings) -> Path:
    """``JARVICE_DUMMY_STATE_DIR``, else ``$XDG_DATA_HOME/dssr/dummy``, else under ~/.local."""
    explicit = settings.get("JARVICE_DUMMY_STATE_DIR")
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            raise SettingsError(
                f"JARVICE_DUMMY_STATE_DIR must be an absolute path, not {explicit!r}."
            )
        return path
    data_home = settings.get("XDG_DATA_HOME")
    if data_home and Path(data_home).is_absolute():
        return Path(data_home) / "dssr" / "dummy"
    home = settings.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".local" / "share" / "dssr" / "dummy"
