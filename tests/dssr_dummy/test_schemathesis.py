"""Schemathesis against ``dssr serve`` on the dummy connector, and a fuzz run of 5,000 cases.

Every operation of ``openapi.json`` gets a bounded number of generated requests, valid and
invalid; each answer must be no 5xx but the documented 503, and match its schema and media
type. The dummy runs in timer mode: a generated script is never run.

The form field ``args`` holds JSON (the document's ``encoding`` says so), but schemathesis
sends a form's object fields exploded, as it does query parameters: :func:`send` sends each
generated body as upstream does, ``args=<JSON>``, and schemathesis checks the answer.
"""

import base64
import collections
import json
import os
from urllib.parse import urlencode

import falcon.testing
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from dssr_core.app import create_app, openapi_document_bytes
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing.openapi import contract_check
from dssr_core.testing.plugin import DssrServer
from dssr_dummy import DummyConnector

pytestmark = pytest.mark.slow

#: Generated requests per operation against the live server.
EXAMPLES_PER_OPERATION = int(os.environ.get("DSSR_SCHEMATHESIS_EXAMPLES", "30"))
#: Cases of the in-process fuzz run, spread over the operations.
FUZZ_CASES = int(os.environ.get("DSSR_FUZZ_CASES", "5000"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
FUZZ_SETTINGS = settings(deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))

# The packaged document (the server serves the same bytes: tests/dssr_core/test_openapi.py).
schema = schemathesis.openapi.from_dict(json.loads(openapi_document_bytes()))
live_answers: collections.Counter = collections.Counter()


def form_body(case) -> bytes | None:
    """The generated body as upstream sends it: each field's JSON, url-encoded."""
    body = case.body
    if body is NOT_SET or body is None:
        return None
    if isinstance(body, dict):
        return urlencode({key: value if isinstance(value, str) else json.dumps(value)
                          for key, value in body.items()}).encode()
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def send(case, base_url: str) -> requests.Response:
    headers = dict(case.headers or {})
    if case.media_type:
        headers["Content-Type"] = case.media_type
    return requests.request(case.method, base_url + case.formatted_path, params=case.query or None,
                            data=form_body(case), headers=headers, timeout=30)


def dummy_env(state_dir) -> dict[str, str]:
    return {"JARVICE_BAREMETAL_CONNECTOR": "dummy", "JARVICE_DUMMY_STATE_DIR": str(state_dir),
            "JARVICE_DUMMY_JOB_RUNNING_TIME": "0.2", "DSSR_MAX_BODY_BYTES": "65536"}


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schemathesis")
    server = DssrServer(dummy_env(folder / "state"), folder / "dssr-serve.log").start()
    yield server
    server.stop()


@schema.parametrize()
@settings(FUZZ_SETTINGS, max_examples=EXAMPLES_PER_OPERATION)
def test_the_live_server_answers_every_generated_request_as_documented(case, live_server):
    response = send(case, live_server.url)
    live_answers[response.status_code] += 1
    case.validate_response(response, checks=CHECKS)


def test_the_schemathesis_run_sent_requests(live_server):
    """Runs after the run above (same module): its count, for the record."""
    total = sum(live_answers.values())
    print(f"\nschemathesis sent {total} requests to dssr serve: {dict(sorted(live_answers.items()))}")
    if total:  # run on its own, this test has nothing to count
        assert total >= EXAMPLES_PER_OPERATION
        assert live_answers[200] > 0


@pytest.fixture(scope="module")
def dummy_client(tmp_path_factory):
    settings_ = Settings.from_env(dummy_env(tmp_path_factory.mktemp("fuzz") / "state"))
    connector = DummyConnector.from_settings(settings_)
    # With a report, as `dssr serve` builds it, so that /check is fuzzed too.
    report = lambda: (["a report"], True)  # noqa: E731
    yield falcon.testing.TestClient(create_app(settings_, connector, ShellExecutor(settings_),
                                               executor_name="shell", report=report))
    connector.close()


class Fuzz:
    """Sends cases to the in-process app and keeps what came back."""

    def __init__(self, client):
        self.client = client
        self.check = contract_check()
        self.statuses: collections.Counter = collections.Counter()
        self.failures: list[str] = []

    def send(self, method: str, path: str, body: bytes | None, headers: dict, query=None):
        answer = self.client.simulate_request(method, path, params=query or None, body=body,
                                              headers=headers)
        self.statuses[answer.status_code] += 1
        where = f"{method} {path} {body!r:.300}"
        if answer.status_code >= 500 and answer.status_code != 503:
            self.failures.append(f"{where}: {answer.status_code} {answer.text[:200]}")
        try:
            self.check.check(method, path, answer.status_code, answer.headers.get("content-type", ""),
                             answer.text)
        except AssertionError as error:
            self.failures.append(f"{where}: {error}")
        return answer

    def operation(self, operation, examples: int) -> None:
        @settings(FUZZ_SETTINGS, max_examples=examples)
        @given(case=operation.as_strategy())
        def fuzz(case):
            headers = dict(case.headers or {})
            if case.media_type:
                headers["Content-Type"] = case.media_type
            self.send(case.method, case.formatted_path, form_body(case), headers, case.query)

        fuzz()

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


FACTS = ["JARVICE_CPU_CORES", "JOBOBJ_GPUS", "JOBOBJ_RAM", "JOBOBJ_WALLTIME", "JOBOBJ_DEVICES",
         "JOBOBJ_INTERACTIVE", "JOBOBJ_LICENSES", "JOBOBJ_ARCH", "JARVICE_CMD", "JOBOBJ_APPDEFVERSION"]
AWKWARD_VALUES = ["²", "٣", "１", "99999999999999999999", "9" * 5000, "-1", "0", "1-00:00:00",
                  '["partition=x"]', '["sbatch_comment=x"]', '["exclusive=False", "overlay=1²"]',
                  "{{", "}}", "{", "True", "\udcff", "'quoted'", '"x"', ""]
fact_value = st.one_of(st.sampled_from(AWKWARD_VALUES), st.text(max_size=20), st.integers().map(str))
fact_line = st.tuples(st.sampled_from(["", "export ", "declare -x ", "true; ", "  "]),
                      st.sampled_from(FACTS), fact_value).map(lambda t: f"{t[0]}{t[1]}={t[2]}")
line_break = st.sampled_from(["\n", "\r\n", "\r", "\u2028", "\x0b", "\x85"])
SECRET = "hunter2-at-rest"
secret_line = st.sampled_from([
    f"JOBOBJ_CTRSECRET={SECRET}", f"declare -x JOBOBJ_DOCKER_SECRET={SECRET}",
    f"export A=1 JOBOBJ_CTRSECRET={SECRET}", f"true; JOBOBJ_DOCKER_SECRET={SECRET}"])


@st.composite
def submissions(draw) -> dict:
    """/submit args whose script is upstream's template with facts of every awkward kind."""
    lines = draw(st.lists(st.one_of(fact_line, secret_line), max_size=8))
    brk = draw(line_break)
    script = brk.join(["#!/bin/bash", "{DOWNSTREAM_PARAMETERS}", *lines, "true"]) + "\n"
    return {"name": f"fuzz-{draw(st.integers(0, 10**9))}",
            "number": draw(st.one_of(st.integers(-1, 2**64), st.sampled_from(["7", "²", "1" * 30]))),
            "nodes": draw(st.one_of(st.integers(-1, 200_000), st.sampled_from(["2", "٣"]))),
            "hpc_script": {"shell": base64.b64encode(script.encode("utf-8", "surrogatepass")).decode()},
            "bearer": draw(st.sampled_from([None, "", "not.a.jwt"]))}


def test_a_fuzz_run_of_5000_cases_has_no_500(dummy_client):
    """Hypothesis drives schemathesis' generation in-process, and a generator of upstream's
    scripts whose facts are of every awkward kind; every answer is also checked against the
    document, and no accepted script comes back with a secret."""
    fuzz = Fuzz(dummy_client)
    operations = [result.ok() for result in schema.get_all_operations()]
    with_body = [operation for operation in operations if operation.method.upper() == "POST"]
    scripts = FUZZ_CASES // 10
    per_operation = -(-(FUZZ_CASES - scripts) // len(with_body))
    for operation in operations:
        fuzz.operation(operation, per_operation if operation in with_body else 1)

    submitted: collections.Counter = collections.Counter()

    @settings(FUZZ_SETTINGS, max_examples=scripts)
    @given(args=submissions())
    def submit(args):
        answer = fuzz.send("POST", "/submit", urlencode({"args": json.dumps(args)}).encode(),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        submitted[answer.status_code] += 1
        if answer.status_code == 200:
            assert SECRET not in answer.json[1]

    submit()
    print(f"\nupstream-like scripts: {dict(sorted(submitted.items()))}")
    assert submitted[200] and submitted[400]
    fives = sum(count for status, count in fuzz.statuses.items() if status >= 500 and status != 503)
    print(f"\nfuzz: {fuzz.total} cases over {len(operations)} operations and upstream's scripts, "
          f"answers {dict(sorted(fuzz.statuses.items()))}; 500s: {fives}")
    assert fuzz.failures == []
    assert fuzz.total >= FUZZ_CASES
