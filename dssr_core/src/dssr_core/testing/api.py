"""Talk to the legacy API exactly as upstream does, in-process or over HTTP."""

import base64
import json
import time

import attrs

from dssr_core.facts import escape_braces


@attrs.frozen
class Answer:
    status: int
    text: str
    content_type: str

    @property
    def json(self):
        return json.loads(self.text)


class ApiClient:
    """POSTs form field ``args`` holding JSON; GETs with no body. Returns :class:`Answer`.

    Every answer is checked against the OpenAPI document (``dssr_core/openapi.json``) unless
    ``check_contract`` is false (benchmarks): an answer it does not list fails the test.
    """

    def __init__(self, send, check_contract: bool = True):
        self._raw_send = send
        self._check = None
        if check_contract:
            from dssr_core.testing.openapi import contract_check

            self._check = contract_check()

    def _send(self, method, path, body, extra_headers) -> "Answer":
        answer = self._raw_send(method, path, body, extra_headers)
        if self._check is not None:
            self._check.check(method, path, answer.status, answer.content_type, answer.text)
        return answer

    @classmethod
    def for_app(cls, app, auth: tuple[str, str] | None = None, *,
                check_contract: bool = True) -> "ApiClient":
        import falcon.testing

        client = falcon.testing.TestClient(app)
        headers = _auth_header(auth)

        def send(method, path, body, extra_headers):
            result = client.simulate_request(
                method, path, body=body, headers={**headers, **(extra_headers or {})},
                content_type="application/x-www-form-urlencoded" if body is not None else None)
            return Answer(result.status_code, result.text, result.headers.get("content-type", ""))

        return cls(send, check_contract)

    @classmethod
    def for_url(cls, url: str, auth: tuple[str, str] | None = None, timeout: float = 60, *,
                check_contract: bool = True) -> "ApiClient":
        import requests

        session = requests.Session()

        def send(method, path, body, extra_headers):
            headers = {**_auth_header(auth), **(extra_headers or {})}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            result = session.request(method, url.rstrip("/") + path, data=body,
                                     headers=headers, timeout=timeout)
            return Answer(result.status_code, result.text, result.headers.get("Content-Type", ""))

        return cls(send, check_contract)

    def get(self, path: str, headers: dict | None = None) -> Answer:
        return self._send("GET", path, None, headers)

    def post(self, path: str, args: dict | None = None, headers: dict | None = None) -> Answer:
        from urllib.parse import urlencode

        body = urlencode({"args": json.dumps(args)}) if args is not None else ""
        return self._send("POST", path, body, headers)

    def submit(self, name: str, template: str, *, executor: str = "shell", number: int = 1,
               nodes: int = 1, hold: bool = False, bearer: str | None = None) -> Answer:
        args = {"name": name, "number": number, "nodes": nodes,
                "hpc_script": {executor: encode_script(template)}, "bearer": bearer}
        if hold:
            args["hold"] = True
        return self.post("/submit", args)

    def request(self, job: dict, method: str = "", qs: dict | None = None) -> Answer:
        """POST ``/request/<name>/<number>/<jobid>/<method>`` for ``job`` (``{name, number, jobid}``)."""
        return self.post(request_path(job, method), {"qs": qs or {}})

    def job_names(self, listing: str) -> set[str]:
        answer = self.get(f"/{listing}")
        assert answer.status == 200, answer.text
        return {name for name, _ in answer.json}


def request_path(job: dict, method: str = "") -> str:
    """``/request/<name>/<number>/<jobid>[/<method>]`` of ``job`` (``{name, number, jobid}``)."""
    path = f"/request/{job['name']}/{job['number']}/{job['jobid']}"
    return f"{path}/{method}" if method else path


def _auth_header(auth) -> dict:
    if not auth:
        return {}
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def encode_script(template: str) -> str:
    return base64.b64encode(template.encode()).decode()


def shell_template(body: str, cores: int = 1, devices: list[str] | None = None,
                   walltime: str | None = None) -> str:
    """A plain bash body in upstream's template form (braces doubled).

    ``devices`` are upstream's pseudo-devices (``JOBOBJ_DEVICES``), e.g. ``["exclusive=False"]``;
    ``walltime`` is ``JOBOBJ_WALLTIME`` (``HH:MM:SS``).
    """
    facts = f"JARVICE_CPU_CORES={cores}\n"
    if devices is not None:
        facts += f"JOBOBJ_DEVICES={escape_braces(json.dumps(devices))}\n"
    if walltime is not None:
        facts += f"JOBOBJ_WALLTIME={walltime}\n"
    return f"#!/bin/bash\n{{DOWNSTREAM_PARAMETERS}}\n{facts}{escape_braces(body)}\n"


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
