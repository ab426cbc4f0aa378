"""Upstream's bearer: which portal user a submission is for, read from a JWT and, when DSSR
knows whose keys sign it, checked.

Upstream is authenticated by HTTP Basic (``JARVICE_SCHED_SERVER_KEY``); the bearer it adds to a
submission names the portal user, and so the cluster account the job runs as. Its signature,
issuer, audience and expiry are checked against the identity provider's public keys (a JWKS)
when one of these is set:

- ``DSSR_BEARER_JWKS_URL`` (or ``DSSR_BEARER_JWKS_FILE``) with ``DSSR_BEARER_ISSUER``;
- or the chart's ``JARVICE_KEYCLOAK_TOKEN_URL``: the keys are then the realm's
  (``.../protocol/openid-connect/certs``) and the issuer the realm's URL.

Keys are fetched with PyJWT's JWKS client, cached for :data:`KEYS_LIFESPAN_S` and fetched again
when a bearer names a key id the cache lacks (the provider rotated its keys). With none of the
settings, the claims are read unchecked, as the original DSSR did, and the init report says so.
"""

import logging
import re
import ssl
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime

import attrs
import jwt

from dssr_core import metrics
from dssr_core.declarations import Setting
from dssr_core.errors import InvalidRequest, ProviderUnavailable, SettingsError, Unauthorized

log = logging.getLogger(__name__)

EMAIL_CLAIMS = ("email", "mail", "preferred_username", "upn")
#: Only public-key signatures: an HMAC bearer would be checked with a public key as its secret.
PUBLIC_KEY_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                         "EdDSA")
#: How long fetched keys are used before they are fetched again.
KEYS_LIFESPAN_S = 300
#: An unknown key id fetches the keys again at most this often (forged key ids cannot flood the provider).
REFETCH_COOLDOWN_S = 10
#: Seconds of clock difference tolerated on ``exp`` and ``nbf``.
LEEWAY_S = 5
KEYS_TIMEOUT_S = 10
_KEYCLOAK_TOKEN_PATH = re.compile(r"^(?P<realm>.*/realms/[^/]+)/protocol/openid-connect/token/?$")

KEYCLOAK_TOKEN_URL = Setting(
    "JARVICE_KEYCLOAK_TOKEN_URL", "the portal realm's token endpoint (`<keycloak>/realms/<realm>/protocol/"
    "openid-connect/token`, as the chart sets it): slurmrestd's service tokens come from it, and without "
    "`DSSR_BEARER_JWKS_URL` upstream's bearers are checked against that realm's keys and issuer")
JWKS_URL = Setting(
    "DSSR_BEARER_JWKS_URL", "the JWKS (public keys) of the provider that signs upstream's bearers; when set, "
    "a bearer whose signature, issuer, audience or expiry fails gets 401",
    default_text="the realm's `.../protocol/openid-connect/certs` when `JARVICE_KEYCLOAK_TOKEN_URL` is set, "
    "else unset: bearers are not checked")
JWKS_FILE = Setting("DSSR_BEARER_JWKS_FILE", "the same keys as a JWKS file, read again when a bearer names a "
                    "key it lacks", kind="path")
ISSUER = Setting("DSSR_BEARER_ISSUER", "the `iss` a checked bearer must carry",
                 default_text="the realm's URL with `JARVICE_KEYCLOAK_TOKEN_URL`; required with the two "
                 "above")
AUDIENCE = Setting("DSSR_BEARER_AUDIENCE", "`aud` values, one of which a checked bearer must carry",
                   kind="list", default=(), default_text="not checked")
SETTINGS = (KEYCLOAK_TOKEN_URL, JWKS_URL, JWKS_FILE, ISSUER, AUDIENCE)


@attrs.frozen
class Bearer:
    """Upstream's bearer: the token, its claims, and whether its signature was checked."""

    token: str = attrs.field(repr=False)
    claims: Mapping = attrs.field(repr=False)
    checked: bool

    @property
    def email(self) -> str | None:
        """The portal user's e-mail (``email``, ``mail``, or an e-mail in ``preferred_username``)."""
        for claim in EMAIL_CLAIMS:
            value = self.claims.get(claim)
            if isinstance(value, str) and "@" in value:
                return value.strip().lower()
        return None


class BearerCheck:
    """Reads upstream's bearer, checked against ``keys`` when given, else unchecked."""

    def __init__(self, keys=None, issuer: str | None = None, audience: tuple[str, ...] = (),
                 origin: str = "", why_unchecked: str = ""):
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.origin = origin  # the setting the keys come from, for the report
        self.why_unchecked = why_unchecked

    @classmethod
    def from_settings(cls, settings) -> "BearerCheck":
        """The check the settings ask for; SettingsError when keys are named without an issuer."""
        url, path = settings.read(JWKS_URL), settings.read(JWKS_FILE)
        issuer, audience = settings.read(ISSUER), settings.read(AUDIENCE)
        if url and path:
            raise SettingsError("Set DSSR_BEARER_JWKS_URL or DSSR_BEARER_JWKS_FILE, not both: they name the "
                                "keys that sign upstream's bearers.")
        realm = keycloak_realm(settings.read(KEYCLOAK_TOKEN_URL))
        if url or path:
            if not issuer and realm is None:
                name = "DSSR_BEARER_JWKS_URL" if url else "DSSR_BEARER_JWKS_FILE"
                raise SettingsError(f"{name} needs DSSR_BEARER_ISSUER: the iss of the bearers these keys "
                                    "sign (a key set alone would accept any token those keys ever signed).")
            keys = UrlKeys(url, ca_bundle=_ca_bundle(settings)) if url else FileKeys(path)
            origin = "DSSR_BEARER_JWKS_URL" if url else "DSSR_BEARER_JWKS_FILE"
        elif realm is not None:
            keys = UrlKeys(realm + "/protocol/openid-connect/certs", ca_bundle=_ca_bundle(settings))
            origin = "JARVICE_KEYCLOAK_TOKEN_URL"
        else:
            if issuer or audience:
                log.warning("DSSR_BEARER_ISSUER and DSSR_BEARER_AUDIENCE do nothing without "
                            "DSSR_BEARER_JWKS_URL, DSSR_BEARER_JWKS_FILE or JARVICE_KEYCLOAK_TOKEN_URL: "
                            "bearers are not checked")
            if settings.read(KEYCLOAK_TOKEN_URL) is not None:
                return cls(why_unchecked="JARVICE_KEYCLOAK_TOKEN_URL is not a Keycloak realm's token "
                           "endpoint, so its keys are not known")
            return cls()
        return cls(keys, issuer or realm, audience, origin)

    def read(self, bearer: object) -> Bearer | None:
        """The bearer of a submission: None when upstream sent none; InvalidRequest when it is not
        a JWT; Unauthorized when a check fails; ProviderUnavailable when the keys cannot be fetched.
        Each refusal is counted by reason (``dssr_bearer_refused_total``)."""
        if bearer in (None, ""):
            return None
        try:
            return self._read(bearer)
        except InvalidRequest:
            metrics.BEARER_REFUSED.labels("malformed").inc()
            raise
        except ProviderUnavailable:
            metrics.BEARER_REFUSED.labels("keys_unavailable").inc()
            raise
        except Unauthorized as error:
            metrics.BEARER_REFUSED.labels(getattr(error, "reason", "other")).inc()
            raise

    def _read(self, bearer: object) -> Bearer:
        token = token_text(bearer)
        if self.keys is None:
            return Bearer(token, unchecked_claims(token), checked=False)
        return Bearer(token, self._checked_claims(token), checked=True)

    def describe(self, decides_account: bool = True) -> str:
        """For the init report, in plain words; ``decides_account``: whether the connector runs
        a job as the cluster account that upstream's bearer names."""
        if self.keys is None:
            why = f"; {self.why_unchecked}" if self.why_unchecked else ""
            if not decides_account:
                return (f"not checked{why}; this connector runs every job as one account, whatever "
                        "upstream's bearer says")
            return ("NOT CHECKED: upstream's bearer decides which cluster account a job runs as, and its "
                    f"signature is not checked{why} (set DSSR_BEARER_JWKS_URL and DSSR_BEARER_ISSUER, or "
                    "JARVICE_KEYCLOAK_TOKEN_URL)")
        audience = ", ".join(self.audience) if self.audience else "not checked"
        return (f"checked against the keys of {self.keys.where} ({self.origin}), issuer {self.issuer}, "
                f"audience {audience}; public-key signatures only, and every bearer must expire")

    def _checked_claims(self, token: str) -> dict:
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm not in PUBLIC_KEY_ALGORITHMS:
            raise _refused("signature", f"Upstream's bearer is signed with {_shown(algorithm)}; DSSR "
                           "accepts only public-key signatures (RS256, ES256, ...) that the keys of "
                           f"{self.keys.where} check.")
        key = self.keys.key_for(header.get("kid"))
        try:
            claims = jwt.decode(token, key.key, algorithms=[algorithm], issuer=self.issuer,
                                audience=list(self.audience) or None, leeway=LEEWAY_S,
                                options={"require": ["exp", "iss"], "verify_aud": bool(self.audience)})
        except jwt.PyJWTError as error:
            raise _refused(_REASONS.get(type(error), "other"), self._refusal(token, error)) from None
        return claims if isinstance(claims, dict) else {}

    def _refusal(self, token: str, error: jwt.PyJWTError) -> str:
        claims = unchecked_claims(token)
        if isinstance(error, jwt.ExpiredSignatureError):
            return (f"Upstream's bearer expired at {_when(claims.get('exp'))}; the portal must send a "
                    "fresh one.")
        if isinstance(error, jwt.MissingRequiredClaimError):
            return (f"Upstream's bearer has no {error.claim} claim; DSSR accepts only bearers that expire "
                    "and name their issuer.")
        if isinstance(error, jwt.InvalidIssuerError):
            return (f"Upstream's bearer was issued by {_shown(claims.get('iss'))}, not by {self.issuer} "
                    f"(DSSR_BEARER_ISSUER).")
        if isinstance(error, jwt.InvalidAudienceError):
            return (f"Upstream's bearer is for the audience {_shown(claims.get('aud'))}, not for "
                    f"{', '.join(self.audience)} (DSSR_BEARER_AUDIENCE).")
        if isinstance(error, jwt.ImmatureSignatureError):
            return "Upstream's bearer is not valid yet (nbf or iat in the future): check the clocks."
        if isinstance(error, jwt.InvalidSignatureError):
            return (f"Upstream's bearer does not carry a valid signature of the key it names at "
                    f"{self.keys.where}: it was not signed by the portal's identity provider.")
        return f"Upstream's bearer fails its check against {self.keys.where} ({type(error).__name__})."


class UrlKeys:
    """The provider's keys from its JWKS URL, through PyJWT's client (cached, fetched again for a
    key id it lacks, at most every :data:`REFETCH_COOLDOWN_S` seconds)."""

    def __init__(self, url: str, *, cooldown: float = REFETCH_COOLDOWN_S, timeout: float = KEYS_TIMEOUT_S,
                 ca_bundle: str | None = None):
        check_url(url, "DSSR_BEARER_JWKS_URL")
        self.where = url
        self._client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=KEYS_LIFESPAN_S, timeout=timeout,
                                       cooldown_duration=cooldown, ssl_context=_ssl_context(ca_bundle))

    def key_for(self, kid: object) -> jwt.PyJWK:
        _check_kid(kid, self.where)
        try:
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as error:
            raise ProviderUnavailable(f"DSSR cannot fetch the keys that check upstream's bearer from "
                                      f"{self.where} ({_reason(error)}); the identity provider must be "
                                      "reachable.") from None
        except jwt.PyJWKClientError:
            raise _refused("unknown_key", _unknown_key(kid, self.where)) from None
        except jwt.PyJWTError:
            raise ProviderUnavailable(f"{self.where} does not answer a usable JWKS, so DSSR cannot check "
                                      "upstream's bearer.") from None


class FileKeys:
    """The provider's keys from a JWKS file, read again when a bearer names a key it lacks."""

    def __init__(self, path: str):
        self.where = path
        self._keys: dict[str, jwt.PyJWK] = {}

    def key_for(self, kid: object) -> jwt.PyJWK:
        _check_kid(kid, self.where)
        if kid not in self._keys:
            self._keys = self._read()
        if kid not in self._keys:
            raise _refused("unknown_key", _unknown_key(kid, self.where))
        return self._keys[kid]

    def _read(self) -> dict[str, jwt.PyJWK]:
        try:
            with open(self.where, encoding="utf-8") as handle:
                keys = jwt.PyJWKSet.from_json(handle.read()).keys
        except OSError as error:
            raise ProviderUnavailable(f"DSSR_BEARER_JWKS_FILE {self.where} cannot be read "
                                      f"({error.strerror}), so DSSR cannot check upstream's "
                                      "bearer.") from None
        except (jwt.PyJWTError, ValueError):
            raise ProviderUnavailable(f"DSSR_BEARER_JWKS_FILE {self.where} is not a JWKS with a usable key, "
                                      "so DSSR cannot check upstream's bearer.") from None
        return {key.key_id: key for key in keys if key.key_id and key.public_key_use in ("sig", None)}


# Reading tokens ----------------------------------------------------------------------------


def token_text(bearer: object) -> str:
    """The JWT of a bearer (``Bearer `` prefix dropped); InvalidRequest when it cannot be one."""
    if not isinstance(bearer, str):
        raise InvalidRequest("bearer must be a JWT string or null.")
    token = bearer.removeprefix("Bearer ").strip()
    if not token.isascii() or token.count(".") != 2:
        raise InvalidRequest("bearer is not a well-formed JWT.")
    return token


def unchecked_claims(token: str) -> dict:
    """The claims of a JWT, signature not checked; InvalidRequest when it is not a JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidRequest("bearer is not a well-formed JWT.") from None
    return claims if isinstance(claims, dict) else {}


def keycloak_realm(token_url: str | None) -> str | None:
    """``https://kc/realms/jarvice/protocol/openid-connect/token`` -> ``https://kc/realms/jarvice``;
    None for None and for a token URL that is not a Keycloak realm's."""
    if token_url is None:
        return None
    check_url(token_url, "JARVICE_KEYCLOAK_TOKEN_URL")
    match = _KEYCLOAK_TOKEN_PATH.match(token_url.split("?", 1)[0])
    return match.group("realm") if match else None


def check_url(url: str, name: str) -> None:
    """An http(s) URL with a host and no user name or password in it (it would show in logs)."""
    parts = urllib.parse.urlsplit(url)
    if "@" in parts.netloc:
        raise SettingsError(f"{name} must not carry a user name or password (value not shown).")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an http:// or https:// URL, not {url!r}.")


def _ca_bundle(settings) -> str | None:
    """The CA bundle the chart gives the pod (``REQUESTS_CA_BUNDLE``), which urllib would not read."""
    return settings.raw("REQUESTS_CA_BUNDLE") or settings.raw("SSL_CERT_FILE")


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext | None:
    if not ca_bundle:
        return None
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError):
        raise SettingsError(f"REQUESTS_CA_BUNDLE {ca_bundle} cannot be read as CA certificates, so DSSR "
                            "cannot fetch the keys that check upstream's bearer over HTTPS.") from None


#: The reason label of PyJWT's refusals (:data:`dssr_core.metrics.BEARER_REFUSALS`).
_REASONS = {jwt.ExpiredSignatureError: "expired", jwt.ImmatureSignatureError: "expired",
            jwt.MissingRequiredClaimError: "malformed", jwt.InvalidIssuerError: "issuer",
            jwt.InvalidAudienceError: "audience", jwt.InvalidSignatureError: "signature",
            jwt.DecodeError: "malformed"}


def _refused(reason: str, message: str) -> Unauthorized:
    """A refusal, with its reason label for ``dssr_bearer_refused_total``."""
    error = Unauthorized(message)
    error.reason = reason
    return error


def _header(token: str) -> dict:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidRequest("bearer is not a well-formed JWT.") from None


def _check_kid(kid: object, where: str) -> None:
    if not isinstance(kid, str) or not kid:
        raise _refused("unknown_key", "Upstream's bearer names no key (no kid in its header), so the keys "
                       f"of {where} cannot check it.")


def _unknown_key(kid: str, where: str) -> str:
    return (f"Upstream's bearer is signed by the key {_shown(kid)}, which {where} does not publish: it was "
            "not signed by the portal's identity provider.")


def _reason(error: Exception) -> str:
    """Why urllib could not fetch the keys, in a few words (its own text nests reprs)."""
    text = str(error)
    status = re.search(r"HTTP Error (\d{3})", text)
    if status:
        return f"HTTP {status.group(1)}"
    lowered = text.lower()
    reasons = (("certificate verify failed", "its TLS certificate is not trusted: see REQUESTS_CA_BUNDLE"),
               ("refused", "connection refused"), ("timed out", "timed out"),
               ("name or service", "unknown host name"), ("name resolution", "unknown host name"))
    for words, reason in reasons:
        if words in lowered:
            return reason
    return "the connection failed"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _when(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "an unknown time"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
