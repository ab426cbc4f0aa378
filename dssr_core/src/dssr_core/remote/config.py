"""Settings every connector to a batch scheduler reads, read once from :class:`dssr_core.settings.Settings`.

Their names are the JARVICE chart's (``JARVICE_SLURM_*``), kept for every scheduler family."""

import attrs

from dssr_core.errors import SettingsError
from dssr_core.joburls import JobsDomain
from dssr_core.settings import JOB_SCRATCH_DIR, Setting

DEFAULT_STATUS_INTERVAL = 2.0
#: Where an interactive job's web service is reached: ``{node}`` is the job's first node,
#: ``{port}`` the service port the executor gave.
DEFAULT_SERVICE_URL = "http://{node}:{port}/"


DATA_ROOT = Setting("JARVICE_SLURM_DATA_ROOT", "the directory `/request/pvcls` lists as `/data`",
                    kind="directory",
                    default_text="`JARVICE_JOB_SCRATCH_DIR`, else the service account's home")
STATUS_INTERVAL = Setting("JARVICE_SLURM_STATUS_INTERVAL", "seconds a status snapshot is used before the "
                          "scheduler is asked again", kind="float", default=DEFAULT_STATUS_INTERVAL,
                          minimum=0.0)
SERVICE_URL = Setting(
    "JARVICE_SLURM_SERVICE_URL", "the `url` that `/request/.../info` gives for a running interactive job: "
    "`{node}` is the job's first node, `{port}` its service port (checked at start)",
    default=DEFAULT_SERVICE_URL)
USER_GROUP = Setting(
    "JARVICE_SLURM_SSH_USER_GROUP", "the service account's group, from the chart's secret; shown in the init "
    "report and otherwise not needed: jobs run as the mapped users, so their files are theirs")
CHOWN_WRAPPER = Setting(
    "JARVICE_CHOWN_WRAPPER", "the chart's command to run instead of `chown` on the cluster; shown in the "
    "init report and otherwise not needed: DSSR changes no file's owner (jobs run as the users themselves)")
PROXY_SSH_CLIENT = Setting(
    "DSSR_PROXY_SSH_CLIENT", "what carries the proxy's connections to interactive jobs over SSH: `openssh` "
    "(an OpenSSH `ssh` master connection, each connection a stdio forward on it; near `ssh -L`'s speed for "
    "small messages) or "
    "`paramiko` (a `direct-tcpip` channel on DSSR's own connection; no `ssh` program needed)",
    kind="choice", choices=("openssh", "paramiko"), default="openssh")
#: The settings every such connector reads (``JARVICE_JOB_SCRATCH_DIR`` is DSSR's own).
SETTINGS = (DATA_ROOT, STATUS_INTERVAL, SERVICE_URL, USER_GROUP, CHOWN_WRAPPER, PROXY_SSH_CLIENT)


@attrs.frozen
class RemoteConfig:
    """Where jobs keep their files and how often the scheduler is asked for status.

    ``scratch_dir`` empty means the job user's home directory (the working directory of a
    login): job files are then named relative to it. ``service_url`` is the template of an
    interactive job's ``url`` (see :meth:`service_url_of`) when users reach the nodes:
    ``jobs_domain`` (``JARVICE_JOBS_DOMAIN``) gives the proxy's URL instead, unless
    ``JARVICE_SLURM_SERVICE_URL`` is set (``service_url_set``). ``user_group`` and
    ``chown_wrapper`` are the chart's, accepted and reported, not used.
    """

    scratch_dir: str = ""
    data_root: str = ""
    status_interval: float = DEFAULT_STATUS_INTERVAL
    service_url: str = DEFAULT_SERVICE_URL
    user_group: str | None = None
    chown_wrapper: str | None = None
    jobs_domain: JobsDomain | None = None
    service_url_set: bool = False
    proxy_ssh_client: str = "openssh"

    @classmethod
    def from_settings(cls, settings) -> "RemoteConfig":
        scratch = settings.read(JOB_SCRATCH_DIR) or ""
        data_root = settings.read(DATA_ROOT)
        return cls(
            scratch_dir=scratch,
            data_root=scratch if data_root is None else data_root,
            status_interval=settings.read(STATUS_INTERVAL),
            service_url=_service_url(settings.read(SERVICE_URL)),
            user_group=settings.read(USER_GROUP),
            chown_wrapper=settings.read(CHOWN_WRAPPER),
            jobs_domain=JobsDomain.from_settings(settings),
            service_url_set=settings.found(SERVICE_URL) is not None,
            proxy_ssh_client=settings.read(PROXY_SSH_CLIENT),
        )

    def chart_report(self) -> list[tuple[str, str]]:
        """The init report's lines for the chart's settings that DSSR accepts and does not need."""
        return [
            ("service account group", (self.user_group or "not set") + " (JARVICE_SLURM_SSH_USER_GROUP; not "
             "needed: jobs run as the mapped users)"),
            ("chown wrapper", (self.chown_wrapper or "not set") + " (JARVICE_CHOWN_WRAPPER; not needed: DSSR "
             "runs no chown)"),
        ]

    def service_url_of(self, node: str, port: int) -> str:
        """Where the web service on ``port`` of ``node`` is reached."""
        return self.service_url.format(node=node, port=port)

    @property
    def proxied(self) -> bool:
        """Whether users open interactive jobs through DSSR's proxy (not straight at the node)."""
        return self.jobs_domain is not None and not self.service_url_set


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

