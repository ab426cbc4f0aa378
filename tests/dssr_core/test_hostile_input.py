"""Inputs an attacker or a broken client sends: each gets a 4xx with a sentence, never a 500.

Each case here answered 500 (or was accepted) before: see issue 12.
"""

import base64
import json
import logging
import re
from urllib.parse import urlencode

import falcon.testing
import pytest
from test_app import JOB, InMemoryConnector, SecretExecutor, make_api

from dssr_core.app import create_app
from dssr_core.errors import ConnectorError
from dssr_core.facts import read_facts
from dssr_core.forms import MAX_JSON_DEPTH, MAX_JSON_VALUES
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import encode_script, shell_template


@pytest.fixture
def connector():
    return InMemoryConnector(Settings.from_env({}))


@pytest.fixture
def client(connector):
    settings = Settings.from_env({})
    return falcon.testing.TestClient(create_app(settings, connector, ShellExecutor(settings),
                                                 executor_name="shell"))


def post_raw(client, path: str, args_text: str):
    """POST ``args`` exactly as given (not through json.dumps)."""
    return client.simulate_post(path, body=urlencode({"args": args_text}),
                                content_type="application/x-www-form-urlencoded")


def submit_args(template: str, **fields) -> dict:
    return {"name": "job-1", "number": 1, "nodes": 1,
            "hpc_script": {"shell": encode_script(template)}, **fields}


def with_fact(line: str) -> str:
    return shell_template("true").replace("JARVICE_CPU_CORES", f"{line}\nJARVICE_CPU_CORES")


UNICODE_DIGITS = ["²", "٣", "１", "1²", "߃"]


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_unicode_digits_are_no_number(api_for, digits):
    api, connector = api_for()
    answer = api.post("/runstatus", {**JOB, "number": digits})
    assert (answer.status, "args.number" in answer.json["description"]) == (400, True)
    answer = api.post("/submit", submit_args(shell_template("true"), nodes=digits))
    assert (answer.status, "args.nodes" in answer.json["description"]) == (400, True)
    for fact in ("JOBOBJ_GPUS", "JARVICE_CPU_CORES", "JOBOBJ_RAM"):
        answer = api.post("/submit", submit_args(with_fact(f"{fact}={digits}")))
        assert (answer.status, fact in answer.json["description"]) == (400, True), fact
    answer = api.post("/submit", submit_args(with_fact(f"JOBOBJ_WALLTIME={digits}")))
    assert (answer.status, "JOBOBJ_WALLTIME" in answer.json["description"]) == (400, True)
    answer = api.post("/request/job-1/7/101/tail", {"qs": {"lines": [digits]}})
    assert (answer.status, "qs.lines" in answer.json["description"]) == (400, True)
    assert connector.submissions == []


@pytest.fixture
def api_for(connector):
    def build(env=None, executor_class=ShellExecutor):
        return make_api(connector, env, executor_class=executor_class), connector
    return build


@pytest.mark.parametrize("field,value", [
    ("number", 2**63), ("number", 10**30), ("number", str(2**63)), ("number", -1),
])
def test_numbers_past_64_bits_are_refused_with_their_bounds(api_for, field, value):
    api, _ = api_for()
    answer = api.post("/runstatus", {**JOB, field: value})
    assert answer.status == 400
    assert f"from 0 to {2**63 - 1}" in answer.json["description"]


@pytest.mark.parametrize("fact,bound", [
    ("JOBOBJ_GPUS=99999999999999999999", "JOBOBJ_GPUS must be a whole number from 0 to 1024"),
    ("JARVICE_CPU_CORES=" + "9" * 40, "JARVICE_CPU_CORES must be a whole number from 1 to"),
    ("JOBOBJ_RAM=" + "9" * 5000, "JOBOBJ_RAM must be a whole number from 0 to"),
    ("JOBOBJ_WALLTIME=" + "9" * 5000, "JOBOBJ_WALLTIME must be a duration"),
    ("JOBOBJ_WALLTIME=99999999999", "at most 24855 days"),
    ('JOBOBJ_DEVICES=["overlay=' + "9" * 5000 + '"]', "overlay device (MB) must be a whole number"),
])
def test_huge_facts_are_refused_with_their_bounds(api_for, fact, bound):
    api, connector = api_for()
    answer = api.post("/submit", submit_args(with_fact(fact)))
    assert answer.status == 400
    assert bound in answer.json["description"]
    assert len(answer.json["description"]) < 300
    assert connector.submissions == []


def test_a_5000_digit_line_count_is_400(api_for):
    api, _ = api_for()
    answer = api.post("/request/job-1/7/101/tail", {"qs": {"lines": ["9" * 5000]}})
    assert answer.status == 400
    assert "qs.lines must be a whole number from 1 to 100000" in answer.json["description"]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_deeply_nested_json_is_400(client, depth):
    nested = "[" * depth + "]" * depth
    args = '{"name": "job-1", "number": 7, "jobid": "101", "x": ' + nested + "}"
    answer = post_raw(client, "/runstatus", args)
    assert answer.status_code == 400
    assert "args" in answer.json["description"]


def test_nesting_within_the_limit_still_parses(client):
    depth = MAX_JSON_DEPTH - 1
    args = {**JOB, "extra": json.loads("[" * depth + "]" * depth)}
    assert post_raw(client, "/runstatus", json.dumps(args)).status_code == 200


def test_many_tiny_values_are_400_before_parsing(client):
    args = '{"name": "job-1", "number": 7, "jobid": "101", "a": [' + ",".join(["{}"] * 200_000) + "]}"
    answer = post_raw(client, "/runstatus", args)
    assert answer.status_code == 400
    assert f"more than {MAX_JSON_VALUES} JSON values" in answer.json["description"]


def test_structure_inside_strings_does_not_count(client):
    args = {**JOB, "note": "[{,:" * 20_000}
    assert post_raw(client, "/runstatus", json.dumps(args)).status_code == 200


@pytest.mark.parametrize("text", ['{"name": "a', '{"a": [}', "[" * 70 + "}" * 70])
def test_broken_json_past_the_fast_path_is_400(client, text):
    answer = post_raw(client, "/runstatus", text + "," * (MAX_JSON_VALUES + 1))
    assert answer.status_code == 400
    assert "args" in answer.json["description"]


def test_many_form_fields_are_400(client):
    body = "args=%7B%7D" + "&x=1" * 1000
    answer = client.simulate_post("/runstatus", body=body,
                                  content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400
    assert "fields" in answer.json["description"]


@pytest.mark.parametrize("path,args_text", [
    ("/request/pvcls", '{"qs": {"path": ["\\udcff"]}}'),
    ("/request/pvcls", '{"qs": {"\\udcff": ["x"]}}'),
    ("/submit", '{"name": "a", "number": 1, "nodes": 1, "bearer": "\\udcff", '
                '"hpc_script": {"shell": "eA=="}}'),
    ("/online", '{"host": "node1", "status": "\\ud800"}'),
])
def test_a_lone_surrogate_is_400(client, path, args_text):
    answer = post_raw(client, path, args_text)
    assert answer.status_code == 400
    assert "surrogate" in answer.json["description"]


def test_a_surrogate_pair_is_text(client):
    args = '{"name": "job-1", "number": 7, "jobid": "101", "note": "\\ud83d\\ude00"}'
    assert post_raw(client, "/runstatus", args).status_code == 200


def test_a_file_name_that_is_not_utf8_is_listed(connector):
    from dssr_core.models import DirEntry

    connector.pvcls = lambda path, details: [DirEntry("caf\udce9", False)]  # os.fsdecode(b"caf\xe9")
    answer = make_api(connector).post("/request/pvcls", {"qs": {"path": ["/"]}})
    assert (answer.status, answer.text) == (200, "/data/caf?\n")


def test_the_error_handler_cannot_fail_on_a_message_it_cannot_encode(connector):
    from dssr_core.errors import NotAvailable

    def missing(path, details):
        raise NotAvailable("/data/caf\udce9 does not exist.")

    connector.pvcls = missing
    answer = make_api(connector).post("/request/pvcls", {"qs": {"path": ["/"]}})
    assert answer.status == 404
    assert answer.json["description"] == "/data/caf\udce9 does not exist."


@pytest.mark.parametrize("field,value", [("name", "nljob\n"), ("jobid", "101\n"), ("name", "a\r"),
                                         ("jobid", "\n101")])
def test_names_and_ids_with_a_newline_are_refused(api_for, field, value):
    api, _ = api_for()
    answer = api.post("/runstatus", {**JOB, field: value})
    assert answer.status == 400
    assert f"args.{field}" in answer.json["description"]


def test_a_submitted_name_with_a_newline_is_refused(api_for):
    api, connector = api_for()
    assert api.submit("nljob\n", shell_template("true")).status == 400
    assert connector.submissions == []


@pytest.mark.parametrize("encoded", ["YWJj=", "YWJj===", "YWJj====", "YWI", "Y===", "YW=j"])
def test_base64_padding_is_strict(api_for, encoded):
    api, connector = api_for()
    answer = api.post("/submit", {"name": "a", "number": 1, "nodes": 1, "hpc_script": {"shell": encoded}})
    assert answer.status == 400
    assert "base64" in answer.json["description"]
    assert connector.submissions == []


def test_base64_with_line_breaks_is_still_taken(api_for):
    api, _ = api_for()
    encoded = encode_script(shell_template("echo " + "x" * 200))
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    assert api.post("/submit", submit_args("")  | {"hpc_script": {"shell": wrapped}}).status == 200


class TestBasicSchemeName:
    ENV = {"JARVICE_SCHED_SERVER_KEY": "slurm-downstream:Pass1234"}
    TOKEN = base64.b64encode(b"slurm-downstream:Pass1234").decode()

    @pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
    def test_any_case_of_the_scheme(self, api_for, scheme):
        api, _ = api_for(self.ENV)
        assert api.get("/running", headers={"Authorization": f"{scheme} {self.TOKEN}"}).status == 200

    @pytest.mark.parametrize("header", ["Bearer {t}", "Basic", "Basic {t}x", "{t}", "Basi {t}"])
    def test_other_schemes_and_credentials_still_refused(self, api_for, header):
        api, _ = api_for(self.ENV)
        answer = api.get("/running", headers={"Authorization": header.format(t=self.TOKEN)})
        assert answer.status == 401


SECRET = "hunter2"


@pytest.mark.parametrize("line", [
    f"declare -x MY_PASSWORD={SECRET}",
    f"true; MY_PASSWORD={SECRET}",
    f"export A=1 MY_PASSWORD={SECRET}",
    f"readonly MY_PASSWORD={SECRET}",
    f"  MY_PASSWORD='{SECRET}'",
])
def test_redaction_takes_every_way_of_assigning(api_for, line):
    api, connector = api_for(executor_class=SecretExecutor)
    jobid, fscript = api.post("/submit", submit_args(with_fact(line))).json
    assert SECRET not in fscript
    assert SECRET in connector.submissions[0].script
    assert "JARVICE_CPU_CORES=1" in fscript


@pytest.mark.parametrize("separator", ["\r", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x85"])
def test_redaction_splits_lines_as_the_facts_reader_does(separator):
    script = f"echo start{separator}JOBOBJ_CTRSECRET={SECRET}{separator}echo end\n"
    assert read_facts(script).get("JOBOBJ_CTRSECRET") == SECRET  # a line to the reader ...
    redacted = ShellExecutor(Settings.from_env({})).redact(script)
    assert SECRET not in redacted  # ... so a line to the redactor
    assert redacted.startswith("echo start") and redacted.endswith("echo end\n")


def test_500_answers_never_name_internal_paths(connector, caplog):
    def failing(submission):
        raise ConnectorError("The dummy cannot write the job's folder /var/lib/dssr/jobs/3: No space.")

    connector.submit = failing
    with caplog.at_level(logging.ERROR):
        answer = make_api(connector).submit("job-1", shell_template("true"))
    assert answer.status == 500
    assert "/var/lib" not in answer.text and "jobs/3" not in answer.text
    body = answer.json
    assert re.fullmatch(r"[0-9a-f]{16}", body.pop("request_id"))
    assert body == {"title": "500 Internal Server Error",
                    "description": "DSSR failed on this request; the server log has the details."}
    assert "/var/lib/dssr/jobs/3" in caplog.text


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nope", 404), ("POST", "/request/a/b", 404), ("GET", "/submit", 405),
    ("DELETE", "/live", 405), ("PUT", "/runstatus", 405),
])
def test_routing_answers_are_the_contracts_json(client, method, path, status):
    answer = client.simulate_request(method, path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    assert set(answer.json) == {"title", "description", "request_id"}
    assert answer.json["request_id"] == answer.headers["x-request-id"]
    assert answer.json["description"].endswith(".")


def test_a_newline_in_the_path_stays_on_one_log_line(client, caplog):
    with caplog.at_level(logging.INFO, logger="dssr_core.access"):
        client.simulate_get("/no%0Ainjected 200")
    [line] = [r.getMessage() for r in caplog.records if r.name == "dssr_core.access"]
    assert "\n" not in line and line.endswith("ms")
