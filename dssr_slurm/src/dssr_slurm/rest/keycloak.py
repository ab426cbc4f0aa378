"""slurmrestd's service token from Keycloak (or any OpenID Connect provider), as JARVICE gets it:
the client credentials grant.

DSSR posts ``grant_type=client_credentials`` with its client id and secret to the realm's token
endpoint (``JARVICE_KEYCLOAK_TOKEN_URL``) and uses the access token until a quarter of its
lifespan (at most :data:`MAX_RENEW_MARGIN_S`) before it expires. One fetch at a time: requests that
need a token while one is fetched wait for that fetch and share its token. When slurmrestd
refuses a token, it is fetched again, once (:meth:`ClientCredentials.refresh`).

When the provider cannot be reached, a token that has not expired yet goes on being used; without
one, the request fails with 503 (:class:`ProviderUnavailable`) saying so. Neither the secret nor a
token ever reaches a log line, an error message, a ``repr`` or the init report.
"""

import logging
import threading
import time
from datetime import UTC, datetime

import requests

from dssr_core import metrics
from dssr_core.errors import ConnectorError, ProviderUnavailable, SettingsError
from dssr_slurm.rest.tokens import Credentials, TokenSource, token_expiry, token_user

log = logging.getLogger(__name__)

#: A token is renewed a quarter of its lifespan before it expires, but no earlier than this.
MAX_RENEW_MARGIN_S = 60.0
#: Used when the provider gives neither ``expires_in`` nor an ``exp`` claim.
ASSUMED_LIFESPAN_S = 60.0
TIMEOUT_S = 10.0
#: After a failed fetch, requests get its answer for this long instead of each asking again.
RETRY_AFTER_S = 3.0


class ClientCredentials:
    """Access tokens of one client from one token endpoint, cached until near their expiry."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, *, timeout: float = TIMEOUT_S,
                 clock=time.time):
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._timeout = timeout
        self._clock = clock
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._lifespan = 0.0
        self._retry_at = 0.0
        self.failure = ""  # why the last fetch failed, for the init report
        self.fetched = 0  # how many tokens were fetched (tests, benchmarks)

    def __repr__(self) -> str:
        return f"ClientCredentials({self.token_url!r}, {self.client_id!r})"

    @property
    def expires_at(self) -> float | None:
        return self._expires_at if self._token else None

    @property
    def margin(self) -> float:
        """How long before its expiry a token is renewed."""
        return min(MAX_RENEW_MARGIN_S, self._lifespan / 4)

    def token(self) -> str:
        """A token that is valid for a while yet; fetched when there is none."""
        with self._lock:
            now = self._clock()
            if self._token and now < self._expires_at - self.margin:
                return self._token
            try:
                if now < self._retry_at:
                    raise ProviderUnavailable(self.failure)
                return self._fetch()
            except ProviderUnavailable as error:
                if self._token and now < self._expires_at:
                    log.warning("%s; the current service token stays in use until it expires at %s",
                                error.message, _when(self._expires_at))
                    return self._token
                raise

    def refresh(self, refused: str) -> str:
        """A new token in place of ``refused`` (slurmrestd refused it); one fetch for many callers."""
        with self._lock:
            if self._token and self._token != refused:
                return self._token  # another request has fetched a new one meanwhile
            log.info("slurmrestd refused the service token of %s; fetching a new one", self.client_id)
            return self._fetch()

    def _fetch(self) -> str:
        """Fetch a token (the lock is held), counted as a fetch (the first) or a refresh."""
        kind = "refresh" if self._token else "fetch"
        try:
            token = self._fetch_token()
        except (ProviderUnavailable, ConnectorError):
            metrics.TOKEN_FAILURES.labels(kind).inc()
            raise
        metrics.TOKEN_FETCHES.labels(kind).inc()
        return token

    def _fetch_token(self) -> str:
        """Fetch a token; ProviderUnavailable or ConnectorError with one sentence."""
        asked = self._clock()
        what = f"Keycloak at {self.token_url} did not give DSSR a service token for slurmrestd"
        try:
            form = {"grant_type": "client_credentials", "client_id": self.client_id,
                    "client_secret": self._secret}
            response = self._session.post(self.token_url, data=form, timeout=self._timeout,
                                          allow_redirects=False)
        except requests.RequestException as error:
            raise self._unavailable(f"{what} ({_connection_failure(error)}): the identity provider is not "
                                    "reachable.") from None
        body = _json(response)
        if response.status_code >= 500 or response.status_code == 429:
            raise self._unavailable(f"{what} (HTTP {response.status_code}): the identity provider is not "
                                    "available.")
        token = body.get("access_token")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            self.failure = (f"{what}: it answered HTTP {response.status_code} {self._said(body)}; check "
                            "JARVICE_KEYCLOAK_CLIENT_ID and JARVICE_KEYCLOAK_CLIENT_SECRET.")
            raise ConnectorError(self.failure)
        self._token, self._lifespan = token, _lifespan(body, token, asked)
        self._expires_at = asked + self._lifespan
        self.failure = ""
        self.fetched += 1
        log.info("fetched a service token for slurmrestd from %s (client %s), valid %.0f s", self.token_url,
                 self.client_id, self._lifespan)
        return token

    def _unavailable(self, failure: str) -> ProviderUnavailable:
        self.failure, self._retry_at = failure, self._clock() + RETRY_AFTER_S
        return ProviderUnavailable(failure)

    def _said(self, body: dict) -> str:
        """The provider's own words (``error``, ``error_description``), never the secret."""
        words = " - ".join(str(body[key])[:200] for key in ("error", "error_description") if body.get(key))
        words = words.replace(self._secret, "(hidden)") if self._secret else words
        return f"({words})" if words else "(no error given)"

    def describe(self) -> str:
        where = f"the client {self.client_id} at {self.token_url}"
        if self._token:
            return (f"{where}; the token expires at {_when(self._expires_at)} and is renewed "
                    f"{self.margin:.0f} s before")
        return f"{where}; no token yet ({self.failure or 'not fetched yet'})"


class KeycloakToken(TokenSource):
    """The service token from Keycloak, for every request that is not a submission with a bearer.

    Its credentials carry ``renew``: the HTTP client fetches a new token once when slurmrestd
    refuses the one sent.
    """

    mode = "static"
    summary = "one token for every request: {self.source_text}, for {self.service_user}"
    sent = ("a service token of the client {self.tokens.client_id} from {self.tokens.token_url} was sent, "
            "and a fresh one once more")
    checks = ("Slurm trusts the realm's keys (AuthAltParameters=jwks=...) and that the token names the user "
              "in the claim Slurm reads (sun, or userclaimfield=)")

    def __init__(self, tokens: ClientCredentials, service_user: str | None = None):
        self.tokens = tokens
        super().__init__(service_user or self._user_of_first_token())

    def _user_of_first_token(self) -> str:
        try:
            user = token_user(self.tokens.token())
        except (ProviderUnavailable, ConnectorError) as error:
            raise SettingsError("Set JARVICE_SLURMRESTD_USER (or JARVICE_SLURM_SSH_USER), the service "
                                f"account: DSSR could not read it from a service token "
                                f"({error.message})") from None
        if not user:
            raise SettingsError("Set JARVICE_SLURMRESTD_USER (or JARVICE_SLURM_SSH_USER): the service tokens "
                                f"of {self.tokens.client_id} name no user (no sun claim).")
        return user

    @property
    def source_text(self) -> str:
        """Where the service token comes from, for the report and messages."""
        return f"service tokens from Keycloak ({self.tokens.describe()})"

    def credentials(self, user: str, bearer: str | None = None) -> Credentials:
        token = self.tokens.token()
        return Credentials(user, token, renew=lambda: Credentials(user, self.tokens.refresh(token)))



def _lifespan(body: dict, token: str, asked: float) -> float:
    """Seconds the token is valid, counted from when it was asked for: ``expires_in``, else its ``exp``."""
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    expiry = token_expiry(token)
    if expiry is not None and expiry > asked:
        return expiry - asked
    return ASSUMED_LIFESPAN_S


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _connection_failure(error: requests.RequestException) -> str:
    text = str(error).lower()
    if isinstance(error, requests.Timeout) or "timed out" in text:
        return "no answer in time"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "name resolution" in text:
        return "unknown host name"
    return "the connection failed"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
