"""A small client of the legacy API, for people and shell scripts (``dssr submit`` ...)."""

import base64
import json

import requests

from dssr_core.errors import DssrError
from dssr_core.numbers import is_digits


class ClientError(DssrError):
    """The server refused the call or could not be reached."""


class Client:
    """Talks to a running DSSR server as upstream does: form field ``args`` holding JSON."""

    def __init__(self, server: str, server_key: str | None = None, timeout: float = 30.0):
        self.server = server.rstrip("/")
        self.auth = tuple(server_key.split(":", 1)) if server_key else None
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, args: dict | None = None):
        data = {"args": json.dumps(args)} if args is not None else None
        try:
            response = self.session.request(method, self.server + path, data=data,
                                            auth=self.auth, timeout=self.timeout)
        except requests.RequestException as error:
            raise ClientError(f"Cannot reach {self.server}: {type(error).__name__}.") from None
        if response.status_code >= 400:
            raise ClientError(f"{path} answered {response.status_code}: {_description(response)}")
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


def parse_job(text: str) -> dict:
    """``name/number/jobid`` (as ``dssr submit`` prints it) into the contract's fields."""
    parts = text.split("/")
    if len(parts) != 3 or not is_digits(parts[1]):
        raise ClientError(f"A job is written name/number/jobid, not {text!r}.")
    return {"name": parts[0], "number": int(parts[1]), "jobid": parts[2]}


def _description(response) -> str:
    try:
        return response.json().get("description") or response.text
    except ValueError:
        return response.text.strip() or response.reason
