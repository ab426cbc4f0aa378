"""Upstream's bearer: read unchecked when DSSR knows no keys (as the original), and checked,
signature, issuer, audience and expiry, against a JWKS file or URL when it does.

The keys are real RSA keys (cryptography), the JWKS is served by a real HTTP server on
127.0.0.1, and PyJWT's JWKS client fetches it: nothing here is imitated. The end-to-end proof
with a real OpenID Connect provider and Slurm is tests/dssr_slurm/test_identity_e2e.py.
"""

import hashlib
import hmac
import json
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

import dssr_core
from dssr_core.app import create_app
from dssr_core.bearer import BearerCheck, UrlKeys
from dssr_core.errors import InvalidRequest, ProviderUnavailable, SettingsError, Unauthorized
from dssr_core.models import SubmitResult
from dssr_core.report import init_report
from dssr_core.settings import Settings
from dssr_core.shell import ShellExecutor
from dssr_core.testing import ApiClient, shell_template
from dssr_core.testing.plugin import find_free_port

ISSUER = "https://keycloak.example.org/realms/jarvice"
TOKEN_URL = ISSUER + "/protocol/openid-connect/token"


class SigningKey:
    """An RSA (or EC) key with a kid, as a provider holds it."""

    def __init__(self, kid: str, curve: bool = False):
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1()) if curve else rsa.generate_private_key(
            public_exponent=65537, key_size=2048)
        self.algorithm = "ES256" if curve else "RS256"

    def jwk(self) -> dict:
        algorithm = ECAlgorithm if self.algorithm == "ES256" else RSAAlgorithm
        return {**json.loads(algorithm.to_jwk(self.private.public_key())), "kid": self.kid,
                "alg": self.algorithm, "use": "sig"}

    def token(self, kid: str | None = None, **claims) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "iat": now, "exp": now + 300, "email": "kirby@example.org", **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid})

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


def jwks(*keys: SigningKey) -> str:
    return json.dumps({"keys": [key.jwk() for key in keys]})


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts its fetches; ``keys`` can change (rotation)."""

    def __init__(self, *keys: SigningKey):
        self.keys = list(keys)
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                body = jwks(*server.keys).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/realms/jarvice/protocol/openid-connect/certs"
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def key():
    return SigningKey("key-1")


@pytest.fixture
def jwks_file(tmp_path, key):
    path = tmp_path / "jwks.json"
    path.write_text(jwks(key))
    return path


@pytest.fixture
def check(jwks_file):
    return BearerCheck.from_settings(Settings.from_env({"DSSR_BEARER_JWKS_FILE": str(jwks_file),
                                                        "DSSR_BEARER_ISSUER": ISSUER}))


@pytest.fixture
def server(key):
    jwks_server = JwksServer(key)
    yield jwks_server
    jwks_server.close()


# Nothing set: as the original, and said plainly ----------------------------------------------


def test_without_keys_the_claims_are_read_unchecked_and_the_report_says_so(key):
    check = BearerCheck.from_settings(Settings.from_env({}))
    bearer = check.read("Bearer " + key.token(email="JDoe@Example.org"))
    assert (bearer.email, bearer.checked) == ("jdoe@example.org", False)
    assert check.read(None) is None and check.read("") is None
    assert check.describe().startswith("NOT CHECKED: upstream's bearer decides which cluster account a job "
                                       "runs as, and its signature is not checked")


def test_a_bearer_that_is_no_jwt_is_refused_with_400_checked_or_not(check):
    for reader in (BearerCheck(), check):
        for bearer in ("not-a-jwt", 42, "a.b.c", "eyJ\udc80.x.y", "Bearer"):
            with pytest.raises(InvalidRequest, match="bearer (is not a well-formed JWT|must be a JWT)"):
                reader.read(bearer)


def test_a_bearer_without_an_email_claim_has_no_email():
    bearer = BearerCheck().read(jwt.encode({"preferred_username": "kirby"}, "k" * 32, algorithm="HS256"))
    assert bearer.email is None and bearer.claims["preferred_username"] == "kirby"


# Settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "words"), [
    ({"DSSR_BEARER_JWKS_URL": "https://idp/jwks"}, "DSSR_BEARER_JWKS_URL needs DSSR_BEARER_ISSUER"),
    ({"DSSR_BEARER_JWKS_FILE": "/x.json"}, "DSSR_BEARER_JWKS_FILE needs DSSR_BEARER_ISSUER"),
    ({"DSSR_BEARER_JWKS_URL": "https://idp/jwks", "DSSR_BEARER_JWKS_FILE": "/x", "DSSR_BEARER_ISSUER": "i"},
     "not both"),
    ({"DSSR_BEARER_JWKS_URL": "file:///etc/passwd", "DSSR_BEARER_ISSUER": "i"}, "http:// or https:// URL"),
    ({"DSSR_BEARER_JWKS_URL": "https://admin:pw@idp/", "DSSR_BEARER_ISSUER": "i"}, "user name or password"),
])
def test_settings_that_cannot_check_anything_are_refused_with_a_sentence(env, words):
    with pytest.raises(SettingsError, match=words) as refused:
        BearerCheck.from_settings(Settings.from_env(env))
    assert "pw@" not in refused.value.message


def test_the_keycloak_token_url_gives_the_realms_keys_and_issuer():
    check = BearerCheck.from_settings(Settings.from_env({"JARVICE_KEYCLOAK_TOKEN_URL": TOKEN_URL}))
    assert check.keys.where == ISSUER + "/protocol/openid-connect/certs"
    assert check.issuer == ISSUER
    assert check.describe() == (f"checked against the keys of {ISSUER}/protocol/openid-connect/certs "
                                f"(JARVICE_KEYCLOAK_TOKEN_URL), issuer {ISSUER}, audience not checked; "
                                "public-key signatures only, and every bearer must expire")
    named = BearerCheck.from_settings(Settings.from_env({
        "JARVICE_KEYCLOAK_TOKEN_URL": TOKEN_URL, "DSSR_BEARER_JWKS_URL": "https://idp.example.org/certs",
        "DSSR_BEARER_ISSUER": "https://portal.example.org/realms/jarvice",
        "DSSR_BEARER_AUDIENCE": "jarvice,x"}))
    assert (named.keys.where, named.issuer, named.audience) == (
        "https://idp.example.org/certs", "https://portal.example.org/realms/jarvice", ("jarvice", "x"))


def test_a_token_url_that_is_no_keycloak_realm_leaves_bearers_unchecked_and_says_why():
    check = BearerCheck.from_settings(Settings.from_env({"JARVICE_KEYCLOAK_TOKEN_URL": "https://idp/oauth2/token"}))
    assert check.keys is None
    assert "JARVICE_KEYCLOAK_TOKEN_URL is not a Keycloak realm's token endpoint" in check.describe()


# Checked against a JWKS file ---------------------------------------------------------------------


def test_a_bearer_signed_by_the_providers_key_is_read_checked(check, key):
    bearer = check.read(key.token(preferred_username="kirby"))
    assert bearer.checked and bearer.email == "kirby@example.org"
    assert bearer.claims["preferred_username"] == "kirby"


def test_an_ec_key_of_the_set_checks_its_bearers(tmp_path):
    curve = SigningKey("ec-1", curve=True)
    (tmp_path / "ec.json").write_text(jwks(curve))
    check = BearerCheck.from_settings(Settings.from_env({"DSSR_BEARER_JWKS_FILE": str(tmp_path / "ec.json"),
                                                        "DSSR_BEARER_ISSUER": ISSUER}))
    assert check.read(curve.token()).checked


def test_a_bearer_signed_by_another_key_under_the_providers_kid_is_refused(check):
    forger = SigningKey("key-1")  # the provider's kid, the forger's key
    words = "does not carry a valid signature of the key it names at .*jwks.json: it was not signed by"
    with pytest.raises(Unauthorized, match=words):
        check.read(forger.token(email="mario@example.org"))


def test_a_bearer_signed_by_a_key_the_provider_does_not_publish_is_refused(check):
    with pytest.raises(Unauthorized, match="signed by the key 'mine', which .*jwks.json does not publish"):
        check.read(SigningKey("mine").token())


@pytest.mark.parametrize(("token", "words"), [
    (lambda key: key.token(exp=int(time.time()) - 60),
     r"expired at 20\d\d-\d\d-\d\d .* UTC; the portal must send"),
    (lambda key: key.token(iss="https://evil.example.org/realms/jarvice"),
     "issued by 'https://evil.example.org/realms/jarvice', not by https://keycloak.example.org/realms/jarvice"),
    (lambda key: key.token(exp=None), "has no exp claim; DSSR accepts only bearers that expire"),
    (lambda key: key.token(iss=None), "has no iss claim"),
    (lambda key: key.token(nbf=int(time.time()) + 600), "not valid yet"),
    (lambda key: jwt.encode({"iss": ISSUER, "exp": int(time.time()) + 60}, None, algorithm="none",
                            headers={"kid": "key-1"}), "signed with 'none'; DSSR accepts only public-key"),
])
def test_a_bearer_that_fails_a_check_is_refused_with_a_sentence(check, key, token, words):
    with pytest.raises(Unauthorized, match=words):
        check.read(token(key))


def test_an_hmac_bearer_keyed_with_the_public_key_is_refused(check, key):
    # The classic confusion: HS256 with the provider's public key as the shared secret.
    header = {"alg": "HS256", "kid": "key-1", "typ": "JWT"}
    payload = {"iss": ISSUER, "exp": int(time.time()) + 60, "email": "mario@example.org"}
    signing_input = b".".join(jwt.utils.base64url_encode(json.dumps(part).encode())
                              for part in (header, payload))
    signature = hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()
    with pytest.raises(Unauthorized, match="signed with 'HS256'"):
        check.read(token)


def test_the_audience_is_checked_when_one_is_named(jwks_file, key):
    check = BearerCheck.from_settings(Settings.from_env({
        "DSSR_BEARER_JWKS_FILE": str(jwks_file), "DSSR_BEARER_ISSUER": ISSUER,
        "DSSR_BEARER_AUDIENCE": "jarvice-portal, jarvice"}))
    assert check.read(key.token(aud=["account", "jarvice"])).checked
    with pytest.raises(Unauthorized, match=r"for the audience \['account'\], not for jarvice-portal, jarvice "
                                           r"\(DSSR_BEARER_AUDIENCE\)"):
        check.read(key.token(aud=["account"]))
    with pytest.raises(Unauthorized, match="has no aud claim"):
        check.read(key.token())


def test_the_file_is_read_again_for_a_key_it_lacked(jwks_file, check, key):
    assert check.read(key.token()).checked
    rotated = SigningKey("key-2")
    jwks_file.write_text(jwks(key, rotated))
    assert check.read(rotated.token()).checked


def test_an_unreadable_key_file_is_a_503_sentence(tmp_path, key):
    check = BearerCheck.from_settings(Settings.from_env({"DSSR_BEARER_JWKS_FILE": str(tmp_path / "gone.json"),
                                                        "DSSR_BEARER_ISSUER": ISSUER}))
    with pytest.raises(ProviderUnavailable, match="gone.json cannot be read .*so DSSR cannot check"):
        check.read(key.token())


# Checked against a JWKS URL (PyJWT's client) ------------------------------------------------------


def test_keys_are_fetched_once_and_cached(server, key):
    check = BearerCheck(UrlKeys(server.url), ISSUER)
    for _ in range(5):
        assert check.read(key.token()).checked
    assert server.fetches == 1


def test_a_rotated_key_is_fetched_when_a_bearer_names_it(server, key):
    check = BearerCheck(UrlKeys(server.url, cooldown=0), ISSUER)
    assert check.read(key.token()).checked
    rotated = SigningKey("key-2")
    server.keys = [rotated]
    assert check.read(rotated.token()).checked
    assert server.fetches == 2


def test_unknown_key_ids_fetch_the_keys_again_at_most_once_a_cooldown(server, key):
    check = BearerCheck(UrlKeys(server.url, cooldown=60), ISSUER)
    assert check.read(key.token()).checked
    for kid in ("forged-1", "forged-2", "forged-3"):
        with pytest.raises(Unauthorized, match=f"signed by the key '{kid}', which .* does not publish"):
            check.read(SigningKey(kid).token())
    assert server.fetches == 1


def test_an_unreachable_provider_is_a_503_sentence(key):
    url = f"http://127.0.0.1:{find_free_port()}/realms/jarvice/protocol/openid-connect/certs"
    check = BearerCheck(UrlKeys(url), ISSUER)
    with pytest.raises(ProviderUnavailable) as refused:
        check.read(key.token())
    assert refused.value.message == (f"DSSR cannot fetch the keys that check upstream's bearer from {url} "
                                     "(connection refused); the identity provider must be reachable.")


# Through the HTTP API -------------------------------------------------------------------------


class RecordingConnector(dssr_core.Connector):
    """Only records submissions: a refused bearer must not reach it. The rest is never asked."""

    name = "recording"

    def __init__(self):
        self.submissions = []

    def submit(self, submission):
        self.submissions.append(submission)
        return SubmitResult("1", submission.script)

    def check(self):
        return "fine"

    def _never(self, *args):
        raise AssertionError("only /submit is asked here")

    running = queued = runstatus = exitstatus = terminate = release = _never


def test_a_refused_bearer_is_401_and_the_connector_never_hears_of_the_job(jwks_file, key):
    settings = Settings.from_env({"DSSR_BEARER_JWKS_FILE": str(jwks_file), "DSSR_BEARER_ISSUER": ISSUER})
    connector = RecordingConnector()
    api = ApiClient.for_app(create_app(settings, connector, ShellExecutor(settings), executor_name="shell"))
    forged = SigningKey("key-1").token(email="mario@example.org")
    answer = api.submit("job-1", shell_template("true"), bearer=forged)
    assert answer.status == 401
    assert "it was not signed by the portal's identity provider" in answer.json["description"]
    assert forged not in answer.text and connector.submissions == []
    answer = api.submit("job-1", shell_template("true"), bearer=key.token(preferred_username="kirby"))
    assert answer.status == 200
    submitted = connector.submissions[0]
    assert submitted.user_email == "kirby@example.org"
    assert submitted.bearer_claims["preferred_username"] == "kirby"


def test_the_init_report_says_whether_bearers_are_checked(jwks_file):
    def report(env, decides_account=True):
        settings = Settings.from_env(env)
        backend = type("Backend", (), {"name": "recording", "distribution": "tests", "version": "0"})
        connector = RecordingConnector()
        connector.bearer_decides_account = decides_account
        lines, _ = init_report(settings, backend, backend, connector, ShellExecutor(settings))
        return next(line for line in lines if line.startswith("bearer signatures: "))

    assert report({}).startswith("bearer signatures: NOT CHECKED: upstream's bearer decides which cluster "
                                 "account")
    # A connector that runs every job as one account (dummy) is not said to map bearers to accounts.
    assert report({}, decides_account=False) == (
        "bearer signatures: not checked; this connector runs every job as one account, whatever "
        "upstream's bearer says")
    assert report({"DSSR_BEARER_JWKS_FILE": str(jwks_file), "DSSR_BEARER_ISSUER": ISSUER}) == (
        f"bearer signatures: checked against the keys of {jwks_file} (DSSR_BEARER_JWKS_FILE), issuer "
        f"{ISSUER}, audience not checked; public-key signatures only, and every bearer must expire")


def test_the_pods_ca_bundle_checks_the_providers_certificate(tmp_path, key):
    # A provider behind TLS with a private CA: the chart's REQUESTS_CA_BUNDLE names it.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                    str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.pem")],
                   check=True, capture_output=True)
    server = JwksServer(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls.pem", tmp_path / "tls.key")
    server.http.socket = context.wrap_socket(server.http.socket, server_side=True)
    url = server.url.replace("http://", "https://")
    try:
        trusted = BearerCheck(UrlKeys(url, ca_bundle=str(tmp_path / "tls.pem")), ISSUER)
        assert trusted.read(key.token()).checked
        with pytest.raises(ProviderUnavailable, match=r"\(its TLS certificate is not trusted: see REQ"):
            BearerCheck(UrlKeys(url), ISSUER).read(key.token())
    finally:
        server.close()
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(SettingsError, match="REQUESTS_CA_BUNDLE .*bad.pem cannot be read as CA certificates"):
        BearerCheck.from_settings(Settings.from_env({"JARVICE_KEYCLOAK_TOKEN_URL": TOKEN_URL,
                                                     "REQUESTS_CA_BUNDLE": str(tmp_path / "bad.pem")}))
