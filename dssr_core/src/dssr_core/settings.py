"""Settings: the environment (and an optional YAML file) read once, validated, frozen.

Every setting is declared once as a :class:`~dssr_core.declarations.Setting` and read through
that declaration: ``settings.read(SETTING)`` gives the typed value, or raises
:class:`SettingsError` with one sentence that names the spelling that was set (and never shows
a secret). DSSR's own settings are declared here and become attributes of :class:`Settings`;
plugins declare theirs with the ``dssr_declare_settings`` hook and read them in their
``from_settings``.
"""

import logging
import os
import re
import warnings
from collections.abc import Mapping

import attrs
import yaml

from dssr_core import bearer
from dssr_core.declarations import Found, Setting, is_secret
from dssr_core.errors import SettingsError
from dssr_core.front import SETTINGS as FRONT_SETTINGS
from dssr_core.joburls import JOBS_DOMAIN, JOBS_NAMESPACE
from dssr_core.metricsport import SETTINGS as METRICS_SETTINGS
from dssr_core.shell import SERVICE_PORT as SHELL_SERVICE_PORT

__all__ = ["CORE_SETTINGS", "Found", "Setting", "Settings", "is_secret"]

DEFAULT_CONNECTOR = "dummy"
DEFAULT_CONNECTOR_REASON = "the default: no setting points at a cluster"
DEFAULT_EXECUTOR = "shell"
#: The connectors whose deployments run upstream's Singularity scripts by default.
SLURM_CONNECTORS = ("slurm-cli", "slurmrestd")
#: The chart's ``JARVICE_SLURM_CLIENT`` values and the connectors they stand for.
SLURM_CLIENTS = {"ssh_client": "slurm-cli", "slurmrestd_client": "slurmrestd"}
#: Settings that point at a cluster, in the order they choose a connector when none is named.
CLUSTER_HINTS = (("JARVICE_SLURM_CLUSTER_ADDR", "slurm-cli"), ("JARVICE_SLURMRESTD_URL", "slurmrestd"),
                 ("JARVICE_SLURMRESTD_ADDR", "slurmrestd"))
_LEGACY_MODULE = re.compile(r"^(?:connectors|executors)\.([A-Za-z0-9_-]+)\.(?:connector|executor)$")

CONNECTOR = Setting(
    "JARVICE_BAREMETAL_CONNECTOR", "the connector, by name (`dummy`, `slurm-cli`, `slurmrestd`, "
    "`gridengine`, or a third party's; the older `connectors.<name>.connector` too); `--connector`",
    default_text="`slurm-cli` or `slurmrestd` when a Slurm setting is set, else `dummy`")
SLURM_CLIENT = Setting(
    "JARVICE_SLURM_CLIENT", "the chart's choice of connector when none is named: `ssh_client` is "
    "`slurm-cli`, `slurmrestd_client` is `slurmrestd`", kind="choice", choices=tuple(SLURM_CLIENTS))
SLURM_INTERFACE = Setting(
    "JARVICE_SLURM_INTERFACE", "with the older connector spelling `connectors.slurm.connector`: `cli` "
    "(`slurm-cli`) or `http` (`slurmrestd`)", kind="choice", choices=("cli", "http"), default="cli")
EXECUTOR = Setting(
    "JARVICE_BAREMETAL_EXECUTOR", "the executor, by name (`shell`, `singularity`, or a third party's; "
    "the older `executors.<name>.executor` too); `--executor`",
    default_text="`singularity` with a Slurm connector (as the original DSSR), else `shell`")
BIND = Setting("WAITRESS_BIND_ADDRESS", "address to listen on; `--host`", default="127.0.0.1")
PORT = Setting("WAITRESS_PORT", "port to listen on; `--port`", kind="int", default=5000, minimum=0,
               maximum=65535)
THREADS = Setting("DSSR_THREADS", "requests the app works on at once (waitress's worker threads); "
                  "`--threads`", kind="int", default=16,
                  minimum=1, maximum=512)
SERVER_KEY = Setting(
    "JARVICE_SCHED_SERVER_KEY", "`user:password` that upstream sends as HTTP Basic; when set, every "
    "endpoint but the probes `/live` and `/ready` requires it", secret=True)
LOG_LEVEL = Setting("JARVICE_SCHED_LOGLEVEL", "log level: Python's numbers (10, 20, ...) or names",
                    kind="log level", default=logging.INFO)
SLURM_LOG_LEVEL = Setting("JARVICE_SLURM_SCHED_LOGLEVEL", "log level of the connectors to a scheduler "
                          "(Slurm's, Grid Engine's, their SSH; and paramiko, never below WARNING)",
                          kind="log level", default_text="`JARVICE_SCHED_LOGLEVEL`")
LOG_FORMAT = Setting("DSSR_LOG_FORMAT", "`text`: one plain line per record; `json`: one JSON object per "
                     "line (time, level, logger, message, request_id)", kind="choice",
                     choices=("text", "json"), default="text")
MAX_BODY_BYTES = Setting("DSSR_MAX_BODY_BYTES", "largest request body; a larger one gets a 413",
                         kind="int",
                         default=8 * 1024 * 1024, minimum=1024)
# Upstream polls with a few short requests every few seconds: a connection that sends nothing
# for 30 s is idle or hostile, and 1,000 of them still leave room for upstream. Waitress and
# the front listener (the proxy of interactive jobs) obey the same bounds; the front
# listener's own names of them came first, and stay as older spellings.
CONNECTION_LIMIT = Setting("DSSR_CONNECTION_LIMIT", "open connections served at once, websockets to "
                           "jobs included; more wait in the listen backlog", kind="int", default=1000,
                           minimum=1, maximum=100_000, legacy=("DSSR_PROXY_MAX_CONNECTIONS",))
CHANNEL_TIMEOUT = Setting("DSSR_CHANNEL_TIMEOUT", "seconds after which a connection that sent nothing is "
                          "closed; with the front listener a request's line and headers must also arrive "
                          "within it (an open websocket is not timed)", kind="int", default=30, minimum=1,
                          maximum=3600, legacy=("DSSR_PROXY_IDLE_TIMEOUT",))
CLEANUP_INTERVAL = Setting("DSSR_CLEANUP_INTERVAL", "seconds between two looks for such connections "
                           "(waitress; the front listener times each connection itself)",
                           kind="int", default=5, minimum=1, maximum=3600)
BACKLOG = Setting("DSSR_BACKLOG", "the listen backlog", kind="int", default=1024, minimum=1, maximum=65535)
MAX_HEADER_BYTES = Setting("DSSR_MAX_HEADER_BYTES", "largest request line and headers; larger ones get "
                           "a 431", kind="int", default=64 * 1024, minimum=4096)
DISABLE_PLUGINS = Setting("DSSR_DISABLE_PLUGINS", "entry-point names of plugins not to load", kind="list",
                          default=())
CONFIG = Setting("DSSR_CONFIG", "a YAML file of settings, under the environment; `--config`", kind="path")
SERVER = Setting("DSSR_SERVER", "the server the `dssr` client commands talk to",
                 default_text="`http://127.0.0.1:$WAITRESS_PORT`")
JOB_SCRATCH_DIR = Setting(
    "JARVICE_JOB_SCRATCH_DIR", "absolute directory, seen by every node, for the jobs' files (Slurm "
    "connectors) and bound into their containers (singularity); no `,` or `:`", kind="directory",
    default_text="the job user's home directory", legacy=("JARVICE_SLURM_SCRATCH_DIR",))

#: DSSR's own settings, in the order of docs/settings.md.
CORE_SETTINGS = (CONNECTOR, SLURM_CLIENT, SLURM_INTERFACE, EXECUTOR, BIND, PORT, THREADS, SERVER_KEY,
                 *bearer.SETTINGS, LOG_LEVEL, SLURM_LOG_LEVEL, LOG_FORMAT, MAX_BODY_BYTES, CONNECTION_LIMIT,
                 CHANNEL_TIMEOUT, CLEANUP_INTERVAL, BACKLOG, MAX_HEADER_BYTES, DISABLE_PLUGINS, CONFIG,
                 SERVER, JOB_SCRATCH_DIR, JOBS_DOMAIN, JOBS_NAMESPACE, *FRONT_SETTINGS, SHELL_SERVICE_PORT,
                 *METRICS_SETTINGS)


@attrs.frozen
class Settings:
    """What the environment, the YAML file and the command line gave, and DSSR's own settings
    read from it. Build with :meth:`from_env`; read a plugin's settings with :meth:`read`.

    ``connector_reason`` and ``executor_reason`` say why those backends were chosen.
    """

    values: Mapping[str, str] = attrs.field(repr=False, factory=dict)
    sources: Mapping[str, str] = attrs.field(repr=False, factory=dict)
    connector: str = DEFAULT_CONNECTOR
    connector_reason: str = ""
    executor: str = DEFAULT_EXECUTOR
    executor_reason: str = ""
    log_level: int = logging.INFO
    slurm_log_level: int = logging.INFO
    bind: str = "127.0.0.1"
    port: int = 5000
    threads: int = 16
    server_key: str | None = attrs.field(default=None, repr=False)
    max_body_bytes: int = 8 * 1024 * 1024
    connection_limit: int = 1000
    channel_timeout: int = 30
    cleanup_interval: int = 5
    backlog: int = 1024
    max_header_bytes: int = 64 * 1024
    disabled_plugins: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        config_file: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> "Settings":
        """Read the environment, under it the YAML file, over it explicit overrides.

        The YAML file is ``config_file`` or ``DSSR_CONFIG``: a mapping of setting names to
        values, for instance ``JARVICE_BAREMETAL_CONNECTOR: slurm-cli``. An empty value counts
        as not given, so a lower layer (or the default) shows through.
        """
        environ = dict(os.environ if environ is None else environ)
        path = config_file or (environ.get("DSSR_CONFIG") or "").strip()
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        if config_file:
            given["DSSR_CONFIG"] = config_file
        layers = [(_read_yaml(os.path.expanduser(path)) if path else {}, f"config file {path}"),
                  (environ, "environment"), (given, "command line")]
        values, sources = {}, {}
        for layer, source in layers:
            for name, value in layer.items():
                text = str(value).strip()
                if text:
                    values[name], sources[name] = text, source
        given = cls(values=values, sources=sources)
        return given._with_core_settings()

    def _with_core_settings(self) -> "Settings":
        key = self.read(SERVER_KEY)
        if key is not None and ":" not in key:
            raise SettingsError("JARVICE_SCHED_SERVER_KEY must be of the form user:password.")
        connector, connector_reason = choose_connector(self)
        executor, executor_reason = choose_executor(self, connector)
        log_level = self.read(LOG_LEVEL)
        slurm_log_level = self.read(SLURM_LOG_LEVEL)
        return attrs.evolve(
            self, connector=connector, connector_reason=connector_reason, executor=executor,
            executor_reason=executor_reason, log_level=log_level,
            slurm_log_level=log_level if slurm_log_level is None else slurm_log_level,
            bind=self.read(BIND), port=self.read(PORT), threads=self.read(THREADS), server_key=key,
            max_body_bytes=self.read(MAX_BODY_BYTES), connection_limit=self.read(CONNECTION_LIMIT),
            channel_timeout=self.read(CHANNEL_TIMEOUT), cleanup_interval=self.read(CLEANUP_INTERVAL),
            backlog=self.read(BACKLOG), max_header_bytes=self.read(MAX_HEADER_BYTES),
            disabled_plugins=self.read(DISABLE_PLUGINS))

    def read(self, setting: Setting):
        """The typed value of ``setting``: of its name, else of its older spellings in order,
        else its default. A bad value raises :class:`SettingsError` naming the spelling set."""
        found = self.found(setting)
        if found is None:
            return setting.default_value()
        return setting.parse(found.spelling, found.text)

    def read_required(self, *settings: Setting, purpose: str) -> tuple:
        """The typed values of ``settings``, which must all be set: else one SettingsError that
        names every one missing (``... must be set <purpose>``), so that one try tells all.

        Example: ``host, user = settings.read_required(HOST, USER, purpose="to reach PBS")``.
        ``.. versionadded:: 0.2``
        """
        values = tuple(self.read(setting) for setting in settings)
        missing = [setting.name for setting, value in zip(settings, values, strict=True)
                   if value is None or value == "" or value == ()]
        if missing:
            names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
            raise SettingsError(f"{names} must be set {purpose}.")
        return values

    def found(self, setting: Setting) -> Found | None:
        """Which spelling of ``setting`` is set, its text and where it came from; None if none."""
        for spelling in setting.spellings:
            if spelling in self.values:
                return Found(spelling, self.values[spelling], self.sources[spelling])
        return None

    def is_set(self, name: str) -> bool:
        """Whether the variable ``name`` has a value that is not empty."""
        return name in self.values

    def raw(self, name: str) -> str | None:
        """The text of a variable that is no setting of DSSR (``HOME``, ``XDG_DATA_HOME``).

        DSSR's settings are read with :meth:`read`, through their declaration.
        """
        return self.values.get(name)

    # 0.1's getters, deprecated in 0.2 and gone in 0.3 ------------------------------------

    def get(self, name: str, default: str | None = None, *, legacy: tuple[str, ...] = ()) -> str | None:
        """Deprecated: the text of ``name``, else of ``legacy`` in order, else ``default``."""
        return self._deprecated_read("get", name, default, legacy=legacy)

    def get_int(self, name: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None, legacy: tuple[str, ...] = ()) -> int:
        """Deprecated: ``read(Setting(name, ..., kind="int"))``."""
        return self._deprecated_read("get_int", name, default, "int", minimum, maximum, legacy)

    def get_float(self, name: str, default: float, *, minimum: float = 0.0,
                  legacy: tuple[str, ...] = ()) -> float:
        """Deprecated: ``read(Setting(name, ..., kind="float"))``."""
        return self._deprecated_read("get_float", name, default, "float", minimum, None, legacy)

    def get_bool(self, name: str, default: bool, *, legacy: tuple[str, ...] = ()) -> bool:
        """Deprecated: ``read(Setting(name, ..., kind="bool"))``."""
        return self._deprecated_read("get_bool", name, default, "bool", legacy=legacy)

    def get_list(self, name: str, *, legacy: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Deprecated: ``read(Setting(name, ..., kind="list"))``."""
        return self._deprecated_read("get_list", name, (), "list", legacy=legacy)

    def get_log_level(self, name: str, default: int, *, legacy: tuple[str, ...] = ()) -> int:
        """Deprecated: ``read(Setting(name, ..., kind="log level"))``."""
        return self._deprecated_read("get_log_level", name, default, "log level", legacy=legacy)

    def _deprecated_read(self, getter: str, name: str, default, kind: str = "str", minimum=None,
                         maximum=None, legacy: tuple[str, ...] = ()):
        """What 0.1's ``settings.<getter>(name, ...)`` answered, with a DeprecationWarning that
        names the call that replaces it."""
        warnings.warn(
            f"settings.{getter}({name!r}) is deprecated since DSSR 0.2 and goes in 0.3: declare "
            f"Setting({name!r}, help, kind={kind!r}, ...) in your plugin's dssr_declare_settings hook "
            f"and read it with settings.read(SETTING), or use settings.raw({name!r}) for a variable "
            "that is no setting.", DeprecationWarning, stacklevel=3)
        setting = Setting(name, "read with a getter of DSSR 0.1", kind=kind, default=default,
                          minimum=minimum, maximum=maximum, legacy=tuple(legacy))
        return self.read(setting)


def choose_connector(settings: Settings) -> tuple[str, str]:
    """The connector's short name and why it was chosen.

    A named connector wins (older module-path spellings translated); else the chart's
    ``JARVICE_SLURM_CLIENT``; else the first setting that points at a cluster; else ``dummy``.
    """
    found = settings.found(CONNECTOR)
    client = settings.read(SLURM_CLIENT)
    if found is not None:
        name = _translated(settings, found.text)
        reason = f"named by {found.spelling} ({found.source})"
        if client and SLURM_CLIENTS[client] != name:
            reason += f"; JARVICE_SLURM_CLIENT={client} is overruled"
        return name, reason
    if client:
        return SLURM_CLIENTS[client], f"chosen because JARVICE_SLURM_CLIENT is {client}"
    for hint, connector in CLUSTER_HINTS:
        if settings.is_set(hint):
            return connector, f"chosen because {hint} is set"
    return DEFAULT_CONNECTOR, DEFAULT_CONNECTOR_REASON


def _translated(settings: Settings, name: str) -> str:
    legacy = _LEGACY_MODULE.match(name)
    if legacy is None:
        return name
    short = legacy.group(1)
    if short == "slurm":
        return "slurmrestd" if settings.read(SLURM_INTERFACE) == "http" else "slurm-cli"
    return short


def choose_executor(settings: Settings, connector: str) -> tuple[str, str]:
    """The executor's short name and why: a named one, else ``singularity`` with a Slurm
    connector (the original DSSR's default), else ``shell``."""
    found = settings.found(EXECUTOR)
    if found is not None:
        legacy = _LEGACY_MODULE.match(found.text)
        return (legacy.group(1) if legacy else found.text), f"named by {found.spelling} ({found.source})"
    if connector in SLURM_CONNECTORS:
        return "singularity", f"the default with the {connector} connector, as in the original DSSR"
    return DEFAULT_EXECUTOR, f"the default with the {connector} connector"


def _read_yaml(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as error:
        raise SettingsError(f"DSSR_CONFIG file {path} cannot be read: {error.strerror}.") from None
    except yaml.YAMLError:
        raise SettingsError(f"DSSR_CONFIG file {path} is not valid YAML.") from None
    if not isinstance(data, dict):
        raise SettingsError(f"DSSR_CONFIG file {path} must hold a mapping of setting names to values.")
    return {str(k): "" if v is None else _yaml_text(v) for k, v in data.items()}


def _yaml_text(value) -> str:
    """YAML's ``true`` is the setting ``true``, not Python's ``True``."""
    return str(value).lower() if isinstance(value, bool) else str(value)
