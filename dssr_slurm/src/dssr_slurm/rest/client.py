"""HTTP to slurmrestd: one ``requests`` session, a bounded pool, a timeout on every call.

Reads (GET) are retried with backoff when the connection fails, times out or slurmrestd
answers 502/503/504; POST and DELETE are never sent twice (urllib3 retries them only when the
connection could not even be opened, so nothing was sent), but for one case: slurmrestd refused the
token (so it did nothing) and the credentials can be renewed (a service token from Keycloak): the
request is sent once more with a fresh token. The pool is small and blocking:
slurmrestd runs out of connections when clients keep many alive. A failure to reach
slurmrestd is :class:`ClusterUnavailable`, never an empty answer.
"""

import http.cookiejar
import json
import logging
import threading
from collections.abc import Callable

import attrs
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dssr_core.errors import ClusterUnavailable
from dssr_slurm.rest.tokens import Credentials

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
#: slurmrestd's words for a refused token: "Protocol authentication error", and the auth plugins' 6000s.
AUTHENTICATION_ERRORS = frozenset({1007})


@attrs.frozen
class Answer:
    """slurmrestd's answer: the HTTP status and the JSON body (``{}`` when it sent none)."""

    status: int
    body: dict
    text: str = ""

    @property
    def errors(self) -> list[dict]:
        errors = self.body.get("errors")
        return [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []

    @property
    def warnings(self) -> list[dict]:
        warnings = self.body.get("warnings")
        return [item for item in warnings if isinstance(item, dict)] if isinstance(warnings, list) else []

    @property
    def ok(self) -> bool:
        return self.status < 400 and not self.errors

    @property
    def token_refused(self) -> bool:
        """Whether slurmrestd (or Slurm behind it) refused the token, so nothing was done."""
        numbers = {error.get("error_number", error.get("error_code")) for error in self.errors}
        return (self.status in (401, 403) or bool(numbers & AUTHENTICATION_ERRORS)
                or any(isinstance(n, int) and 6000 <= n < 7000 for n in numbers))

    @classmethod
    def from_response(cls, response: requests.Response) -> "Answer":
        try:
            body = response.json()
        except ValueError:
            body = None
        text = "" if isinstance(body, dict) else response.text[:500]
        return cls(response.status_code, body if isinstance(body, dict) else {}, text)


class RestClient:
    """Sends requests to slurmrestd at ``base_url`` and counts them (for benchmarks)."""

    def __init__(self, base_url: str, *, connect_timeout: float = 5.0, timeout: float = 30.0,
                 retries: int = 2, pool_size: int = 4, label: str | None = None,
                 transport_failure: Callable[[], str | None] | None = None):
        self.base_url = base_url.rstrip("/")
        self.label = label or self.base_url  # how messages name slurmrestd
        self.transport_failure = transport_failure  # why the way to slurmrestd (a tunnel) failed, if known
        self.timeout = (connect_timeout, timeout)
        self.session = _session(retries, pool_size)
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def calls(self) -> int:
        """How many requests were made (a retried read counts once)."""
        return self._calls

    def get(self, path: str, credentials: Credentials, what: str) -> Answer:
        return self.request("GET", path, credentials, what)

    def post(self, path: str, credentials: Credentials, what: str, body: dict) -> Answer:
        return self.request("POST", path, credentials, what, body)

    def delete(self, path: str, credentials: Credentials, what: str) -> Answer:
        return self.request("DELETE", path, credentials, what)

    def request(self, method: str, path: str, credentials: Credentials, what: str,
                body: dict | None = None) -> Answer:
        """One request; ClusterUnavailable when slurmrestd cannot be reached or is too slow. A refused
        token is renewed and the request sent once more when the credentials can be renewed."""
        answer = self._send(method, path, credentials, what, body)
        if credentials.renew is not None and answer.token_refused:
            answer = self._send(method, path, credentials.renew(), what, body)
        return answer

    def _send(self, method: str, path: str, credentials: Credentials, what: str, body: dict | None) -> Answer:
        with self._lock:
            self._calls += 1
        headers = credentials.headers()
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        try:
            response = self.session.request(method, self.base_url + path, headers=headers, data=data,
                                            timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as error:
            if isinstance(error, requests.Timeout) or "timed out" in str(error).lower():
                raise ClusterUnavailable(f"slurmrestd at {self.label} did not answer in time "
                                         f"({self.timeout[1]:g} s) while {what}.") from None
            tunnel_failure = self.transport_failure() if self.transport_failure else None
            reason = (f"the SSH tunnel failed: {tunnel_failure}" if tunnel_failure
                      else f"{_connection_failure(error)}.")
            raise ClusterUnavailable(
                f"Cannot reach slurmrestd at {self.label} while {what}: {reason}") from None
        answer = Answer.from_response(response)
        log.debug("slurmrestd %s %s -> %d", method, path, answer.status)
        return answer

    def close(self) -> None:
        self.session.close()


def _session(retries: int, pool_size: int) -> requests.Session:
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))  # no cookie state
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                  backoff_factor=0.2, allowed_methods=frozenset({"GET"}), status_forcelist=RETRY_STATUSES,
                  raise_on_status=False, respect_retry_after_header=False)
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, pool_block=True, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _connection_failure(error: requests.RequestException) -> str:
    """Why requests could not connect, in a few words.

    Unlike :func:`dssr_core.remote.ssh.error_reason` (which reads the socket's own error), this reads
    words: requests wraps the socket's error in urllib3's text (the pool, the URL, nested
    reprs), which is never shown whole.
    """
    text = str(error).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "name resolution" in text:
        return "unknown host name"
    if "reset" in text or "remotedisconnected" in text or "aborted" in text:
        return "slurmrestd closed the connection"
    return "the connection failed"
