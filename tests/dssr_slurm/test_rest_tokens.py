"""Token modes: minted per user and cached, the portal's bearer passed on, a static service token;
expiry is reported with the mode, never with the token."""

import time

import jwt
import pytest

from dssr_core.errors import SettingsError
from dssr_core.settings import Settings
from dssr_slurm.rest.settings import RestSettings, api_version
from dssr_slurm.rest.tokens import MintedTokens, PassedBearers, StaticToken, TokenRefused, token_source

KEY = b"0123456789abcdef0123456789abcdef"


class Clock:
    def __init__(self, now: float = 1_800_000_000):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "jwt.key"
    path.write_bytes(KEY)
    return str(path)


def token(user="jarvice", exp_in=600, now=1_800_000_000, **claims):
    return jwt.encode({"iat": now, "exp": now + exp_in, "sun": user, **claims}, KEY, algorithm="HS256")


def test_minted_token_carries_the_claims_slurm_checks(key_file):
    clock = Clock()
    tokens = MintedTokens(key_file, "jarvice", lifespan=600, clock=clock)
    credentials = tokens.credentials("kirby")
    claims = jwt.decode(credentials.token, KEY, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iat": 1_800_000_000, "exp": 1_800_000_600, "sun": "kirby"}
    assert credentials.headers() == {"X-SLURM-USER-NAME": "kirby", "X-SLURM-USER-TOKEN": credentials.token}


def test_minted_tokens_are_cached_per_user_until_shortly_before_expiry(key_file):
    clock = Clock()
    tokens = MintedTokens(key_file, "jarvice", lifespan=600, clock=clock)
    first = tokens.credentials("kirby").token
    assert tokens.credentials("kirby").token == first
    assert tokens.credentials("mario").token != first
    assert tokens.minted == 2
    clock.now += 600 - 61
    assert tokens.credentials("kirby").token == first, "still more than the margin (60 s) to live"
    clock.now += 2
    assert tokens.credentials("kirby").token != first, "renewed within the margin"
    assert tokens.minted == 3


def test_tokens_never_in_repr_or_description(key_file):
    tokens = MintedTokens(key_file, "jarvice", clock=Clock())
    credentials = tokens.credentials("kirby")
    assert credentials.token not in repr(credentials)
    static = StaticToken(token(), clock=Clock())
    for text in (tokens.describe(), static.describe(), tokens.hint(), static.hint()):
        assert KEY.decode() not in text and credentials.token not in text and token() not in text


def test_key_file_problems_are_settings_errors(tmp_path):
    with pytest.raises(SettingsError, match="cannot be read"):
        MintedTokens(str(tmp_path / "missing"), "jarvice")
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    with pytest.raises(SettingsError, match="too short"):
        MintedTokens(str(short), "jarvice")


def test_static_token_names_its_user_and_expires_loudly():
    clock = Clock()
    value = token("slurm", exp_in=100)
    static = StaticToken(value, clock=clock)
    assert static.service_user == "slurm"
    assert static.credentials("kirby").user == "kirby", "the user header names who it acts for"
    clock.now += 101
    with pytest.raises(TokenRefused) as refused:
        static.credentials("kirby")
    assert "token mode static" in refused.value.message and "expired at" in refused.value.message
    assert value not in refused.value.message


def test_static_token_without_a_user_needs_the_setting():
    anonymous = jwt.encode({"exp": 2_000_000_000}, KEY, algorithm="HS256")
    with pytest.raises(SettingsError, match="JARVICE_SLURMRESTD_USER"):
        StaticToken(anonymous)
    assert StaticToken(anonymous, "jarvice").service_user == "jarvice"


def test_bearer_passed_on_then_remembered_while_valid():
    clock = Clock()
    bearers = PassedBearers(StaticToken(token("jarvice", exp_in=10_000), clock=clock), clock=clock)
    portal = token("kirby", exp_in=300, email="kirby@example.org")
    assert bearers.credentials("kirby", "Bearer " + portal).token == portal
    assert bearers.credentials("kirby").token == portal, "remembered for later operations"
    clock.now += 400
    later = bearers.credentials("kirby")
    assert (later.user, later.token) == ("jarvice", token("jarvice", exp_in=10_000)), "the service account"
    assert bearers.service().user == "jarvice"


def test_expired_bearer_is_refused_without_showing_it():
    clock = Clock()
    bearers = PassedBearers(StaticToken(token("jarvice"), clock=clock), clock=clock)
    stale = token("kirby", exp_in=-5)
    with pytest.raises(TokenRefused) as refused:
        bearers.credentials("kirby", stale)
    assert "token mode bearer" in refused.value.message and stale not in refused.value.message


def settings(**values):
    return Settings.from_env({"JARVICE_SLURMRESTD_ADDR": "rest.example.org", **values})


def test_settings_defaults_and_choices(key_file):
    rest = RestSettings.from_settings(settings(JARVICE_SLURMRESTD_JWT_KEY_FILE=key_file,
                                               JARVICE_SLURM_SSH_USER="jarvice"))
    assert (rest.url, rest.token_mode, rest.service_user, rest.api_version) == (
        "http://rest.example.org:6820", "mint", "jarvice", None)
    assert rest.job_path == "/usr/local/bin:/usr/bin:/bin" and rest.output_access == "none"
    assert isinstance(token_source(rest), MintedTokens)
    static = RestSettings.from_settings(settings(JARVICE_SLURMRESTD_TOKEN_MODE="static",
                                                 SLURM_JWT="SLURM_JWT=" + token()))
    assert static.static_token == token(), "scontrol token's output is taken as it is printed"
    assert isinstance(token_source(static), StaticToken)
    bearer = RestSettings.from_settings(settings(JARVICE_SLURMRESTD_TOKEN_MODE="bearer",
                                                 JARVICE_SLURMRESTD_TOKEN=token()))
    assert isinstance(token_source(bearer), PassedBearers)


@pytest.mark.parametrize(("values", "words"), [
    ({}, "JARVICE_SLURMRESTD_JWT_KEY_FILE"),
    ({"JARVICE_SLURMRESTD_TOKEN_MODE": "static"}, "JARVICE_SLURMRESTD_TOKEN"),
    ({"JARVICE_SLURMRESTD_TOKEN_MODE": "magic"}, "one of mint, bearer, static"),
    ({"JARVICE_SLURMRESTD_API_VERSION": "latest"}, "v0.0.38"),
    ({"JARVICE_SLURMRESTD_OUTPUT_ACCESS": "nfs"}, "none, ssh, shared"),
])
def test_settings_refused_with_a_sentence(values, words):
    with pytest.raises(SettingsError, match=words):
        RestSettings.from_settings(settings(**values))


def test_missing_address_is_refused():
    with pytest.raises(SettingsError, match="JARVICE_SLURMRESTD_ADDR"):
        RestSettings.from_settings(Settings.from_env({}))


def test_api_version_spellings():
    assert api_version("0.0.40") == api_version("v0.0.40") == "v0.0.40"


def test_mint_needs_a_service_account(key_file):
    rest = RestSettings.from_settings(settings(JARVICE_SLURMRESTD_JWT_KEY_FILE=key_file))
    with pytest.raises(SettingsError, match="JARVICE_SLURMRESTD_USER"):
        token_source(rest)


def test_minting_is_thread_safe(key_file):
    import threading

    tokens = MintedTokens(key_file, "jarvice", clock=time.time)
    seen = set()

    def work():
        for _ in range(50):
            seen.add(tokens.credentials("kirby").token)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 1 and tokens.minted == 1
