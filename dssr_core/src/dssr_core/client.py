"""A small client of the legacy API, for people and shell scripts (``dssr submit`` ...)."""

import base64
import json
import re
from urllib.parse import urlsplit

import requests

from dssr_core.errors import DssrError, InvalidRequest
from dssr_core.numbers import is_digits

_TERMINATION_STATE = re.compile(r"^<< termination state: (\S+)")


class ClientError(DssrError):
    """The server refused the call (``status`` is its HTTP status) or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ServerUnreachable(ClientError):
    """No server answers at the address (nothing listens there, or it does not answer)."""


class Client:
    """Talks to a running DSSR server as upstream does: form field ``args`` holding JSON.

    ``timeout`` is in seconds, or ``(connect, read)`` as :mod:`requests` takes it.
    """

    def __init__(self, server: str, server_key: str | None = None,
                 timeout: float | tuple[float, float] = 30.0):
        self.server = server_url(server)
        if server_key and ":" not in server_key:
            raise InvalidRequest("JARVICE_SCHED_SERVER_KEY must be of the form user:password.")
        self.auth = tuple(server_key.split(":", 1)) if server_key else None
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, args: dict | None = None):
        data = {"args": json.dumps(args)} if args is not None else None
        try:
            response = self.session.request(method, self.server + path, data=data,
                                            auth=self.auth, timeout=self.timeout)
        except requests.ReadTimeout:
            raise ClientError(f"{self.server} did not answer {path} in time.") from None
        except requests.exceptions.SSLError:
            raise ClientError(f"TLS with {self.server} failed: DSSR serves plain http://, so call it "
                              "with http:// unless a TLS proxy stands in front of it.") from None
        except requests.ConnectionError:  # ConnectTimeout included
            raise ServerUnreachable(
                f"Cannot reach {self.server}: no DSSR server answers there. Start one with "
                "`dssr serve`, or give its address with --server or DSSR_SERVER."
            ) from None
        except requests.RequestException as error:
            raise ClientError(f"Cannot reach {self.server}: {type(error).__name__}.") from None
        if response.status_code == 401:
            raise ClientError(f"{self.server} refused the credentials: set "
                              "JARVICE_SCHED_SERVER_KEY to the server's user:password.", 401)
        if response.status_code >= 400:
            raise ClientError(f"{path} answered {response.status_code}: {_description(response)}",
                              response.status_code)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.json()
        return response.text

    def submit(self, name: str, number: int, nodes: int, executor: str, template: str,
               hold: bool = False, bearer: str | None = None) -> list:
        encoded = base64.b64encode(template.encode()).decode()
        return self.call("POST", "/submit", {"name": name, "number": number, "nodes": nodes,
                                             "hpc_script": {executor: encoded},
                                             "bearer": bearer, "hold": hold})

    def job(self, path: str, job: dict):
        return self.call("POST", path, job)

    def request(self, job: dict, method: str, query: dict | None = None):
        path = f"/request/{job['name']}/{job['number']}/{job['jobid']}/{method}"
        return self.call("POST", path, {"qs": query or {}})


def server_url(text: str) -> str:
    """``host:port``, ``host`` or an http(s) URL, as a URL without a trailing slash."""
    text = text.strip()
    url = text if "://" in text else "http://" + text
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"A server is written host:port or http://host:port, not {text!r}.")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InvalidRequest(f"The server {text!r} has a port that is not a number.") from None
    return url.rstrip("/")


def parse_job(text: str) -> dict:
    """``name/number/jobid`` (as ``dssr submit`` prints it) into the contract's fields."""
    parts = text.split("/")
    if len(parts) != 3 or not is_digits(parts[1]):
        raise InvalidRequest(f"A job is written name/number/jobid, not {text!r}.")
    return {"name": parts[0], "number": int(parts[1]), "jobid": parts[2]}


def termination_state(exit_status: list) -> str:
    """The state in an ``/exitstatus`` answer's banner (``COMPLETED``, ``UNKNOWN``, ...)."""
    banner = exit_status[2][1]
    found = _TERMINATION_STATE.match(banner)
    return found.group(1) if found else ""


def _description(response) -> str:
    try:
        return response.json().get("description") or response.text
    except ValueError:
        return response.text.strip() or response.reason
