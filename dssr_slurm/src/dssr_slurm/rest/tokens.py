"""Tokens for slurmrestd: who a request acts as and the JWT that proves it.

Three modes (``JARVICE_SLURMRESTD_TOKEN_MODE``):

- ``mint``: DSSR holds the cluster's HS256 key (``JARVICE_SLURMRESTD_JWT_KEY_FILE``) and mints a
  short-lived token per cluster user (claims ``iat``, ``exp``, ``sun``), cached until shortly
  before it expires.
- ``bearer``: upstream's bearer is passed on for the submission, for sites whose slurmrestd
  trusts the portal's identity provider; it is remembered (in memory) for later operations on
  the user's jobs while it is valid. Reads, and operations without a valid bearer, use the
  service token as the service account. Without a named mode, service tokens from Keycloak
  (and no key file, no static token) mean this mode: JARVICE's way.
- ``static``: one service token for everything; acting for a mapped user needs a token that may
  do so (SlurmUser's). Without a named mode, a static service token and no key file mean this
  mode.

The service token is static (``JARVICE_SLURMRESTD_TOKEN``, the chart's
``JARVICE_SLURM_SA_TOKEN``, or ``SLURM_JWT``) or, when none is set, fetched from Keycloak with the
client credentials grant (:mod:`dssr_slurm.rest.keycloak`).

A token never reaches a log line, an error message or a ``repr``.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import jwt

from dssr_core import metrics
from dssr_core.errors import ConnectorError, SettingsError

log = logging.getLogger(__name__)

USER_HEADER = "X-SLURM-USER-NAME"
TOKEN_HEADER = "X-SLURM-USER-TOKEN"  # noqa: S105 - a header name, not a secret
STATIC_TOKEN_SETTING = "JARVICE_SLURMRESTD_TOKEN"  # noqa: S105 - the name, as messages show it


class TokenRefused(ConnectorError):
    """A token expired or was refused (HTTP 500). The message names the mode, never the token."""


@attrs.frozen
class Credentials:
    """The user a request acts as and its token. ``renew`` gives new credentials when slurmrestd
    refuses these (a service token from Keycloak); None when asking again would not help."""

    user: str
    token: str = attrs.field(repr=False)
    renew: Callable[[], "Credentials"] | None = attrs.field(default=None, repr=False, eq=False)

    def headers(self) -> dict[str, str]:
        return {USER_HEADER: self.user, TOKEN_HEADER: self.token}


class TokenSource:
    """Gives the credentials for a cluster user. Subclasses set ``mode`` and the texts of
    :meth:`describe` and :meth:`hint`, which may name the source's attributes (``{self.name}``)."""

    mode = "none"
    #: What it sends, for the report (after the mode).
    summary = ""
    #: What was sent, and what to check when Slurm refuses it.
    sent = ""
    checks = ""

    def __init__(self, service_user: str):
        self.service_user = service_user

    def credentials(self, user: str, bearer: str | None = None) -> Credentials:
        raise NotImplementedError

    def service(self) -> Credentials:
        """The credentials of the service account, for reads."""
        return self.credentials(self.service_user)

    def describe(self) -> str:
        return f"{self.mode} ({self.summary.format(self=self)})"

    def hint(self) -> str:
        """What to check when Slurm refuses this mode's tokens, as a sentence."""
        return f"{self.sent.format(self=self)}: check that {self.checks}"


class MintedTokens(TokenSource):
    """HS256 tokens minted with the cluster's key, one per user, cached until near expiry."""

    mode = "mint"
    summary = "HS256 with the key in {self.key_file}, tokens valid {self.lifespan} s"
    sent = "the token was minted with the key in {self.key_file} (JARVICE_SLURMRESTD_JWT_KEY_FILE)"
    checks = ("it is the key of AuthAltParameters=jwt_key in slurm.conf, that the clocks of DSSR and the "
              "controller agree and that the user exists on the controller")

    def __init__(self, key_file: str, service_user: str, lifespan: int = 600, clock=time.time):
        super().__init__(service_user)
        self.key_file = key_file
        self.lifespan = lifespan
        self._key = read_key(key_file)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}
        self.minted = 0

    @property
    def margin(self) -> float:
        """A token is renewed this many seconds before it expires."""
        return min(60.0, self.lifespan / 4)

    def credentials(self, user: str, bearer: str | None = None) -> Credentials:
        now = self._clock()
        with self._lock:
            token, expires = self._cache.get(user, ("", 0.0))
            if expires - now <= self.margin:
                metrics.TOKEN_FETCHES.labels("refresh" if token else "fetch").inc()
                token, expires = self._mint(user, now)
                self._cache[user] = (token, expires)
        return Credentials(user, token)

    def _mint(self, user: str, now: float) -> tuple[str, float]:
        issued = int(now)
        expires = issued + self.lifespan
        token = jwt.encode({"iat": issued, "exp": expires, "sun": user}, self._key, algorithm="HS256")
        self.minted += 1
        log.debug("minted a slurmrestd token for %s, valid %d s", user, self.lifespan)
        return token, float(expires)


class StaticToken(TokenSource):
    """One service token for every request; the user header names who it acts for."""

    mode = "static"
    summary = "{self.source_text} for {self.service_user}{self.validity}"
    sent = "{self.source_text} was sent"
    checks = ("it is still valid and that it may act for the job's user (a token of SlurmUser may; an "
              "ordinary user's token acts only for that user)")

    def __init__(self, token: str, service_user: str | None = None, clock=time.time,
                 setting: str = STATIC_TOKEN_SETTING):
        self._token = token
        self._clock = clock
        #: The spelling the token was given as, for messages.
        self.setting = setting
        self.expires_at = token_expiry(token)
        super().__init__(service_user or token_user(token) or "")
        if not self.service_user:
            raise SettingsError(f"Set JARVICE_SLURMRESTD_USER: the token of {setting} names no "
                                "user (no sun claim).")

    @property
    def source_text(self) -> str:
        """Where the service token comes from, for the report and messages."""
        return f"the service token of {self.setting}"

    def credentials(self, user: str, bearer: str | None = None) -> Credentials:
        self.check_not_expired()
        return Credentials(user, self._token)

    def check_not_expired(self) -> None:
        if self.expires_at is not None and self.expires_at <= self._clock():
            raise TokenRefused(
                f"The slurmrestd service token (token mode {self.mode}, {self.setting}) expired at "
                f"{_when(self.expires_at)}; issue a new one (scontrol token username={self.service_user} "
                "lifespan=...) and restart DSSR.")

    @property
    def validity(self) -> str:
        return f", valid until {_when(self.expires_at)}" if self.expires_at is not None else ""


class PassedBearers(TokenSource):
    """Upstream's bearer for submissions, remembered per user; the service token otherwise."""

    mode = "bearer"
    summary = ("upstream's bearer for submissions; reads as {self.service_user} with "
               "{self._service_token.source_text}")
    sent = "upstream's bearer (or the service token, for reads) was sent"
    checks = ("Slurm trusts the portal's identity provider (AuthAltParameters=jwks=...) and that the token "
              "has not expired")

    def __init__(self, service_token: TokenSource, clock=time.time):
        super().__init__(service_token.service_user)
        self._service_token = service_token
        self._clock = clock
        self._lock = threading.Lock()
        self._bearers: dict[str, tuple[str, float | None]] = {}

    def credentials(self, user: str, bearer: str | None = None) -> Credentials:
        if bearer:
            return self._given(user, bearer)
        with self._lock:
            token, expires = self._bearers.get(user, ("", None))
        if token and (expires is None or expires - self._clock() > 5):
            return Credentials(user, token)
        if user != self.service_user:
            log.info("no valid bearer of %s is known; acting as the service account %s",
                     user, self.service_user)
        return self._service_token.credentials(self.service_user)

    def _given(self, user: str, bearer: str) -> Credentials:
        token = bearer.removeprefix("Bearer ").strip()
        expires = token_expiry(token)
        if expires is not None and expires <= self._clock():
            raise TokenRefused(f"Upstream's bearer for {user} expired at {_when(expires)} "
                               "(token mode bearer); the portal must send a fresh one.")
        with self._lock:
            self._bearers[user] = (token, expires)
        return Credentials(user, token)


def token_source(rest) -> TokenSource:
    """The token source the settings ask for (``rest`` is :class:`RestSettings`)."""
    if rest.token_mode == "mint":
        if not rest.service_user:
            raise SettingsError("Set JARVICE_SLURMRESTD_USER (or JARVICE_SLURM_SSH_USER): the service "
                                "account that reads the job list in token mode mint.")
        return MintedTokens(rest.jwt_key_file, rest.service_user, rest.token_lifespan)
    service = service_token(rest)
    if rest.token_mode == "static":
        return service
    return PassedBearers(service)


def service_token(rest) -> TokenSource:
    """The static service token when one is set, else Keycloak's."""
    if rest.static_token:
        return StaticToken(rest.static_token, rest.service_user, setting=rest.token_setting)
    from dssr_slurm.rest.keycloak import ClientCredentials, KeycloakToken  # it builds on this module

    return KeycloakToken(ClientCredentials(rest.token_url, rest.client_id, rest.client_secret),
                         rest.service_user)


def read_key(path: str) -> bytes:
    """The raw bytes of the HS256 key file (Slurm signs with the file's bytes as they are)."""
    try:
        with open(path, "rb") as handle:
            key = handle.read()
    except OSError as error:
        raise SettingsError(
            f"JARVICE_SLURMRESTD_JWT_KEY_FILE {path} cannot be read: {error.strerror}.") from None
    if len(key) < 16:
        raise SettingsError(f"JARVICE_SLURMRESTD_JWT_KEY_FILE {path} is too short to be Slurm's JWT key.")
    return key


def _claims(token: str) -> dict:
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified), or None."""
    value = _claims(token).get("exp")
    return float(value) if isinstance(value, int | float) else None


def token_user(token: str) -> str | None:
    """The ``sun`` (Slurm user name) claim of a JWT (not verified), or None."""
    value = _claims(token).get("sun")
    return value if isinstance(value, str) and value else None


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
