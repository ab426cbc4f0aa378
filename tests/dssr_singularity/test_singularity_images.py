"""Image rules: the exact init and app image strings for every rule of the legacy API."""

import logging
import platform

import pytest

from dssr_core.errors import InvalidRequest, SettingsError

CACHING = {"JARVICE_LOCAL_REGISTRY": "cache.local:5000", "JARVICE_LOCAL_REPO_BASE": "jarvice/apps"}
PROXY = {"JARVICE_REGISTRY_PROXY_PORT": "5001",
         "JARVICE_REGISTRY_PROXY_REPOS": "https://nvcr.io, us-docker.pkg.dev/jarvice-apps,docker.io/nimbix"}


def app_image(render, settings=None, **facts) -> str:
    return render(settings, **facts)[1]["JARVICE_APP_IMAGE"]


def init_image(render, settings=None, **facts) -> str:
    return render(settings, **facts)[1]["JARVICE_INIT_IMAGE"]


# App image ---------------------------------------------------------------------------------

@pytest.mark.parametrize("repo, expected", [
    ("us-docker.pkg.dev/acme/apps/solver:1.2", "docker://us-docker.pkg.dev/acme/apps/solver:1.2"),
    ("ubuntu:22.04", "docker://ubuntu:22.04"),
    ("docker://nimbix/ubuntu-desktop", "docker://nimbix/ubuntu-desktop"),
    ("localhost:5000/app@sha256:" + "ab" * 32, "docker://localhost:5000/app@sha256:" + "ab" * 32),
])
def test_remote_mode_pulls_jobobj_repo_as_written(render, repo, expected):
    assert app_image(render, JOBOBJ_REPO=repo) == expected


def test_caching_mode_pulls_the_app_from_the_local_registry(render):
    image = app_image(render, CACHING, JOBOBJ_NAE="my-solver", JOBOBJ_REPO="nvcr.io/nvidia/x:1")
    assert image == "docker://cache.local:5000/jarvice/apps/my-solver:latest"


def test_caching_mode_wins_over_the_registry_proxy(render):
    image = app_image(render, {**CACHING, **PROXY}, JOBOBJ_REPO="nvcr.io/nvidia/x:1")
    assert image == "docker://cache.local:5000/jarvice/apps/solver:latest"


@pytest.mark.parametrize("nae, message", [
    (None, "JOBOBJ_NAE"),
    ("My Solver", "JOBOBJ_NAE must be an app id"),
])
def test_caching_mode_needs_a_valid_app_id(render, nae, message):
    with pytest.raises(InvalidRequest, match=message):
        render(CACHING, JOBOBJ_NAE=nae)


def test_caching_mode_needs_a_repo_base(executor_for):
    with pytest.raises(SettingsError, match="JARVICE_LOCAL_REPO_BASE"):
        executor_for(JARVICE_LOCAL_REGISTRY="cache.local:5000")


@pytest.mark.parametrize("repo, expected", [
    ("nvcr.io/nvidia/pytorch:23.10-py3", "docker://localhost:5001/nvidia/pytorch:23.10-py3"),
    ("us-docker.pkg.dev/jarvice-apps/solver:2", "docker://localhost:5001/jarvice-apps/solver:2"),
    # Docker Hub images match a docker.io entry, in every spelling.
    ("nimbix/desktop:7", "docker://localhost:5001/nimbix/desktop:7"),
    ("index.docker.io/nimbix/desktop:7", "docker://localhost:5001/nimbix/desktop:7"),
    # the entry is a path prefix, not a string prefix
    ("us-docker.pkg.dev/jarvice-apps-beta/solver:2",
     "docker://us-docker.pkg.dev/jarvice-apps-beta/solver:2"),
    ("nvcr.io.example.com/x:1", "docker://nvcr.io.example.com/x:1"),
    ("quay.io/team/app:1", "docker://quay.io/team/app:1"),
])
def test_registry_proxy_rewrites_listed_repos_to_localhost(render, repo, expected):
    assert app_image(render, PROXY, JOBOBJ_REPO=repo) == expected


def test_registry_proxy_serves_official_hub_images_under_library(render):
    settings = {"JARVICE_REGISTRY_PROXY_PORT": "5001", "JARVICE_REGISTRY_PROXY_REPOS": "docker.io"}
    assert app_image(render, settings, JOBOBJ_REPO="ubuntu:22.04") == \
        "docker://localhost:5001/library/ubuntu:22.04"


def test_registry_proxy_without_repos_is_reported_and_changes_nothing(render, caplog):
    with caplog.at_level(logging.WARNING):
        image = app_image(render, {"JARVICE_REGISTRY_PROXY_PORT": "5001"},
                          JOBOBJ_REPO="nvcr.io/nvidia/x:1")
    assert image == "docker://nvcr.io/nvidia/x:1"
    assert "JARVICE_REGISTRY_PROXY_REPOS is empty" in caplog.text


@pytest.mark.parametrize("repo", [
    "Nvcr.io/Team/App:1", "ubuntu 22.04", "library://sylabs/alpine", "ubuntu:", "-rf",
    "app:tag;rm", "a" * 600,
])
def test_a_repo_that_is_no_image_is_refused(render, repo):
    with pytest.raises(InvalidRequest, match="JOBOBJ_REPO must be a container image"):
        render(JOBOBJ_REPO=repo)


# Global registries -------------------------------------------------------------------------

@pytest.mark.parametrize("repo, expected", [
    ("us-docker.pkg.dev/acme/apps/solver:1.2", "True"),
    ("ubuntu:22.04", "True"),                      # Docker Hub, listed as https://index...
    ("registry-1.docker.io/nimbix/app", "True"),
    ("nvcr.io/nvidia/x:1", "False"),
    ("docker.pkg.dev/x/y", "False"),                # no substring match
])
def test_app_is_in_global_registries_when_its_registry_is_listed(render, repo, expected):
    settings = {"JARVICE_JOB_GLOBAL_REGISTRIES": "us-docker.pkg.dev, https://index.docker.io/v1/"}
    _, block = render(settings, JOBOBJ_REPO=repo)
    assert block["JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES"] == expected


def test_app_is_in_global_registries_after_the_proxy_rewrite(render):
    settings = {**PROXY, "JARVICE_JOB_GLOBAL_REGISTRIES": "nvcr.io"}
    _, block = render(settings, JOBOBJ_REPO="nvcr.io/nvidia/x:1")
    assert block["JARVICE_APP_IMAGE"] == "docker://localhost:5001/nvidia/x:1"
    assert block["JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES"] == "False"


# Init image ---------------------------------------------------------------------------------

def test_init_image_defaults(render):
    assert init_image(render) == \
        "docker://us-docker.pkg.dev/jarvice-system/images/initv2:jarvice-master"


def test_init_image_follows_the_settings_and_the_appdef_version(render):
    settings = {"JARVICE_SYSTEM_REGISTRY": "registry.example.com:5000",
                "JARVICE_SYSTEM_REPO_BASE": "/jarvice/system/", "JARVICE_IMAGES_TAG": "3.21.9-1"}
    assert init_image(render, settings, JOBOBJ_APPDEFVERSION="3") == \
        "docker://registry.example.com:5000/jarvice/system/initv3:3.21.9-1"


@pytest.mark.parametrize("omit, expected", [
    ("true", "docker://registry.example.com/initv2:jarvice-master"),
    ("false", "docker://registry.example.com/jarvice-system/images/initv2:jarvice-master"),
    ("", "docker://registry.example.com/jarvice-system/images/initv2:jarvice-master"),
])
def test_omit_repo_base_drops_the_repository_path_as_the_chart_does(render, executor_for, omit, expected):
    settings = {"JARVICE_SYSTEM_REGISTRY": "registry.example.com",
                "JARVICE_SYSTEM_REPO_BASE": "jarvice-system/images", "JARVICE_SYSTEM_OMIT_REPO_BASE": omit}
    assert init_image(render, settings) == expected
    assert dict(executor_for(**settings).report())["init image"] == expected.replace("initv2", "initv<N>")


@pytest.mark.parametrize("machine, tag, job_arch, expected_tag", [
    ("x86_64", "jarvice-master-amd64", "aarch64", "jarvice-master-arm64"),
    ("x86_64", "jarvice-master-amd64", "arm64", "jarvice-master-arm64"),
    ("x86_64", "jarvice-master-amd64", "x86_64", "jarvice-master-amd64"),
    ("x86_64", "jarvice-master-amd64", None, "jarvice-master-amd64"),
    ("x86_64", "jarvice-master", "aarch64", "jarvice-master"),          # no arch in the tag
    ("x86_64", "amd64", "aarch64", "amd64"),                            # nothing before it
    ("aarch64", "3.21-arm64", "x86_64", "3.21-amd64"),
    ("aarch64", "3.21-amd64", "aarch64", "3.21-amd64"),                 # not this machine's
])
def test_init_image_tag_follows_the_job_architecture(render, monkeypatch, machine, tag,
                                                     job_arch, expected_tag):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    image = init_image(render, {"JARVICE_IMAGES_TAG": tag}, JOBOBJ_ARCH=job_arch)
    assert image == f"docker://us-docker.pkg.dev/jarvice-system/images/initv2:{expected_tag}"


@pytest.mark.parametrize("setting, value", [
    ("JARVICE_SYSTEM_REGISTRY", "https://bad host/"),
    ("JARVICE_SYSTEM_REPO_BASE", "Jarvice System"),
    ("JARVICE_IMAGES_TAG", "bad tag"),
    ("JARVICE_LOCAL_REGISTRY", "cache local"),
    ("JARVICE_REGISTRY_PROXY_PORT", "99999"),
])
def test_bad_image_settings_fail_at_start_naming_the_setting(executor_for, setting, value):
    settings = {**CACHING, setting: value} if setting == "JARVICE_LOCAL_REGISTRY" else {setting: value}
    with pytest.raises(SettingsError, match=setting):
        executor_for(**settings)
