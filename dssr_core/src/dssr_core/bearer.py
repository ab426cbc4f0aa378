"""The portal user's e-mail, read from upstream's bearer token.

Upstream is authenticated by HTTP Basic; the bearer only says which portal user the job is
for, so its signature is not checked here (DSSR does not hold the portal's keys).
"""

import jwt

from dssr_core.errors import InvalidRequest

EMAIL_CLAIMS = ("email", "mail", "preferred_username", "upn")


def email_from_bearer(bearer: object) -> str | None:
    """The e-mail claim of a JWT; ``None`` for no token; InvalidRequest for a bad one."""
    if bearer in (None, ""):
        return None
    if not isinstance(bearer, str):
        raise InvalidRequest("bearer must be a JWT string or null.")
    token = bearer.removeprefix("Bearer ").strip()
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidRequest("bearer is not a well-formed JWT.") from None
    for claim in EMAIL_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and "@" in value:
            return value.strip().lower()
    raise InvalidRequest("bearer has no e-mail claim (email, mail or preferred_username).")
