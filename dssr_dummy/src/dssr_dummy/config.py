"""The dummy connector's settings, read once from :class:`dssr_core.settings.Settings`."""

import logging
import os
import socket
from pathlib import Path

import attrs

from dssr_core.errors import SettingsError
from dssr_core.settings import Setting

log = logging.getLogger(__name__)

STATE_DIR = Setting(
    "JARVICE_DUMMY_STATE_DIR", "absolute path of the folder of the jobs' database, the jobs' folders and "
    "the data root", kind="path",
    default_text="`$XDG_DATA_HOME/dssr/dummy`, else `~/.local/share/dssr/dummy`")
MAX_RUNNING = Setting("JARVICE_DUMMY_MAX_RUNNING", "jobs running at once; `0` = no limit", kind="int",
                      minimum=0, maximum=100_000, default_text="the number of CPUs; no limit in timer mode")
KILL_GRACE = Setting("JARVICE_DUMMY_KILL_GRACE", "seconds between TERM and KILL when a job is terminated",
                     kind="float", default=5.0, minimum=0.0)
RUNNING_TIME = Setting("JARVICE_DUMMY_JOB_RUNNING_TIME", "seconds; setting it turns timer mode on (below)",
                       kind="float", minimum=0.0)
QUEUED_TIME = Setting("JARVICE_DUMMY_JOB_QUEUED_TIME", "timer mode: seconds a job waits in `/queued` "
                      "before it runs", kind="float", default=0.0, minimum=0.0)
FAILING_PERCENT = Setting("JARVICE_DUMMY_JOB_FAILING_PERCENT", "timer mode: percentage of jobs, drawn at "
                          "random, that exit 1 (`FAILED`)", kind="float", default=0.0, minimum=0.0,
                          maximum=100.0)
INTERACTIVE = Setting("JARVICE_DUMMY_JOBS_ARE_INTERACTIVE", "timer mode: `/request/.../info` gives running "
                      "jobs a `url`", kind="bool", default=False, legacy=("JARVICE_JOBS_ARE_INTERACTIVE",))
INTERACTIVE_URL = Setting("JARVICE_DUMMY_INTERACTIVE_URL", "that `url`",
                          default_text="`http://<host name>:8080/`")
TIMER_ONLY_SETTINGS = (QUEUED_TIME, FAILING_PERCENT, INTERACTIVE)
SETTINGS = (STATE_DIR, MAX_RUNNING, KILL_GRACE, RUNNING_TIME, QUEUED_TIME, FAILING_PERCENT, INTERACTIVE,
            INTERACTIVE_URL)

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
        running_s = settings.read(RUNNING_TIME)
        if running_s is not None:
            timer = TimerMode(running_s=running_s, queued_s=settings.read(QUEUED_TIME),
                              failing_percent=settings.read(FAILING_PERCENT),
                              interactive=settings.read(INTERACTIVE))
        else:
            ignored = [found.spelling for found in map(settings.found, TIMER_ONLY_SETTINGS) if found]
            if ignored:
                log.warning("%s only apply in timer mode, which JARVICE_DUMMY_JOB_RUNNING_TIME "
                            "turns on; jobs run their scripts", ", ".join(ignored))
        max_running = settings.read(MAX_RUNNING)
        if max_running is None:  # a timer job is a sleeping process: no reason to cap them
            max_running = 0 if timer else (os.cpu_count() or 1)
        return cls(
            state_dir=state_dir(settings),
            max_running=max_running,
            kill_grace_s=settings.read(KILL_GRACE),
            timer=timer,
            interactive_url=settings.read(INTERACTIVE_URL) or f"http://{hostname}:{DEFAULT_INTERACTIVE_PORT}/",
            hostname=hostname,
        )


def state_dir(settings) -> Path:
    """``JARVICE_DUMMY_STATE_DIR``, else ``$XDG_DATA_HOME/dssr/dummy``, else under ~/.local."""
    explicit = settings.read(STATE_DIR)
    if explicit is not None:
        path = Path(explicit)
        if not path.is_absolute():
            raise SettingsError(
                f"{settings.found(STATE_DIR).spelling} must be an absolute path, not {explicit!r}."
            )
        return path
    data_home = settings.raw("XDG_DATA_HOME")
    if data_home and Path(data_home).is_absolute():
        return Path(data_home) / "dssr" / "dummy"
    home = settings.raw("HOME")
    base = Path(home) if home else Path.home()
    return base / ".local" / "share" / "dssr" / "dummy"
