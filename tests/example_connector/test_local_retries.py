"""The example connector of the guide answers a retried submit and refuses a reused name and a
foreign id, as docs/writing-a-connector.md says every connector must."""

from dssr_core.settings import Settings
from dssr_core.testing import ConnectorContract, shell_template
from dssr_local.plugin import LocalConnector


def test_the_documented_connector_answers_a_retry_and_refuses_a_reused_name(tmp_path):
    connector = LocalConnector.from_settings(
        Settings.from_env({"LOCAL_JOB_DIR": str(tmp_path)}))
    api = ConnectorContract.api_for(connector)
    first = api.submit("reused", shell_template("sleep 60"), hold=True)
    retry = api.submit("reused", shell_template("sleep 60"), hold=True)
    other = api.submit("reused", shell_template("sleep 61"), hold=True)
    assert retry.json[0] == first.json[0] and other.status == 409
    assert api.post("/runstatus", {"name": "reused", "number": 1, "jobid": "x1"}).status == 400
    api.post("/terminate", {"name": "reused", "number": 1, "jobid": first.json[0]})
