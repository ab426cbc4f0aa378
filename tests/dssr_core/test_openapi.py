"""The OpenAPI document matches the app: every route is in it, and answers are checked.

Every :class:`ApiClient` answer in the test suite is checked against the document (see
``dssr_core.testing.openapi``); the tests here prove that check bites.
"""

import json

import falcon.inspect
import pytest
from test_app import JOB, InMemoryConnector, make_api

from dssr_core.app import create_app
from dssr_core.models import JobListing, RunStatus
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing.openapi import contract_check


@pytest.fixture
def connector():
    return InMemoryConnector(Settings.from_env({}))


def app_routes(connector) -> dict[str, set[str]]:
    settings = Settings.from_env({})
    # With the init report, as `dssr serve` builds it, so that /check is served too.
    app = create_app(settings, connector, ShellExecutor(settings), executor_name="shell",
                     report=lambda: ([], True))
    return {route.path: {m.method for m in route.methods if not m.internal}
            for route in falcon.inspect.inspect_routes(app)}


def documented_routes() -> dict[str, set[str]]:
    return {path: {method.upper() for method in item if method != "parameters"}
            for path, item in contract_check().document["paths"].items()}


def test_every_route_and_method_of_the_app_is_documented(connector):
    documented = documented_routes()
    for path, methods in app_routes(connector).items():
        assert path in documented, f"{path} is served but not in openapi.json"
        assert methods == documented[path], (path, methods, documented[path])


def test_every_documented_path_is_served(connector):
    served = app_routes(connector)
    missing = set(documented_routes()) - set(served)
    assert not missing, f"openapi.json documents paths the app does not serve: {missing}"


def test_every_post_takes_the_args_form_field():
    for path, item in contract_check().document["paths"].items():
        if "post" in item:
            body = item["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
            assert body["schema"]["properties"].keys() == {"args"}, path
            assert body["encoding"]["args"]["contentType"] == "application/json", path
            assert {"400", "401", "413", "500", "503"} <= item["post"]["responses"].keys(), path


def test_the_document_is_served_and_is_the_packaged_one(connector):
    answer = make_api(connector).get("/openapi.json")
    assert answer.status == 200 and answer.content_type.startswith("application/json")
    assert answer.json == contract_check().document
    assert answer.json["openapi"].startswith("3.")


def test_the_document_needs_the_server_key_when_it_is_set(connector):
    env = {"JARVICE_SCHED_SERVER_KEY": "slurm-downstream:Pass1234"}
    assert make_api(connector, env).get("/openapi.json").status == 401
    assert make_api(connector, env, auth=("slurm-downstream", "Pass1234")).get("/openapi.json").status == 200


def test_schemathesis_reads_every_operation():
    import schemathesis

    schema = schemathesis.openapi.from_dict(contract_check().document)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert len(labels) == sum(len(methods) for methods in documented_routes().values())


def test_an_answer_that_drifts_from_the_document_fails_the_test(connector):
    connector.running = lambda: [JobListing("not a name!", "1")]
    with pytest.raises(AssertionError, match="does not match the OpenAPI document"):
        make_api(connector).get("/running")
    connector.runstatus = lambda job: RunStatus(("node1",), -1)  # formats as 00:00:00: conformant
    assert make_api(connector).post("/runstatus", JOB).status == 200


def test_an_undocumented_status_fails_the_test(connector):
    from dssr_core.errors import SchedulerRejected

    def rejected(job):
        raise SchedulerRejected("no")

    connector.release = rejected  # 422 is documented for /submit only
    with pytest.raises(AssertionError, match="lists .*404"):
        make_api(connector).post("/release", JOB)


def test_an_undocumented_media_type_fails_the_test():
    check = contract_check()
    with pytest.raises(AssertionError, match="as text/html"):
        check.check("GET", "/running", 200, "text/html", "[]")
    with pytest.raises(AssertionError, match="no such operation"):
        check.check("GET", "/nowhere", 200, "application/json", "{}")
    check.check("GET", "/nowhere", 404, "application/json",
                json.dumps({"title": "404 Not Found", "description": "No endpoint has this path.",
                            "request_id": "0123456789abcdef"}))
