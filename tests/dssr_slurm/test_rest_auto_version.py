"""``JARVICE_SLURM_DATA_PARSER_VERSION`` / ``JARVICE_SLURMRESTD_API_VERSION``: ``auto`` takes the newest
version DSSR speaks of those slurmrestd advertises in ``GET /openapi.json`` (recorded from Slurm
22.05, 24.11 and 26.05 in recorded/openapi/), falls back to ping probing when slurmrestd serves no
such document, and a pinned version is used as given."""

import copy

import pytest
from rest_fixtures import RECORDED, recorded

from dssr_core.errors import ConnectorError, SettingsError
from dssr_core.settings import Settings
from dssr_slurm.rest.connector import SlurmRestConnector, advertised_versions
from dssr_slurm.rest.versions import PROBE_ORDER

pytest_plugins = ["rest_fixtures"]

OPENAPI = "GET /openapi.json"
#: The adapters of v0.0.43 to v0.0.45 come with the Slurm version matrix (issue 10's item 5).
NEWEST_OF_26_05 = next(name for name in PROBE_ORDER if name in ("v0.0.45", "v0.0.44", "v0.0.43", "v0.0.42"))


def openapi(release: str) -> dict:
    return recorded("openapi", f"slurm-{release}")


@pytest.fixture
def connect(fake_env, fake_slurmrestd):
    made = []

    def connect(**values) -> SlurmRestConnector:
        connector = SlurmRestConnector.from_settings(Settings.from_env({**fake_env, **values}))
        made.append(connector)
        return connector

    yield connect
    for connector in made:
        connector.close()


def test_the_recordings_advertise_what_each_slurm_serves():
    assert advertised_versions(openapi("22.05.8")["body"]) == ["v0.0.38"]
    assert advertised_versions(openapi("24.11.5")["body"]) == ["v0.0.40", "v0.0.41", "v0.0.42"]
    assert advertised_versions(openapi("26.05.5")["body"]) == ["v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"]
    files = sorted((RECORDED / "openapi").glob("*.json"))
    assert [path.name for path in files] == ["slurm-22.05.8.json", "slurm-24.11.5.json", "slurm-26.05.5.json"]
    assert all(recorded("openapi", path.stem)["source"].startswith("recorded from") for path in files)


@pytest.mark.parametrize(("release", "chosen"), [
    ("22.05.8", "v0.0.38"), ("24.11.5", "v0.0.42"), ("26.05.5", NEWEST_OF_26_05)])
def test_auto_takes_the_newest_version_dssr_speaks_that_openapi_json_advertises(
        connect, fake_slurmrestd, release, chosen):
    fake_slurmrestd.answer("GET", "/openapi.json", openapi(release))
    connector = connect(JARVICE_SLURM_DATA_PARSER_VERSION="auto")
    assert connector.versions.current().name == chosen
    assert [r["path"] for r in fake_slurmrestd.requests] == ["/openapi.json"], "chosen without probing"
    advertised = ", ".join(advertised_versions(openapi(release)["body"]))
    assert dict(connector.report())["API version"] == (
        f"{chosen} (auto: the newest DSSR speaks of those /openapi.json advertises ({advertised}))")


def test_without_openapi_json_auto_probes_ping_as_before(connect, fake_slurmrestd):
    fake_slurmrestd.answer("GET", "/slurm/v0.0.40/ping", recorded("v0.0.40", "ping"))
    connector = connect()
    assert connector.versions.current().name == "v0.0.40"
    assert fake_slurmrestd.requests[0]["path"] == "/openapi.json"
    probed = [r["path"] for r in fake_slurmrestd.requests[1:]]
    assert probed == [f"/slurm/{name}/ping" for name in PROBE_ORDER[:PROBE_ORDER.index("v0.0.40") + 1]]
    assert dict(connector.report())["API version"] == (
        f"v0.0.40 (auto: the newest of {', '.join(PROBE_ORDER)} that answers ping (/openapi.json: HTTP 404, "
        "no API version in it))")


def test_a_daemon_that_advertises_only_versions_dssr_does_not_speak_is_a_sentence(connect, fake_slurmrestd):
    old = copy.deepcopy(openapi("22.05.8"))
    old["body"]["paths"] = {path.replace("v0.0.38", "v0.0.37"): methods
                            for path, methods in old["body"]["paths"].items()}
    fake_slurmrestd.answer("GET", "/openapi.json", old)
    connector = connect()
    with pytest.raises(ConnectorError) as refused:
        connector.versions.current()
    assert refused.value.message == (
        f"slurmrestd at http://127.0.0.1:{fake_slurmrestd.port} advertises the API versions v0.0.37 in "
        f"/openapi.json, none of which DSSR speaks ({', '.join(PROBE_ORDER)}).")


def test_a_pinned_version_is_used_as_given_under_either_name(connect, fake_slurmrestd):
    fake_slurmrestd.answer("GET", "/openapi.json", openapi("24.11.5"))
    connector = connect(JARVICE_SLURM_DATA_PARSER_VERSION="v0.0.40")
    assert connector.versions.current().name == "v0.0.40"
    assert fake_slurmrestd.requests == []
    assert dict(connector.report())["API version"] == "v0.0.40 (JARVICE_SLURM_DATA_PARSER_VERSION)"
    mine = connect(JARVICE_SLURM_DATA_PARSER_VERSION="auto", JARVICE_SLURMRESTD_API_VERSION="0.0.41")
    assert dict(mine.report())["API version"] == "v0.0.41 (JARVICE_SLURMRESTD_API_VERSION)"


@pytest.mark.parametrize(("value", "words"), [
    ("latest", "JARVICE_SLURM_DATA_PARSER_VERSION must be auto or a version such as v0.0.38, not 'latest'."),
    ("v0.0.99", "JARVICE_SLURM_DATA_PARSER_VERSION=v0.0.99 is not one DSSR speaks; use auto or one of "),
])
def test_a_version_dssr_cannot_use_is_refused_naming_the_spelling_given(connect, value, words):
    with pytest.raises(SettingsError) as refused:
        connect(JARVICE_SLURM_DATA_PARSER_VERSION=value)
    assert refused.value.message.startswith(words)
