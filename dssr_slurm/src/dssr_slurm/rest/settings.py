"""Settings of the ``slurmrestd`` connector, declared here, read once and checked at start.

No value here is ever logged whole: the token and the key file's content stay in
:mod:`dssr_slurm.rest.tokens`.
"""

import logging
import re
import urllib.parse

import attrs

from dssr_core.bearer import KEYCLOAK_TOKEN_URL, check_url
from dssr_core.errors import SettingsError
from dssr_core.settings import Setting

log = logging.getLogger(__name__)

DEFAULT_PORT = 6820
DEFAULT_JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
TOKEN_MODES = ("mint", "bearer", "static")
OUTPUT_ACCESS_MODES = ("none", "ssh", "shared")
_VERSION = re.compile(r"^v?(0\.0\.\d{2})$")
AUTO = "auto"
DEFAULT_CLIENT_ID = "nimbix-slurm-sched-client"
DEFAULT_USERNAME_CLAIM = "preferred_username"
_URL_EXAMPLE = "http://slurm-login:6820"

URL = Setting(
    "JARVICE_SLURMRESTD_URL", f"slurmrestd's scheme, host and port in one (`{_URL_EXAMPLE}`; without a port, "
    "80 or 443), as the chart sets it; wins over the three settings below")
ADDR = Setting("JARVICE_SLURMRESTD_ADDR", "slurmrestd's host (as DSSR sees it, or as the login node sees it "
               "with the tunnel)", default_text="required, unless `JARVICE_SLURMRESTD_URL` is set")
PORT = Setting("JARVICE_SLURMRESTD_PORT", "its port", kind="int", default=DEFAULT_PORT, minimum=1,
               maximum=65535)
SCHEME = Setting("JARVICE_SLURMRESTD_SCHEME", "`https` behind a TLS proxy", kind="choice",
                 choices=("http", "https"), default="http")
API_VERSION = Setting(
    "JARVICE_SLURMRESTD_API_VERSION", "the API version (data parser): `auto`, the newest that slurmrestd "
    "advertises in `/openapi.json` (else the newest that answers ping), or one pinned (`v0.0.38`, ...)",
    default=AUTO, legacy=("JARVICE_SLURM_DATA_PARSER_VERSION",))
TOKEN_MODE = Setting(
    "JARVICE_SLURMRESTD_TOKEN_MODE", "how requests get their token (see Tokens)", kind="choice",
    choices=TOKEN_MODES,
    default_text="`mint` with `JARVICE_SLURMRESTD_JWT_KEY_FILE`, else `static` with a service token")
JWT_KEY_FILE = Setting("JARVICE_SLURMRESTD_JWT_KEY_FILE", "the cluster's HS256 key file "
                       "(`AuthAltParameters=jwt_key=`)", kind="path", default_text="required in mode `mint`")
TOKEN_LIFESPAN = Setting("JARVICE_SLURMRESTD_TOKEN_LIFESPAN", "seconds a minted token is valid", kind="int",
                         default=600, minimum=60, maximum=86400)
TOKEN = Setting("JARVICE_SLURMRESTD_TOKEN", "the service token (the chart's `JARVICE_SLURM_SA_TOKEN`; "
                "`scontrol token` output is taken as printed)", secret=True,
                default_text="required in modes `bearer` and `static`",
                legacy=("JARVICE_SLURM_SA_TOKEN", "SLURM_JWT"))
USER = Setting("JARVICE_SLURMRESTD_USER", "the service account that reads the job list",
               default_text="the service token's `sun`", legacy=("JARVICE_SLURM_SSH_USER",))
KEYCLOAK_CLIENT_ID = Setting(
    "JARVICE_KEYCLOAK_CLIENT_ID", "the client whose service tokens DSSR fetches from "
    "`JARVICE_KEYCLOAK_TOKEN_URL` (client credentials grant) when no static service token is set",
    default=DEFAULT_CLIENT_ID)
KEYCLOAK_CLIENT_SECRET = Setting("JARVICE_KEYCLOAK_CLIENT_SECRET", "that client's secret", secret=True,
                                 default_text="required for service tokens from Keycloak")
USERNAME_CLAIM = Setting(
    "JARVICE_SLURM_USERNAME_CLAIM", "without a users ID mapping, the claim of upstream's bearer that holds "
    "the cluster user name (Slurm must read the same claim: `userclaimfield=`, else `sun`)",
    default=DEFAULT_USERNAME_CLAIM)
JOB_PATH = Setting("JARVICE_SLURMRESTD_JOB_PATH", "the `PATH` jobs get (slurmrestd sends no other "
                   "environment)", default=DEFAULT_JOB_PATH)
CONNECT_TIMEOUT = Setting("JARVICE_SLURMRESTD_CONNECT_TIMEOUT", "seconds to connect to slurmrestd",
                          kind="float", default=5.0, minimum=0.1)
TIMEOUT = Setting("JARVICE_SLURMRESTD_TIMEOUT", "seconds to wait for an answer (22.05 takes 9 to 18 s to "
                  "report a dead controller)", kind="float", default=30.0, minimum=0.1)
RETRIES = Setting("JARVICE_SLURMRESTD_RETRIES", "retries of a read (GET)", kind="int", default=2, minimum=0,
                  maximum=10)
POOL_SIZE = Setting("JARVICE_SLURMRESTD_POOL_SIZE", "HTTP connections kept to slurmrestd", kind="int",
                    default=4, minimum=1, maximum=64)
SSH_TUNNEL = Setting("JARVICE_SLURMRESTD_SSH_TUNNEL", "reach slurmrestd through an SSH tunnel to the login "
                     "node", kind="bool", default=False)
OUTPUT_ACCESS = Setting("JARVICE_SLURMRESTD_OUTPUT_ACCESS", "how job output is read", kind="choice",
                        choices=OUTPUT_ACCESS_MODES, default="none")
SHARED_SCRATCH_DIR = Setting("JARVICE_SLURMRESTD_SHARED_SCRATCH_DIR", "where DSSR's host sees the scratch "
                             "directory (`shared`)", kind="directory",
                             default_text="`JARVICE_JOB_SCRATCH_DIR`")
SETTINGS = (URL, ADDR, PORT, SCHEME, API_VERSION, TOKEN_MODE, JWT_KEY_FILE, TOKEN_LIFESPAN, TOKEN, USER,
            KEYCLOAK_CLIENT_ID, KEYCLOAK_CLIENT_SECRET, USERNAME_CLAIM, JOB_PATH, CONNECT_TIMEOUT, TIMEOUT,
            RETRIES, POOL_SIZE, SSH_TUNNEL, OUTPUT_ACCESS, SHARED_SCRATCH_DIR)


@attrs.frozen
class RestSettings:
    """Where slurmrestd is, how to talk to it and how tokens are made.

    ``token_setting`` and ``api_version_setting`` are the spellings those were given as, for
    messages. ``token_url`` (Keycloak's), ``client_id`` and ``client_secret`` fetch service
    tokens when no static one is given.
    """

    address: str
    port: int = DEFAULT_PORT
    scheme: str = "http"
    api_version: str | None = None
    api_version_setting: str = API_VERSION.name
    token_mode: str = "mint"
    jwt_key_file: str | None = None
    static_token: str | None = attrs.field(default=None, repr=False)
    token_setting: str = TOKEN.name
    service_user: str | None = None
    token_url: str | None = None
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str | None = attrs.field(default=None, repr=False)
    username_claim: str = DEFAULT_USERNAME_CLAIM
    token_lifespan: int = 600
    job_path: str = DEFAULT_JOB_PATH
    connect_timeout: float = 5.0
    timeout: float = 30.0
    retries: int = 2
    pool_size: int = 4
    tunnel: bool = False
    output_access: str = "none"
    shared_scratch_dir: str | None = None

    @classmethod
    def from_settings(cls, settings) -> "RestSettings":
        scheme, address, port = _where(settings)
        static_token = _token(settings.read(TOKEN))
        rest = cls(
            address=address,
            port=port,
            scheme=scheme,
            api_version=api_version(settings.read(API_VERSION), _spelling(settings, API_VERSION)),
            api_version_setting=_spelling(settings, API_VERSION),
            jwt_key_file=settings.read(JWT_KEY_FILE),
            static_token=static_token,
            token_setting=_spelling(settings, TOKEN),
            service_user=settings.read(USER),
            token_url=settings.read(KEYCLOAK_TOKEN_URL),
            client_id=settings.read(KEYCLOAK_CLIENT_ID),
            client_secret=settings.read(KEYCLOAK_CLIENT_SECRET),
            username_claim=settings.read(USERNAME_CLAIM),
            token_lifespan=settings.read(TOKEN_LIFESPAN),
            job_path=settings.read(JOB_PATH),
            connect_timeout=settings.read(CONNECT_TIMEOUT),
            timeout=settings.read(TIMEOUT),
            retries=settings.read(RETRIES),
            pool_size=settings.read(POOL_SIZE),
            tunnel=settings.read(SSH_TUNNEL),
            output_access=settings.read(OUTPUT_ACCESS),
            shared_scratch_dir=settings.read(SHARED_SCRATCH_DIR),
        )
        rest = attrs.evolve(rest, token_mode=_token_mode(settings.read(TOKEN_MODE), rest))
        rest.check()
        return rest

    def check(self) -> None:
        """The combinations that cannot work, each refused with one sentence."""
        if self.token_mode == "mint" and not self.jwt_key_file:
            raise SettingsError("JARVICE_SLURMRESTD_TOKEN_MODE=mint needs JARVICE_SLURMRESTD_JWT_KEY_FILE "
                                "(the HS256 key of AuthAltParameters=jwt_key=... in slurm.conf).")
        if self.token_url and not self.static_token and not self.client_secret and self.token_mode != "mint":
            raise SettingsError("JARVICE_KEYCLOAK_TOKEN_URL is set without JARVICE_KEYCLOAK_CLIENT_SECRET: "
                                f"the secret of the client {self.client_id} (JARVICE_KEYCLOAK_CLIENT_ID) "
                                "that fetches slurmrestd's service tokens.")
        if self.token_mode in ("bearer", "static") and not self.static_token and not self.keycloak:
            raise SettingsError(f"JARVICE_SLURMRESTD_TOKEN_MODE={self.token_mode} needs a service token for "
                                "reading the job list: JARVICE_SLURM_SA_TOKEN (or JARVICE_SLURMRESTD_TOKEN, "
                                "SLURM_JWT), or one from Keycloak (JARVICE_KEYCLOAK_TOKEN_URL with "
                                "JARVICE_KEYCLOAK_CLIENT_SECRET).")
        if self.token_url:
            check_url(self.token_url, KEYCLOAK_TOKEN_URL.name)
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.username_claim):
            raise SettingsError("JARVICE_SLURM_USERNAME_CLAIM must be a claim name such as "
                                "preferred_username or sun.")
        if any(char in self.job_path for char in "\n\0="):
            raise SettingsError("JARVICE_SLURMRESTD_JOB_PATH must be a PATH value "
                                "(directories joined by ':').")

    @property
    def keycloak(self) -> bool:
        """Whether service tokens come from Keycloak: its token URL and secret, no static token."""
        return bool(self.token_url and self.client_secret and not self.static_token)

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}"


def _where(settings) -> tuple[str, str, int]:
    """``(scheme, host, port)``: from ``JARVICE_SLURMRESTD_URL`` when it is set, else the split three."""
    url = settings.read(URL)
    if url is not None:
        ignored = [found.spelling for found in map(settings.found, (ADDR, PORT, SCHEME)) if found]
        if ignored:
            log.warning("JARVICE_SLURMRESTD_URL is set, so %s %s ignored", " and ".join(ignored),
                        "is" if len(ignored) == 1 else "are")
        return parse_url(url)
    address = settings.read(ADDR)
    if not address:
        raise SettingsError(f"Set JARVICE_SLURMRESTD_URL (such as {_URL_EXAMPLE}) or JARVICE_SLURMRESTD_ADDR "
                            "for the slurmrestd connector: where slurmrestd listens.")
    return settings.read(SCHEME), address, settings.read(PORT)


def parse_url(text: str) -> tuple[str, str, int]:
    """``http://slurm-login:6820`` -> ``("http", "slurm-login", 6820)``; refused with a sentence
    when it is not a scheme, a host and a port only. A URL with a user or password is not shown."""
    what = f"JARVICE_SLURMRESTD_URL must be scheme, host and port only, such as {_URL_EXAMPLE}"
    parts = urllib.parse.urlsplit(text)
    if "@" in parts.netloc:
        raise SettingsError(f"{what}: it must not carry a user name or password (value not shown).")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{what}; {text!r} does not start with http:// or https://.")
    if not parts.hostname:
        raise SettingsError(f"{what}; {text!r} names no host.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SettingsError(f"{what}; {text!r} has a path, and DSSR adds the API's paths itself.")
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(f"{what}; the port of {text!r} is not a number from 1 to 65535.") from None
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def _token_mode(named: str | None, rest: RestSettings) -> str:
    """The mode named, else ``mint`` with a key file, else ``static`` with a service token."""
    if named is not None:
        return named
    if rest.jwt_key_file:
        return "mint"
    if rest.static_token:
        return "static"
    if rest.token_url:
        return "bearer"  # as JARVICE runs it: jobs with the portal user's bearer, reads with Keycloak's token
    raise SettingsError("The slurmrestd connector needs a way to authenticate: "
                        "JARVICE_SLURMRESTD_JWT_KEY_FILE (the HS256 key of AuthAltParameters=jwt_key=... in "
                        "slurm.conf; DSSR mints tokens), a service token in JARVICE_SLURM_SA_TOKEN or "
                        "JARVICE_SLURMRESTD_TOKEN, or JARVICE_KEYCLOAK_TOKEN_URL and "
                        "JARVICE_KEYCLOAK_CLIENT_SECRET (service tokens from Keycloak).")


def api_version(text: str | None, spelling: str = API_VERSION.name) -> str | None:
    """``v0.0.40``, ``0.0.40`` -> ``v0.0.40``; None and ``auto`` -> None; anything else is refused."""
    if text is None or text.strip().lower() == AUTO:
        return None
    match = _VERSION.match(text.strip())
    if match is None:
        raise SettingsError(f"{spelling} must be auto or a version such as v0.0.38, not {text!r}.")
    return "v" + match.group(1)


def _spelling(settings, setting: Setting) -> str:
    """The spelling ``setting`` was given as (its name when unset), for messages."""
    return getattr(settings.found(setting), "spelling", setting.name)


def _token(text: str | None) -> str | None:
    """A token as pasted from ``scontrol token`` (``SLURM_JWT=...``) or bare."""
    if text is None:
        return None
    return text.strip().removeprefix("SLURM_JWT=").strip() or None
