"""slurmrestd's service token from Keycloak, as JARVICE gets it (client credentials), against a REAL
OpenID Connect provider (tests/oidc): cached and renewed before it expires, one fetch for many
requests, fetched once more when slurmrestd refuses it, the provider's outage a 503 sentence,
the secret and the tokens in no message. Slurm itself is in test_identity_e2e.py."""

import logging
import threading
import time

import jwt
import pytest
from rest_fixtures import recorded

from dssr_core.errors import ConnectorError, ProviderUnavailable, SettingsError
from dssr_core.settings import Settings
from dssr_slurm.rest.client import RestClient
from dssr_slurm.rest.keycloak import ClientCredentials, KeycloakToken
from dssr_slurm.rest.settings import RestSettings
from dssr_slurm.rest.tokens import PassedBearers, token_source

pytest_plugins = ["oidc_fixtures", "rest_fixtures"]

CLIENT = "nimbix-slurm-sched-client"
LIFESPAN = 40


class Clock:
    """DSSR's clock, moved by the tests (the provider's is the real one)."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def provider(oidc_provider_factory):
    return oidc_provider_factory({CLIENT: {"token_ttl": LIFESPAN, "claims": {"sun": "jarvice"}},
                                  "other": {"claims": {"sun": "mario"}}})


def tokens_of(provider, clock=None, secret=None, client=CLIENT) -> ClientCredentials:
    return ClientCredentials(provider.token_url, client, secret or provider.secrets[client],
                             **({"clock": clock} if clock else {}))


def test_a_token_is_fetched_once_and_used_until_a_quarter_of_its_lifespan_is_left(provider):
    clock = Clock()
    tokens = tokens_of(provider, clock)
    before = provider.issued(CLIENT)
    first = tokens.token()
    assert tokens.token() == first and provider.issued(CLIENT) == before + 1
    assert tokens.margin == LIFESPAN / 4
    clock.now += LIFESPAN - LIFESPAN / 4 - 1
    assert tokens.token() == first, "more than the margin left"
    clock.now += 2
    assert tokens.token() != first, "renewed within the margin"
    assert provider.issued(CLIENT) == before + 2 and tokens.fetched == 2


def test_requests_that_need_a_token_at_once_share_one_fetch(provider):
    tokens = tokens_of(provider)
    before = provider.issued(CLIENT)
    got, start = [], threading.Barrier(16)

    def ask():
        start.wait()
        got.append(tokens.token())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 16 and len(set(got)) == 1
    assert provider.issued(CLIENT) == before + 1


def test_a_refused_token_is_fetched_again_once_for_all_who_saw_it_refused(provider):
    tokens = tokens_of(provider)
    refused = tokens.token()
    before = provider.issued(CLIENT)
    renewed, start = [], threading.Barrier(8)

    def refresh():
        start.wait()
        renewed.append(tokens.refresh(refused))

    threads = [threading.Thread(target=refresh) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(renewed)) == 1 and renewed[0] != refused
    assert provider.issued(CLIENT) == before + 1


def test_a_wrong_secret_is_a_sentence_that_shows_no_secret(provider, caplog):
    tokens = tokens_of(provider, secret="wrong-s3cret-value")
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectorError) as refused:
        tokens.token()
    assert refused.value.message == (
        f"Keycloak at {provider.token_url} did not give DSSR a service token for slurmrestd: it answered "
        "HTTP 401 (invalid_client - client authentication failed); check JARVICE_KEYCLOAK_CLIENT_ID and "
        "JARVICE_KEYCLOAK_CLIENT_SECRET.")
    assert "wrong-s3cret-value" not in caplog.text + repr(tokens) + tokens.describe()


def test_the_providers_outage_is_a_503_sentence_and_it_recovers(oidc_provider_factory, caplog):
    provider = oidc_provider_factory({CLIENT: {"token_ttl": LIFESPAN, "claims": {"sun": "jarvice"}}})
    clock = Clock()
    tokens = tokens_of(provider, clock)
    first = tokens.token()
    provider.stop()
    try:
        clock.now += LIFESPAN - 2  # within the margin: renewal fails, the token is still valid
        with caplog.at_level(logging.WARNING):
            assert tokens.token() == first
        assert "the current service token stays in use until it expires" in caplog.text
        clock.now += 3  # expired
        with pytest.raises(ProviderUnavailable) as refused:
            tokens.token()
        assert refused.value.message == (
            f"Keycloak at {provider.token_url} did not give DSSR a service token for slurmrestd (connection "
            "refused): the identity provider is not reachable.")
        assert "no token yet" not in tokens.describe() and "connection refused" in tokens.failure
    finally:
        provider.start()
    clock.now += 5  # past the pause after a failure
    assert tokens.token() != first and tokens.failure == ""
    assert first not in caplog.text


def test_the_http_client_sends_a_refused_request_once_more_with_a_fresh_token(provider, fake_slurmrestd):
    service = KeycloakToken(tokens_of(provider), "jarvice")
    fake_slurmrestd.answer("GET", "/slurm/v0.0.38/ping", recorded("v0.0.38", "ping-unauthenticated"),
                           recorded("v0.0.38", "ping"))
    client = RestClient(f"http://127.0.0.1:{fake_slurmrestd.port}")
    answer = client.get("/slurm/v0.0.38/ping", service.service(), "pinging")
    assert answer.ok
    sent = [request["headers"]["X-SLURM-USER-TOKEN"] for request in fake_slurmrestd.requested("GET")]
    assert len(sent) == 2 and sent[0] != sent[1]
    assert all(request["headers"]["X-SLURM-USER-NAME"] == "jarvice" for request in fake_slurmrestd.requests)


def test_a_token_refused_twice_is_not_asked_a_third_time(provider, fake_slurmrestd):
    service = KeycloakToken(tokens_of(provider), "jarvice")
    fake_slurmrestd.answer("GET", "/slurm/v0.0.38/ping", recorded("v0.0.38", "ping-unauthenticated"))
    client = RestClient(f"http://127.0.0.1:{fake_slurmrestd.port}")
    assert client.get("/slurm/v0.0.38/ping", service.service(), "pinging").status == 401
    assert len(fake_slurmrestd.requested("GET")) == 2


# Settings: the chart's names ---------------------------------------------------------------------


def chart_rest_settings(provider, **values) -> RestSettings:
    env = {"JARVICE_SLURMRESTD_URL": "http://slurm-login:6820", "JARVICE_SLURM_SSH_USER": "jarvice",
           "JARVICE_KEYCLOAK_TOKEN_URL": provider.token_url,
           "JARVICE_KEYCLOAK_CLIENT_SECRET": provider.secrets[CLIENT], **values}
    return RestSettings.from_settings(Settings.from_env(env))


def test_keycloak_settings_mean_bearer_mode_with_service_tokens_from_keycloak(provider):
    rest = chart_rest_settings(provider)
    assert (rest.token_mode, rest.client_id, rest.username_claim) == ("bearer", CLIENT, "preferred_username")
    source = token_source(rest)
    assert isinstance(source, PassedBearers) and source.service_user == "jarvice"
    source.service()  # fetches the first token
    described = source.describe()
    assert described.startswith("bearer (upstream's bearer for submissions; reads as jarvice with service "
                                f"tokens from Keycloak (the client {CLIENT} at {provider.token_url}; the "
                                "token expires at ")
    assert f"is renewed {LIFESPAN / 4:.0f} s before))" in described
    assert provider.secrets[CLIENT] not in described + repr(rest)


def test_a_static_service_token_wins_over_keycloak(provider):
    static = jwt.encode({"sun": "jarvice", "exp": 4102444800}, "k" * 32, algorithm="HS256")
    rest = chart_rest_settings(provider, JARVICE_SLURM_SA_TOKEN=static)
    assert (rest.token_mode, rest.keycloak) == ("static", False)


def test_without_a_service_user_it_is_read_from_the_first_token(provider):
    rest = chart_rest_settings(provider, JARVICE_SLURM_SSH_USER="", JARVICE_SLURMRESTD_TOKEN_MODE="static",
                               JARVICE_KEYCLOAK_CLIENT_ID="other",
                               JARVICE_KEYCLOAK_CLIENT_SECRET=provider.secrets["other"])
    source = token_source(rest)
    assert isinstance(source, KeycloakToken) and source.service_user == "mario"
    assert source.describe().startswith("static (one token for every request: service tokens from Keycloak "
                                        "(the client other at ")


@pytest.mark.parametrize(("values", "words"), [
    ({"JARVICE_KEYCLOAK_CLIENT_SECRET": ""},
     f"JARVICE_KEYCLOAK_TOKEN_URL is set without JARVICE_KEYCLOAK_CLIENT_SECRET: the secret of the client "
     f"{CLIENT}"),
    ({"JARVICE_KEYCLOAK_TOKEN_URL": "https://admin:pw@kc/realms/j/protocol/openid-connect/token"},
     "JARVICE_KEYCLOAK_TOKEN_URL must not carry a user name or password"),
    ({"JARVICE_SLURM_USERNAME_CLAIM": "pre ferred"}, "JARVICE_SLURM_USERNAME_CLAIM must be a claim name"),
])
def test_keycloak_settings_that_cannot_work_are_refused_with_a_sentence(provider, values, words):
    with pytest.raises(SettingsError) as refused:
        chart_rest_settings(provider, **values)
    assert refused.value.message.startswith(words)
    assert "pw@" not in refused.value.message
