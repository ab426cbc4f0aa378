"""Registry credentials for the app image, chosen from the job's own secrets.

Order: the job's ``JOBOBJ_DOCKER_SECRET`` when its server is the app image's registry, else
the matching entry of ``JOBOBJ_CTRSECRET``'s ``auths``, else none. Error messages name the
fact and never quote what is in it.
"""

import base64
import json

import attrs

from dssr_core.errors import InvalidRequest
from dssr_singularity.images import canonical_registry

DOCKER_SECRET = "JOBOBJ_DOCKER_SECRET"
CTRSECRET = "JOBOBJ_CTRSECRET"

#: Values upstream writes for "no secret".
_ABSENT = frozenset({"", "none", "null", "{}"})


@attrs.frozen
class Credentials:
    """A user name and password for one registry, and the fact they came from."""

    username: str = attrs.field(repr=False)
    password: str = attrs.field(repr=False)
    source: str

    def exports(self) -> tuple[str, str]:
        """Base64 of the user name and of the password, as the job script takes them."""
        return b64(self.username), b64(self.password)


NO_CREDENTIALS = Credentials("", "", "none")


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def app_credentials(facts: dict[str, str], registry: str) -> Credentials:
    """The credentials for pulling from ``registry`` (a canonical host), or NO_CREDENTIALS.

    Both secrets are checked for form even when the first one matches, so that a malformed
    secret is reported whatever the image.
    """
    job_secret = _docker_secret(facts.get(DOCKER_SECRET, ""))
    auths = _ctr_auths(facts.get(CTRSECRET, ""))
    if job_secret is not None and canonical_registry(job_secret["server"]) == registry:
        return Credentials(job_secret["username"], job_secret["password"], DOCKER_SECRET)
    for server, entry in auths.items():
        if canonical_registry(server) == registry:
            found = _entry_credentials(entry, server)
            if found is not None:
                return found
    return NO_CREDENTIALS


def _docker_secret(text: str) -> dict[str, str] | None:
    if text.strip().lower() in _ABSENT:
        return None
    try:
        secret = json.loads(text)
    except ValueError:
        secret = None
    fields = ("server", "username", "password")
    if (not isinstance(secret, dict)
            or not all(isinstance(secret.get(key), str) for key in fields)
            or not secret["server"].strip()):
        raise InvalidRequest(
            f"{DOCKER_SECRET} must be a JSON object with the strings server, username and "
            "password."
        )
    return secret


def _ctr_auths(text: str) -> dict[str, dict]:
    if text.strip().lower() in _ABSENT:
        return {}
    problem = f"{CTRSECRET} must be base64 of a Docker config.json with an \"auths\" object."
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
        config = json.loads(raw.decode("utf-8"))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidRequest(problem) from None
    if not isinstance(config, dict):
        raise InvalidRequest(problem)
    auths = config.get("auths", {})
    if not isinstance(auths, dict) or not all(isinstance(v, dict) for v in auths.values()):
        raise InvalidRequest(problem)
    return auths


def _entry_credentials(entry: dict, server: str) -> Credentials | None:
    """Credentials of one ``auths`` entry: ``auth`` (base64 user:password) or the two fields.

    An entry with neither (an identity token, say) gives None.
    """
    problem = (f"{CTRSECRET} has an entry for registry {canonical_registry(server)} whose "
               "\"auth\" is not base64 of user:password.")
    auth = entry.get("auth")
    if auth:
        try:
            decoded = base64.b64decode(str(auth), validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise InvalidRequest(problem) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidRequest(problem)
        return Credentials(username, password, CTRSECRET)
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password, CTRSECRET)
    return None
