"""The ``singularity`` executor: JARVICE apps in Singularity/Apptainer containers.

It fills upstream's ``{DOWNSTREAM_PARAMETERS}`` with the Singularity block of the legacy API
(images, credentials, overlay, scratch, proxies, verbosity). It knows no scheduler: the
connector wraps the rendered script and runs one copy per node.
"""

import base64
import importlib.resources
import logging
import platform
import re
import shlex
from collections.abc import Mapping

import attrs

from dssr_core.errors import InvalidRequest, SettingsError
from dssr_core.executor import Executor
from dssr_core.facts import (
    PARAMETERS_FIELD,
    escape_braces,
    export_lines,
    job_facts,
    read_facts,
    render_template,
)
from dssr_core.joburls import JOBS_DOMAIN
from dssr_core.models import JobFacts, RenderedJob, ScriptRequest
from dssr_core.settings import JOB_SCRATCH_DIR, Setting
from dssr_singularity.credentials import (
    CTRSECRET,
    DOCKER_SECRET,
    Credentials,
    app_credentials,
    b64,
)
from dssr_singularity.images import (
    ImageRef,
    canonical_registry,
    check_registry,
    check_repo_base,
    check_tag,
    go_arch,
    in_proxy_repos,
    init_image,
    is_path_component,
)

log = logging.getLogger(__name__)

SUCCESS_MARKER = "JARVICE_CMD_SUCCESS"
DEFAULT_SYSTEM_REGISTRY = "us-docker.pkg.dev"
DEFAULT_SYSTEM_REPO_BASE = "jarvice-system/images"
DEFAULT_IMAGES_TAG = "jarvice-master"
DEFAULT_OVERLAY_MB = 600
#: Singularity refuses to create a smaller ext3 overlay.
MIN_OVERLAY_MB = 64
DEFAULT_TMPDIR = "/tmp"
#: The ports the legacy downstream hard-coded for an interactive job's services.
DEFAULT_SERVICE_PORT = 2228
DEFAULT_SSH_PORT = 2227
MIN_APPDEFVERSION = 2

_PROXY_LINE = re.compile(r"^\s*(?:export\s+)?SCHTTPS?_PROXY=")
_USERINFO = re.compile(r"(://)[^/@\s]+@")


SYSTEM_REGISTRY = Setting("JARVICE_SYSTEM_REGISTRY", "registry of JARVICE's init images",
                          default=DEFAULT_SYSTEM_REGISTRY)
SYSTEM_REPO_BASE = Setting("JARVICE_SYSTEM_REPO_BASE", "repository path of the init images",
                           default=DEFAULT_SYSTEM_REPO_BASE)
OMIT_REPO_BASE = Setting(
    "JARVICE_SYSTEM_OMIT_REPO_BASE", "`true`: the init images are `<registry>/initv<N>:<tag>`, without "
    "`JARVICE_SYSTEM_REPO_BASE` (as the chart does for its own images)", kind="bool", default=False)
IMAGES_TAG = Setting("JARVICE_IMAGES_TAG", "tag of the init images (see the architecture rule)",
                     default=DEFAULT_IMAGES_TAG)
DOCKER_USERNAME = Setting("JARVICE_DOCKER_USERNAME", "base64 of the user name for the init image's registry",
                          secret=True)
DOCKER_PASSWORD = Setting("JARVICE_DOCKER_PASSWORD", "base64 of its password; set both or neither",
                          secret=True)
LOCAL_REGISTRY = Setting("JARVICE_LOCAL_REGISTRY", "caching mode: apps are pulled from this registry "
                         "(`host[:port]`)")
LOCAL_REPO_BASE = Setting("JARVICE_LOCAL_REPO_BASE", "caching mode's repository path; required with "
                          "`JARVICE_LOCAL_REGISTRY`")
PROXY_PORT = Setting("JARVICE_REGISTRY_PROXY_PORT", "port of a registry proxy on each node "
                     "(`localhost:<port>`)", kind="int", minimum=1, maximum=65535)
PROXY_REPOS = Setting("JARVICE_REGISTRY_PROXY_REPOS", "repositories pulled through that proxy",
                      kind="list", default=())
GLOBAL_REGISTRIES = Setting("JARVICE_JOB_GLOBAL_REGISTRIES", "registries that set "
                            "`JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES`", kind="list", default=())
GLOBAL_SCRATCH_DIR = Setting("JARVICE_JOB_GLOBAL_SCRATCH_DIR", "a shared directory, bound too when set; "
                             "no `,` or `:`", kind="directory")
TMPDIR = Setting("JARVICE_SINGULARITY_TMPDIR", "node-local directory for SIF files, overlays and the image "
                 "cache; no `,` or `:`", kind="directory", default=DEFAULT_TMPDIR)
OVERLAY_SIZE = Setting(
    "JARVICE_SINGULARITY_OVERLAY_SIZE", f"MB of the writable ext3 overlay; `0` = `--writable-tmpfs`; "
    f"otherwise at least {MIN_OVERLAY_MB}", kind="int", default=DEFAULT_OVERLAY_MB, minimum=0,
    legacy=("JARVICE_SLURM_OVERLAY_SIZE",))
VERBOSE = Setting("JARVICE_SINGULARITY_VERBOSE", "`-v` on singularity calls and progress lines in the job "
                  "output (else `-s`)", kind="bool", default=False)
HTTP_PROXY = Setting("JARVICE_BAREMETAL_HTTP_PROXY", "`http_proxy` for pulls and apps", default="",
                     secret=True, legacy=("JARVICE_SLURM_HTTP_PROXY",))
HTTPS_PROXY = Setting("JARVICE_BAREMETAL_HTTPS_PROXY", "`https_proxy`", default="", secret=True,
                      legacy=("JARVICE_SLURM_HTTPS_PROXY",))
NO_PROXY = Setting("JARVICE_BAREMETAL_NO_PROXY", "`no_proxy`", default="", legacy=("JARVICE_SLURM_NO_PROXY",))
INTERACTIVE = Setting("DSSR_SINGULARITY_INTERACTIVE", "accept interactive jobs: set it only where users can "
                      "reach the compute nodes' service ports", kind="bool", default=False)
SERVICE_PORT = Setting("DSSR_SINGULARITY_SERVICE_PORT", "an interactive job's web service port on its node "
                       "(`JARVICE_SERVICE_PORT` in the container)", kind="int", default=DEFAULT_SERVICE_PORT,
                       minimum=1, maximum=65535)
SSH_PORT = Setting("DSSR_SINGULARITY_SSH_PORT", "its SSH port (`JARVICE_SSH_PORT`)", kind="int",
                   default=DEFAULT_SSH_PORT, minimum=1, maximum=65535)
#: Every setting the executor reads (``JARVICE_JOB_SCRATCH_DIR`` is DSSR's own).
SETTINGS = (SYSTEM_REGISTRY, SYSTEM_REPO_BASE, OMIT_REPO_BASE, IMAGES_TAG, DOCKER_USERNAME, DOCKER_PASSWORD,
            LOCAL_REGISTRY, LOCAL_REPO_BASE, PROXY_PORT, PROXY_REPOS, GLOBAL_REGISTRIES, GLOBAL_SCRATCH_DIR,
            TMPDIR, OVERLAY_SIZE, VERBOSE, HTTP_PROXY, HTTPS_PROXY, NO_PROXY, INTERACTIVE, SERVICE_PORT,
            SSH_PORT)


@attrs.frozen
class SingularityConfig:
    """Every setting the executor reads, validated once. Build with :meth:`from_settings`.

    ``system_repo_base`` is empty when ``JARVICE_SYSTEM_OMIT_REPO_BASE`` is true.
    """

    system_registry: str = DEFAULT_SYSTEM_REGISTRY
    system_repo_base: str = DEFAULT_SYSTEM_REPO_BASE
    images_tag: str = DEFAULT_IMAGES_TAG
    init_username: str = attrs.field(default="", repr=False)
    init_password: str = attrs.field(default="", repr=False)
    local_registry: str | None = None
    local_repo_base: str | None = None
    proxy_port: int | None = None
    proxy_repos: tuple[str, ...] = ()
    global_registries: frozenset[str] = frozenset()
    scratch_dir: str = ""
    global_scratch_dir: str = ""
    tmpdir: str = DEFAULT_TMPDIR
    overlay_mb: int = DEFAULT_OVERLAY_MB
    verbose: bool = False
    http_proxy: str = attrs.field(default="", repr=False)
    https_proxy: str = attrs.field(default="", repr=False)
    no_proxy: str = ""
    interactive: bool = False
    proxied: bool = False
    service_port: int = DEFAULT_SERVICE_PORT
    ssh_port: int = DEFAULT_SSH_PORT
    #: Go architecture of the machine DSSR runs on (``amd64`` on x86_64).
    host_arch: str = attrs.field(factory=lambda: go_arch(platform.machine()))

    @classmethod
    def from_settings(cls, settings) -> "SingularityConfig":
        """Read and check every setting; SettingsError names the first bad one."""
        local_registry = settings.read(LOCAL_REGISTRY)
        local_repo_base = settings.read(LOCAL_REPO_BASE)
        if local_registry:
            local_registry = check_registry(local_registry, "JARVICE_LOCAL_REGISTRY")
            if not local_repo_base:
                raise SettingsError("JARVICE_LOCAL_REGISTRY is set without JARVICE_LOCAL_REPO_BASE; "
                                    "caching mode needs both.")
            local_repo_base = check_repo_base(local_repo_base, "JARVICE_LOCAL_REPO_BASE")
        proxy_repos = settings.read(PROXY_REPOS)
        proxy_port = settings.read(PROXY_PORT)
        if proxy_port and not proxy_repos:
            log.warning("JARVICE_REGISTRY_PROXY_PORT is set but JARVICE_REGISTRY_PROXY_REPOS "
                        "is empty: no app image goes through the registry proxy.")
        username = _base64_setting(settings, DOCKER_USERNAME)
        password = _base64_setting(settings, DOCKER_PASSWORD)
        if bool(username) != bool(password):
            raise SettingsError("JARVICE_DOCKER_USERNAME and JARVICE_DOCKER_PASSWORD go together: "
                                "set both (base64) or neither.")
        return cls(
            system_registry=check_registry(settings.read(SYSTEM_REGISTRY), "JARVICE_SYSTEM_REGISTRY"),
            system_repo_base="" if settings.read(OMIT_REPO_BASE) else check_repo_base(
                settings.read(SYSTEM_REPO_BASE), "JARVICE_SYSTEM_REPO_BASE"),
            images_tag=check_tag(settings.read(IMAGES_TAG), "JARVICE_IMAGES_TAG"),
            init_username=username,
            init_password=password,
            local_registry=local_registry,
            local_repo_base=local_repo_base if local_registry else None,
            proxy_port=proxy_port,
            proxy_repos=proxy_repos,
            global_registries=frozenset(canonical_registry(r) for r in settings.read(GLOBAL_REGISTRIES)),
            scratch_dir=_scratch_directory(settings, JOB_SCRATCH_DIR),
            global_scratch_dir=_scratch_directory(settings, GLOBAL_SCRATCH_DIR),
            tmpdir=_bindable(settings, TMPDIR),
            overlay_mb=_overlay(settings),
            verbose=settings.read(VERBOSE),
            http_proxy=settings.read(HTTP_PROXY),
            https_proxy=settings.read(HTTPS_PROXY),
            no_proxy=settings.read(NO_PROXY),
            interactive=settings.read(INTERACTIVE),
            proxied=bool(settings.read(JOBS_DOMAIN)),
            service_port=settings.read(SERVICE_PORT),
            ssh_port=settings.read(SSH_PORT),
        )


def _base64_setting(settings, setting: Setting) -> str:
    """The decoded text of a base64 setting; the error never shows the value."""
    text = settings.read(setting) or ""
    try:
        return base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise SettingsError(f"{setting.name} must be base64 (of UTF-8 text); the value is not.") from None


def _overlay(settings) -> int:
    overlay = settings.read(OVERLAY_SIZE)
    if 0 < overlay < MIN_OVERLAY_MB:
        raise SettingsError(f"{settings.found(OVERLAY_SIZE).spelling} must be 0 (writable tmpfs) or at least "
                            f"{MIN_OVERLAY_MB} MB, not {overlay}.")
    return overlay


def _bindable(settings, setting: Setting) -> str:
    """An absolute directory; Singularity's ``-B`` splits on ',' and ':', so neither may appear."""
    text = settings.read(setting) or ""
    if any(char in text for char in ",:"):
        raise SettingsError(f"{settings.found(setting).spelling} must be an absolute directory without "
                            f"',' or ':', not {text!r}.")
    return text


def _scratch_directory(settings, setting: Setting) -> str:
    """A scratch directory with the trailing '/' upstream's scripts expect, or ''."""
    text = _bindable(settings, setting)
    return text.rstrip("/") + "/" if text else ""


def _masked_url(text: str) -> str:
    """``text`` with a URL's user:password@ shown as ***@ (proxies may carry credentials)."""
    return _USERINFO.sub(r"\1***@", text)


class SingularityExecutor(Executor):
    """Renders upstream's Singularity script (see docs/singularity.md)."""

    #: The credential exports, and the two facts upstream writes its secrets in.
    secret_names = Executor.secret_names | {
        "JARVICE_INIT_DOCKER_USERNAME", "JARVICE_INIT_DOCKER_PASSWORD",
        "JARVICE_DOCKER_USERNAME", "JARVICE_DOCKER_PASSWORD",
        DOCKER_SECRET, CTRSECRET,
    }
    #: The image ``template_for`` runs when given none.
    default_image = "docker.io/library/ubuntu:24.04"

    @classmethod
    def from_settings(cls, settings) -> "SingularityExecutor":
        return cls(SingularityConfig.from_settings(settings))

    def __init__(self, config: SingularityConfig):
        self.config = config

    # Rendering ----------------------------------------------------------------------------

    def render(self, request: ScriptRequest) -> RenderedJob:
        raw = read_facts(request.template)
        facts = job_facts(raw, request.nodes, require_cores=True)
        appdefversion = _appdefversion(raw)
        if facts.interactive and not (self.config.interactive or self.config.proxied):
            raise InvalidRequest(
                "Interactive jobs are not supported on this cluster: its operator has set neither "
                "JARVICE_JOBS_DOMAIN (DSSR's proxy) nor, where users reach the compute nodes' service "
                "ports, DSSR_SINGULARITY_INTERACTIVE.")
        overlay = self.overlay_mb(facts)
        app = self.app_image(raw)
        credentials = app_credentials(raw, app.canonical_registry)
        init = init_image(self.config.system_registry, self.config.system_repo_base,
                          self.config.images_tag, appdefversion, self.config.host_arch,
                          facts.arch)
        log.info("job %s/%s: app image %s (credentials: %s), init image %s, %s",
                 request.name, request.number, app.url, credentials.source, init.url,
                 f"overlay {overlay} MB" if overlay else "writable tmpfs")
        block = self.parameters(app, init, credentials, overlay, raw.get("JARVICE_CMD", ""), gpus=facts.gpus)
        script = render_template(request.template, block)
        return RenderedJob(script=script, facts=facts, success_marker=SUCCESS_MARKER,
                           service_port=self.config.service_port if facts.interactive else None)

    def overlay_mb(self, facts: JobFacts) -> int:
        """The job's ``overlay=`` device, else the setting; 0 means ``--writable-tmpfs``."""
        if facts.overlay_mb is None:
            return self.config.overlay_mb
        if 0 < facts.overlay_mb < MIN_OVERLAY_MB:
            raise InvalidRequest(
                f"The overlay device must be 0 (writable tmpfs) or at least {MIN_OVERLAY_MB} MB, "
                f"not {facts.overlay_mb}: Singularity cannot create a smaller overlay.")
        return facts.overlay_mb

    def app_image(self, raw: dict[str, str]) -> ImageRef:
        """JOBOBJ_REPO, or its copy in the local registry (caching mode), or via the proxy."""
        if not raw.get("JOBOBJ_REPO", "").strip():
            raise InvalidRequest("The script does not set JOBOBJ_REPO (the app image).")
        repo = ImageRef.parse(raw["JOBOBJ_REPO"], "JOBOBJ_REPO")
        config = self.config
        if config.local_registry:
            nae = raw.get("JOBOBJ_NAE", "").strip()
            if not nae:
                raise InvalidRequest("The script does not set JOBOBJ_NAE (the app id), which "
                                     "caching mode (JARVICE_LOCAL_REGISTRY) needs.")
            if not is_path_component(nae):
                raise InvalidRequest("JOBOBJ_NAE must be an app id of lower-case letters, digits "
                                     f"and . _ -, not {nae[:60]!r}.")
            return ImageRef(config.local_registry, f"{config.local_repo_base}/{nae}", "latest")
        if config.proxy_port and in_proxy_repos(repo, config.proxy_repos):
            return attrs.evolve(repo, registry=f"localhost:{config.proxy_port}", path=repo.hub_path)
        return repo

    def parameters(self, app: ImageRef, init: ImageRef, credentials: Credentials,
                   overlay: int, command: str, gpus: int = 0) -> str:
        """The export block: exactly the Singularity block of the legacy API, then JARVICE's
        container rules (a GPU job, ``gpus`` > 0, runs with ``--nv`` too)."""
        config = self.config
        username, password = credentials.exports()
        before = export_lines({
            "JARVICE_JOB_SCRATCH_DIR": config.scratch_dir,
            "JARVICE_JOB_GLOBAL_SCRATCH_DIR": config.global_scratch_dir,
            "JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES":
                str(app.canonical_registry in config.global_registries),
            "SINGULARITYENV_JARVICE_SERVICE_PORT": config.service_port,
            "SINGULARITYENV_JARVICE_SSH_PORT": config.ssh_port,
            "JARVICE_SINGULARITY_TMPDIR": config.tmpdir,
        })
        after = export_lines({
            "JARVICE_SINGULARITY_OVERLAY_SIZE": overlay,
            "JARVICE_INIT_DOCKER_USERNAME": b64(config.init_username),
            "JARVICE_INIT_DOCKER_PASSWORD": b64(config.init_password),
            "JARVICE_DOCKER_USERNAME": username,
            "JARVICE_DOCKER_PASSWORD": password,
            "JARVICE_APP_IMAGE": app.url,
            "JARVICE_INIT_IMAGE": init.url,
            "JARVICE_CMD": command,
            "SV": "true" if config.verbose else "false",
            "SV_FLAG": "-v" if config.verbose else "-s",
            "SCHTTP_PROXY": config.http_proxy,
            "SCHTTPS_PROXY": config.https_proxy,
            "SCNO_PROXY": config.no_proxy,
        })
        return (f"# --- DSSR singularity executor parameters ---\n{before}\n"
                f'export JOB_LOCAL_USER="$USER"\n{after}\n{container_rules(gpus)}'
                "# --- end of DSSR singularity executor parameters ---")

    def redact(self, script: str) -> str:
        """Remove the credential lines, and hide a proxy's user:password@ if it has one."""
        lines = super().redact(script).splitlines(keepends=True)
        return "".join(_masked_url(line) if _PROXY_LINE.match(line) else line for line in lines)

    # Manual submission ----------------------------------------------------------------------

    @classmethod
    def template_for(cls, command: str, *, image: str | None = None, cores: int = 1) -> str:
        """An upstream-like JARVICE app job that runs ``command`` in ``image``."""
        if not command.strip() or any(ch in command for ch in "\n\r\0"):
            raise InvalidRequest("--command must be one non-empty line; join commands with ';' "
                                 "or '&&'.")
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise InvalidRequest(f"cores must be a whole number of at least 1, not {cores!r}.")
        repo = ImageRef.parse(image or cls.default_image, "--image")
        return job_template({
            "JOBOBJ_APPDEFVERSION": 2,
            "JOBOBJ_INTERACTIVE": "False",
            "JOBOBJ_REPO": repo,
            "JARVICE_CPU_CORES": cores,
            "JARVICE_CMD": command,
        })

    # Init report ---------------------------------------------------------------------------

    def report(self) -> list[tuple[str, str]]:
        config = self.config
        if config.local_registry:
            apps = f"caching mode: {config.local_registry}/{config.local_repo_base}/<app>:latest"
        elif config.proxy_port and config.proxy_repos:
            apps = (f"JOBOBJ_REPO, through localhost:{config.proxy_port} for "
                    f"{', '.join(config.proxy_repos)}")
        else:
            apps = "JOBOBJ_REPO (remote mode)"
        base = f"{config.system_repo_base}/" if config.system_repo_base else ""
        return [
            ("init image", f"docker://{config.system_registry}/{base}initv<N>:{config.images_tag}"),
            ("init image credentials", "set" if config.init_username else "not set"),
            ("app images", apps),
            ("global registries", ", ".join(sorted(config.global_registries)) or "none"),
            ("job scratch dir", config.scratch_dir or "(the job's home directory)"),
            ("global scratch dir", config.global_scratch_dir or "none"),
            ("singularity tmp dir", config.tmpdir),
            ("overlay", f"{config.overlay_mb} MB" if config.overlay_mb else "writable tmpfs"),
            ("verbose", "yes" if config.verbose else "no"),
            ("interactive jobs", f"accepted (service port {config.service_port}, ssh port "
                                 f"{config.ssh_port}; {'proxied' if config.proxied else 'direct'})"
                                 if config.interactive or config.proxied else "refused"),
            ("http proxy", _masked_url(config.http_proxy) or "none"),
            ("https proxy", _masked_url(config.https_proxy) or "none"),
            ("no proxy", config.no_proxy or "none"),
        ]


def container_rules(gpus: int) -> str:
    """JARVICE's container rules (the chart's SlurmScheduler.md), run before upstream's own lines:
    the user's ``$HOME/.jarvice_custom_env``; ``$HOME/.jarvice_cuda_env``, and ``--nv`` with it or
    for a GPU job, given through the environment (Apptainer reads APPTAINER_NV, SingularityCE
    SINGULARITY_NV) so that upstream's ``singularity`` command lines stay as they are."""
    return (
        "# JARVICE: the user's environment, and the GPU one with --nv (APPTAINER_NV, SINGULARITY_NV);\n"
        "# $HOME from the user database when the job has none (slurmrestd passes only PATH)\n"
        'jarvice_home="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"\n'
        f"jarvice_nv={'1' if gpus > 0 else ''}\n"
        "# shellcheck source=/dev/null\n"
        'if [ -f "$jarvice_home/.jarvice_custom_env" ]; then . "$jarvice_home/.jarvice_custom_env"; fi\n'
        "# shellcheck source=/dev/null\n"
        'if [ -f "$jarvice_home/.jarvice_cuda_env" ]; then . "$jarvice_home/.jarvice_cuda_env"; '
        "jarvice_nv=1; fi\n"
        'if [ -n "$jarvice_nv" ]; then export APPTAINER_NV=1 SINGULARITY_NV=1; fi\n'
    )


def _appdefversion(raw: dict[str, str]) -> int:
    text = raw.get("JOBOBJ_APPDEFVERSION", "").strip()
    if not text:
        raise InvalidRequest("The script does not set JOBOBJ_APPDEFVERSION; this downstream needs "
                             f"app definitions of version {MIN_APPDEFVERSION} or later.")
    try:
        version = int(text)
    except ValueError:
        raise InvalidRequest(f"JOBOBJ_APPDEFVERSION must be a whole number, not {text!r}.") from None
    if version < MIN_APPDEFVERSION:
        raise InvalidRequest(f"JOBOBJ_APPDEFVERSION is {version}; this downstream needs app "
                             f"definitions of version {MIN_APPDEFVERSION} or later.")
    return version


def job_template(facts: Mapping[str, object]) -> str:
    """An upstream-like JARVICE app job template: ``facts``, the parameters field, ``job.sh``.

    The facts sit in a quoted here-document, so that bash never interprets them, each value
    in the one layer of double quotes that ``read_facts`` removes: the executor reads back
    exactly what was written. Values must be one line. ``job_cores`` tells the body the
    cores per node. Literal braces are doubled, as in any template.
    """
    lines = []
    for key, value in facts.items():
        if any(ch in str(value) for ch in "\n\r\0"):
            raise InvalidRequest(f"{key} must be one line.")
        lines.append(f'{key}="{value}"')
    header = (
        "#!/bin/bash\n"
        "# An upstream-like JARVICE app job, written by dssr_singularity.\n"
        "# The facts are for the executor; bash skips them.\n"
        ": <<'JARVICE_FACTS'\n" + "\n".join(lines) + "\nJARVICE_FACTS\n"
    )
    cores = shlex.quote(str(facts.get("JARVICE_CPU_CORES", 1)))
    body = f"job_cores={cores}\n" + _job_body()
    return escape_braces(header) + f"{{{PARAMETERS_FIELD}}}\n" + escape_braces(body)


def _job_body() -> str:
    return importlib.resources.files(__package__).joinpath("job.sh").read_text(encoding="utf-8")
