"""The users ID mapping: the portal user's e-mail -> the cluster account a job runs as.

The file (``users_id_mapping_configuration.yaml``, setting ``JARVICE_SLURM_ID_MAPPING_FILE``)::

    users_id_mapping:
      - user: Full Name
        jarvice_user: jdoe
        mail: jdoe@example.org
        mapped_user: kirby
        ssh_private_key_b64: "<base64 of the private key>"

It is read and checked once, at start. Without a file every job runs as the service account.
Keys stay in memory: later operations look the job's owner up in Slurm and take the owner's
key from here, so no key is ever written to a cache or a state file.
"""

import base64
import binascii
import logging
import os
import re

import attrs
import yaml

from dssr_core.errors import Forbidden, SettingsError
from dssr_core.settings import Setting

log = logging.getLogger(__name__)

DEFAULT_MAPPING_FILE = "users_id_mapping_configuration.yaml"
MAPPING_FILE = Setting(
    "JARVICE_SLURM_ID_MAPPING_FILE", "the users ID mapping: which portal user's jobs run as which cluster "
    "account, with its key", kind="path",
    default_text=f"`{DEFAULT_MAPPING_FILE}` in the working directory (optional there; required when set)")
MAPPING_FILE_SETTING = MAPPING_FILE.name
_USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")


@attrs.frozen
class ClusterAccount:
    """A cluster user and, for SSH, the text of its private key (PEM)."""

    user: str
    private_key: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class MappedUser:
    """One entry of the mapping file."""

    mail: str
    account: ClusterAccount
    full_name: str = ""
    jarvice_user: str = ""


@attrs.frozen
class UserMap:
    """The entries of a mapping file, by e-mail and by cluster user."""

    path: str
    entries: tuple[MappedUser, ...]

    @classmethod
    def load(cls, path: str) -> "UserMap":
        """Read and check the file; SettingsError with one sentence when it is not right."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except OSError as error:
            raise SettingsError(
                f"{MAPPING_FILE_SETTING} file {path} cannot be read: {error.strerror}.") from None
        except yaml.YAMLError:
            raise SettingsError(f"{MAPPING_FILE_SETTING} file {path} is not valid YAML.") from None
        rows = data.get("users_id_mapping") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise SettingsError(
                f"{MAPPING_FILE_SETTING} file {path} must hold a list under users_id_mapping.")
        entries = tuple(_entry(path, number, row) for number, row in enumerate(rows, 1))
        _check_unique_mails(path, entries)
        return cls(path=path, entries=entries)

    def by_mail(self, mail: str) -> MappedUser | None:
        mail = mail.strip().lower()
        return next((entry for entry in self.entries if entry.mail == mail), None)

    def by_user(self, user: str) -> MappedUser | None:
        return next((entry for entry in self.entries if entry.account.user == user), None)

    def users(self) -> tuple[str, ...]:
        """The distinct cluster users of the mapping, sorted."""
        return tuple(sorted({entry.account.user for entry in self.entries}))


def load_user_map(settings) -> UserMap | None:
    """The mapping named by the settings; None when the default file does not exist.

    A file named explicitly by ``JARVICE_SLURM_ID_MAPPING_FILE`` must exist.
    """
    path = settings.read(MAPPING_FILE)
    if path is None:
        if not os.path.exists(DEFAULT_MAPPING_FILE):
            return None
        path = DEFAULT_MAPPING_FILE
    return UserMap.load(path)


class Accounts:
    """Which cluster account acts: for a submission and for a job (by its owner).

    A submission's account comes from the mapping file when there is one (by the bearer's
    e-mail), else from the bearer's ``username_claim`` when one is given (slurmrestd's
    ``JARVICE_SLURM_USERNAME_CLAIM``); without a bearer it is the service account.
    """

    def __init__(self, service: ClusterAccount, mapping: UserMap | None, username_claim: str | None = None):
        self.service = service
        self.mapping = mapping
        self.username_claim = username_claim

    def for_submission(self, submission) -> ClusterAccount:
        """The account a new job runs as; Forbidden when the bearer does not say which one."""
        if submission.bearer is None:
            return self.service
        if self.mapping is not None:
            if submission.user_email is None:
                raise Forbidden("Upstream's bearer has no e-mail claim (email, mail, or an e-mail in "
                                "preferred_username), and the users ID mapping maps portal users by e-mail.")
            return self.for_email(submission.user_email)
        if self.username_claim is None:
            return self.service
        return ClusterAccount(user_from_claim(submission.bearer_claims, self.username_claim))

    def for_email(self, mail: str | None) -> ClusterAccount:
        """The account a new job runs as; Forbidden when the e-mail has no mapping.

        No mapping file, or no e-mail in the submission (no bearer): the service account.
        """
        if self.mapping is None or mail is None:
            return self.service
        entry = self.mapping.by_mail(mail)
        if entry is None:
            raise Forbidden(
                f"The portal user {mail} has no cluster account in the users ID mapping; "
                "ask the administrator to add them to the mapping file."
            )
        return entry.account

    def for_owner(self, user: str) -> ClusterAccount:
        """The account that acts on a job owned by ``user`` (as Slurm reports the owner): its
        mapped account, or the owner itself when users come from a claim."""
        if user == self.service.user:
            return self.service
        if self.mapping is not None:
            entry = self.mapping.by_user(user)
            if entry is not None:
                return entry.account
            log.warning("job owner %s is not in the users ID mapping; acting as %s", user, self.service.user)
        elif self.username_claim is not None and _USER_NAME.fullmatch(user):
            return ClusterAccount(user)
        return self.service

    def describe(self) -> str:
        """For the init report: where the mapping comes from, never a key."""
        if self.mapping is None and self.username_claim is not None:
            return (f"none: the {self.username_claim} claim of upstream's bearer is the cluster user "
                    f"(JARVICE_SLURM_USERNAME_CLAIM); without a bearer, {self.service.user}")
        if self.mapping is None:
            return f"none (every job runs as {self.service.user})"
        count = len(self.mapping.entries)
        users = ", ".join(self.mapping.users())
        return f"{self.mapping.path} with {count} user{'s' if count != 1 else ''} ({users})"


def user_from_claim(claims, claim: str) -> str:
    """The cluster user named by ``claim`` of a bearer's claims; Forbidden when it names none."""
    value = claims.get(claim)
    if not isinstance(value, str) or not value:
        raise Forbidden(f"Upstream's bearer has no {claim} claim (JARVICE_SLURM_USERNAME_CLAIM), so DSSR "
                        "cannot tell which cluster user the job is for; the portal's identity provider must "
                        "add it.")
    if not _USER_NAME.fullmatch(value):
        raise Forbidden(f"The {claim} claim of upstream's bearer, {value!r:.40}, is not a cluster user name "
                        "(letters, digits, '_', '.' and '-', at most 32); check "
                        "JARVICE_SLURM_USERNAME_CLAIM.")
    return value


def decode_private_key(text: str) -> str:
    """A private key given as PEM text or as base64 of it, as PEM text; ValueError if neither."""
    text = text.strip()
    if "PRIVATE KEY-----" not in text:
        try:
            text = base64.b64decode("".join(text.split()), validate=True).decode("utf-8").strip()
        except (binascii.Error, ValueError):
            raise ValueError("neither PEM text nor base64 of it") from None
    if "PRIVATE KEY-----" not in text:
        raise ValueError("not a private key")
    return text + "\n"


def _entry(path: str, number: int, row: object) -> MappedUser:
    where = f"{MAPPING_FILE_SETTING} file {path}, entry {number}"
    if not isinstance(row, dict):
        raise SettingsError(f"{where} must be a mapping with mail, mapped_user and ssh_private_key_b64.")
    mail = str(row.get("mail") or "").strip().lower()
    if "@" not in mail:
        raise SettingsError(f"{where} has no mail (an e-mail address).")
    user = str(row.get("mapped_user") or "").strip()
    if not _USER_NAME.fullmatch(user):
        raise SettingsError(f"{where} ({mail}) has no valid mapped_user (a cluster user name).")
    return MappedUser(
        mail=mail,
        account=ClusterAccount(user, _key(where, mail, row.get("ssh_private_key_b64"))),
        full_name=str(row.get("user") or ""),
        jarvice_user=str(row.get("jarvice_user") or ""),
    )


def _key(where: str, mail: str, value: object) -> str | None:
    if value in (None, ""):
        return None
    try:
        return decode_private_key(str(value))
    except ValueError:
        raise SettingsError(
            f"{where} ({mail}): ssh_private_key_b64 is not base64 of a private key.") from None


def _check_unique_mails(path: str, entries: tuple[MappedUser, ...]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.mail in seen:
            raise SettingsError(f"{MAPPING_FILE_SETTING} file {path} maps {entry.mail} twice.")
        seen.add(entry.mail)
