"""Settings of the ``slurmrestd`` connector, read once and checked at start.

Every name and default is in ``docs/slurmrestd.md``. No value here is ever logged whole:
the token and the key file's content stay in :mod:`dssr_slurm.rest.tokens`.
"""

import re

import attrs

from dssr_core.errors import SettingsError

DEFAULT_PORT = 6820
DEFAULT_JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
TOKEN_MODES = ("mint", "bearer", "static")
OUTPUT_ACCESS = ("none", "ssh", "shared")
_VERSION = re.compile(r"^v?(0\.0\.\d{2})$")


@attrs.frozen
class RestSettings:
    """Where slurmrestd is, how to talk to it and how tokens are made."""

    address: str
    port: int = DEFAULT_PORT
    scheme: str = "http"
    api_version: str | None = None
    token_mode: str = "mint"
    jwt_key_file: str | None = None
    static_token: str | None = attrs.field(default=None, repr=False)
    service_user: str | None = None
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
        address = settings.get("JARVICE_SLURMRESTD_ADDR")
        if not address:
            raise SettingsError("JARVICE_SLURMRESTD_ADDR must be set for the slurmrestd connector "
                                "(the host where slurmrestd listens).")
        token_mode = _choice(settings, "JARVICE_SLURMRESTD_TOKEN_MODE", "mint", TOKEN_MODES)
        static_token = _token(settings.get("JARVICE_SLURMRESTD_TOKEN", legacy=("SLURM_JWT",)))
        rest = cls(
            address=address,
            port=settings.get_int("JARVICE_SLURMRESTD_PORT", DEFAULT_PORT, minimum=1, maximum=65535),
            scheme=_choice(settings, "JARVICE_SLURMRESTD_SCHEME", "http", ("http", "https")),
            api_version=api_version(settings.get("JARVICE_SLURMRESTD_API_VERSION")),
            token_mode=token_mode,
            jwt_key_file=settings.get("JARVICE_SLURMRESTD_JWT_KEY_FILE"),
            static_token=static_token,
            service_user=settings.get("JARVICE_SLURMRESTD_USER", legacy=("JARVICE_SLURM_SSH_USER",)),
            token_lifespan=settings.get_int("JARVICE_SLURMRESTD_TOKEN_LIFESPAN", 600, minimum=60,
                                            maximum=86400),
            job_path=settings.get("JARVICE_SLURMRESTD_JOB_PATH", DEFAULT_JOB_PATH),
            connect_timeout=settings.get_float("JARVICE_SLURMRESTD_CONNECT_TIMEOUT", 5.0, minimum=0.1),
            timeout=settings.get_float("JARVICE_SLURMRESTD_TIMEOUT", 30.0, minimum=0.1),
            retries=settings.get_int("JARVICE_SLURMRESTD_RETRIES", 2, minimum=0, maximum=10),
            pool_size=settings.get_int("JARVICE_SLURMRESTD_POOL_SIZE", 4, minimum=1, maximum=64),
            tunnel=settings.get_bool("JARVICE_SLURMRESTD_SSH_TUNNEL", False),
            output_access=_choice(settings, "JARVICE_SLURMRESTD_OUTPUT_ACCESS", "none", OUTPUT_ACCESS),
            shared_scratch_dir=settings.get("JARVICE_SLURMRESTD_SHARED_SCRATCH_DIR"),
        )
        rest.check()
        return rest

    def check(self) -> None:
        """The combinations that cannot work, each refused with one sentence."""
        if self.token_mode == "mint" and not self.jwt_key_file:
            raise SettingsError("JARVICE_SLURMRESTD_TOKEN_MODE=mint needs JARVICE_SLURMRESTD_JWT_KEY_FILE "
                                "(the HS256 key of AuthAltParameters=jwt_key=... in slurm.conf).")
        if self.token_mode in ("bearer", "static") and not self.static_token:
            raise SettingsError(f"JARVICE_SLURMRESTD_TOKEN_MODE={self.token_mode} needs a service token in "
                                "JARVICE_SLURMRESTD_TOKEN (or SLURM_JWT) for reading the job list.")
        if any(char in self.job_path for char in "\n\0="):
            raise SettingsError("JARVICE_SLURMRESTD_JOB_PATH must be a PATH value "
                                "(directories joined by ':').")

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}"


def api_version(text: str | None) -> str | None:
    """``v0.0.40``, ``0.0.40`` -> ``v0.0.40``; None stays None; anything else is refused."""
    if text is None:
        return None
    match = _VERSION.match(text.strip())
    if match is None:
        raise SettingsError(f"JARVICE_SLURMRESTD_API_VERSION must look like v0.0.38, not {text!r}.")
    return "v" + match.group(1)


def _choice(settings, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (settings.get(name) or default).lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def _token(text: str | None) -> str | None:
    """A token as pasted from ``scontrol token`` (``SLURM_JWT=...``) or bare."""
    if text is None:
        return None
    return text.strip().removeprefix("SLURM_JWT=").strip() or None
