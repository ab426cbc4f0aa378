"""Credentials: which secret is used for the app image and the init image, and how a
malformed secret is refused without being shown."""

import json

import pytest

from dssr_core.errors import InvalidRequest, SettingsError
from dssr_singularity.credentials import b64

NVCR_IMAGE = "nvcr.io/nvidia/pytorch:23.10-py3"


def job_secret(server, username="jobuser", password="jobpass"):
    return json.dumps({"server": server, "username": username, "password": password})


def app_credentials(block) -> tuple[str, str]:
    return block["JARVICE_DOCKER_USERNAME"], block["JARVICE_DOCKER_PASSWORD"]


def test_no_secret_means_no_credentials(render):
    _, block = render()
    assert app_credentials(block) == ("", "")
    assert (block["JARVICE_INIT_DOCKER_USERNAME"], block["JARVICE_INIT_DOCKER_PASSWORD"]) == ("", "")


@pytest.mark.parametrize("value", ["", "None", "null", "{}"])
def test_empty_secrets_mean_none(render, value):
    _, block = render(JOBOBJ_REPO=NVCR_IMAGE, JOBOBJ_DOCKER_SECRET=value, JOBOBJ_CTRSECRET=value)
    assert app_credentials(block) == ("", "")


def test_the_jobs_docker_secret_is_used_for_its_registry(render):
    _, block = render(JOBOBJ_REPO=NVCR_IMAGE, JOBOBJ_DOCKER_SECRET=job_secret("nvcr.io"))
    assert app_credentials(block) == (b64("jobuser"), b64("jobpass"))


def test_the_jobs_docker_secret_wins_over_ctrsecret(render, ctrsecret):
    ctr = ctrsecret({"nvcr.io": {"auth": b64("ctruser:ctrpass")}})
    _, block = render(JOBOBJ_REPO=NVCR_IMAGE, JOBOBJ_DOCKER_SECRET=job_secret("https://nvcr.io"),
                      JOBOBJ_CTRSECRET=ctr)
    assert app_credentials(block) == (b64("jobuser"), b64("jobpass"))


def test_ctrsecret_is_used_when_the_docker_secret_is_for_another_registry(render, ctrsecret):
    ctr = ctrsecret({"quay.io": {"auth": b64("q:q")},
                     "https://nvcr.io/v2/": {"auth": b64("$oauthtoken:pa:ss")}})
    _, block = render(JOBOBJ_REPO=NVCR_IMAGE, JOBOBJ_DOCKER_SECRET=job_secret("quay.io"),
                      JOBOBJ_CTRSECRET=ctr)
    assert app_credentials(block) == (b64("$oauthtoken"), b64("pa:ss"))


def test_ctrsecret_entries_may_carry_username_and_password(render, ctrsecret):
    ctr = ctrsecret({"nvcr.io": {"username": "u1", "password": "p1"}})
    _, block = render(JOBOBJ_REPO=NVCR_IMAGE, JOBOBJ_CTRSECRET=ctr)
    assert app_credentials(block) == (b64("u1"), b64("p1"))


def test_ctrsecret_without_a_matching_entry_gives_none(render, ctrsecret):
    ctr = ctrsecret({"quay.io": {"auth": b64("q:q")}, "nvcr.io": {"identitytoken": "t"}})
    _, block = render(JOBOBJ_REPO=NVCR_IMAGE, JOBOBJ_CTRSECRET=ctr)
    assert app_credentials(block) == ("", "")


@pytest.mark.parametrize("image", ["nimbix/app:1", "docker.io/nimbix/app:1", "ubuntu",
                                   "index.docker.io/nimbix/app", "registry-1.docker.io/x/y"])
@pytest.mark.parametrize("server", ["https://index.docker.io/v1/", "index.docker.io",
                                    "registry-1.docker.io", "docker.io"])
def test_docker_hub_is_one_registry_in_every_spelling(render, ctrsecret, image, server):
    _, block = render(JOBOBJ_REPO=image, JOBOBJ_CTRSECRET=ctrsecret({server: {"auth": b64("h:p")}}))
    assert app_credentials(block) == (b64("h"), b64("p"))
    _, block = render(JOBOBJ_REPO=image, JOBOBJ_DOCKER_SECRET=job_secret(server))
    assert app_credentials(block) == (b64("jobuser"), b64("jobpass"))


def test_credentials_follow_the_image_that_is_pulled(render, ctrsecret):
    """In caching mode the app comes from the local registry: nvcr.io's secret is not for it."""
    settings = {"JARVICE_LOCAL_REGISTRY": "cache.local:5000", "JARVICE_LOCAL_REPO_BASE": "apps"}
    ctr = ctrsecret({"nvcr.io": {"auth": b64("n:p")}, "cache.local:5000": {"auth": b64("c:p")}})
    _, block = render(settings, JOBOBJ_REPO=NVCR_IMAGE, JOBOBJ_CTRSECRET=ctr)
    assert app_credentials(block) == (b64("c"), b64("p"))


def test_init_credentials_come_from_the_settings(render):
    settings = {"JARVICE_DOCKER_USERNAME": b64("_json_key"), "JARVICE_DOCKER_PASSWORD": b64("{k}")}
    _, block = render(settings)
    assert block["JARVICE_INIT_DOCKER_USERNAME"] == b64("_json_key")
    assert block["JARVICE_INIT_DOCKER_PASSWORD"] == b64("{k}")
    assert app_credentials(block) == ("", "")


# Malformed secrets ----------------------------------------------------------------------------

SECRET_WORD = "hunter2-S3CRET"


@pytest.mark.parametrize("fact, value", [
    ("JOBOBJ_DOCKER_SECRET", f"{{server: nvcr.io, password: {SECRET_WORD}}}"),
    ("JOBOBJ_DOCKER_SECRET", json.dumps({"server": "nvcr.io", "username": "u"})),
    ("JOBOBJ_DOCKER_SECRET", json.dumps({"server": "", "username": "u", "password": SECRET_WORD})),
    ("JOBOBJ_DOCKER_SECRET", json.dumps(["nvcr.io", "u", SECRET_WORD])),
    ("JOBOBJ_CTRSECRET", f"not base64 {SECRET_WORD}"),
    ("JOBOBJ_CTRSECRET", b64(f"not json {SECRET_WORD}")),
    ("JOBOBJ_CTRSECRET", b64(json.dumps({"auths": ["nvcr.io", SECRET_WORD]}))),
    ("JOBOBJ_CTRSECRET", b64(json.dumps({"auths": {"nvcr.io": SECRET_WORD}}))),
    ("JOBOBJ_CTRSECRET", b64(json.dumps({"auths": {"nvcr.io": {"auth": SECRET_WORD + "!"}}}))),
    ("JOBOBJ_CTRSECRET", b64(json.dumps({"auths": {"nvcr.io": {"auth": b64(SECRET_WORD)}}}))),
])
def test_a_malformed_secret_is_refused_without_showing_it(render, fact, value):
    with pytest.raises(InvalidRequest) as caught:
        render(JOBOBJ_REPO=NVCR_IMAGE, **{fact: value})
    assert fact in caught.value.message
    assert SECRET_WORD not in caught.value.message
    assert b64(SECRET_WORD) not in caught.value.message


@pytest.mark.parametrize("settings, named", [
    ({"JARVICE_DOCKER_USERNAME": b64("u"), "JARVICE_DOCKER_PASSWORD": "%%" + SECRET_WORD},
     "JARVICE_DOCKER_PASSWORD"),
    ({"JARVICE_DOCKER_USERNAME": "%%" + SECRET_WORD, "JARVICE_DOCKER_PASSWORD": b64("p")},
     "JARVICE_DOCKER_USERNAME"),
    ({"JARVICE_DOCKER_USERNAME": b64("u")}, "JARVICE_DOCKER_PASSWORD"),
])
def test_bad_init_credentials_fail_at_start_without_showing_them(executor_for, settings, named):
    with pytest.raises(SettingsError) as caught:
        executor_for(**settings)
    assert named in caught.value.message
    assert SECRET_WORD not in caught.value.message
