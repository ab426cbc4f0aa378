"""The users ID mapping file: loading, checking, and who acts for an e-mail, a claim or an owner."""

import base64
import subprocess

import pytest
import yaml

from dssr_core.errors import Forbidden, SettingsError
from dssr_core.models import JobFacts, Submission
from dssr_core.remote.users import Accounts, ClusterAccount, UserMap, decode_private_key, load_user_map
from dssr_core.settings import Settings


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text()


def write_mapping(path, rows):
    path.write_text(yaml.safe_dump({"users_id_mapping": rows}))
    return str(path)


def row(mail, user, key):
    return {"user": "Some One", "jarvice_user": user, "mail": mail, "mapped_user": user,
            "ssh_private_key_b64": base64.b64encode(key.encode()).decode()}


def test_loads_entries_and_finds_them_by_mail_and_user(tmp_path, key_pem):
    path = write_mapping(tmp_path / "map.yaml", [row("Kirby@Example.org", "kirby", key_pem),
                                                 row("mario@example.org", "mario", key_pem)])
    mapping = UserMap.load(path)
    assert mapping.by_mail("KIRBY@example.org").account.user == "kirby"
    assert mapping.by_user("mario").mail == "mario@example.org"
    assert mapping.by_user("mario").account.private_key == key_pem.strip() + "\n"
    assert mapping.users() == ("kirby", "mario")


def test_the_key_never_shows_in_a_repr(tmp_path, key_pem):
    mapping = UserMap.load(write_mapping(tmp_path / "map.yaml", [row("k@example.org", "kirby", key_pem)]))
    assert "PRIVATE" not in repr(mapping) and key_pem.splitlines()[1] not in repr(mapping)


@pytest.mark.parametrize("content, words", [
    ("users_id_mapping: nope", "must hold a list"),
    ("[1, 2", "not valid YAML"),
    ("users_id_mapping:\n  - mapped_user: kirby\n", "entry 1 has no mail"),
    ("users_id_mapping:\n  - mail: a@b.c\n    mapped_user: '-rf'\n", "no valid mapped_user"),
    ("users_id_mapping:\n  - mail: a@b.c\n    mapped_user: kirby\n    ssh_private_key_b64: '%%%'\n",
     "not base64 of a private key"),
    ("users_id_mapping:\n  - {mail: a@b.c, mapped_user: x}\n  - {mail: A@b.c, mapped_user: y}\n", "twice"),
])
def test_a_bad_file_stops_the_start_with_a_sentence(tmp_path, content, words):
    path = tmp_path / "map.yaml"
    path.write_text(content)
    with pytest.raises(SettingsError, match=words) as raised:
        UserMap.load(str(path))
    assert str(path) in raised.value.message


def test_an_explicit_file_must_exist_the_default_may_be_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_user_map(Settings.from_env({})) is None
    with pytest.raises(SettingsError, match="cannot be read"):
        load_user_map(Settings.from_env({"JARVICE_SLURM_ID_MAPPING_FILE": str(tmp_path / "none.yaml")}))


def test_accounts_for_emails_and_owners(tmp_path, key_pem):
    service = ClusterAccount("jarvice", "service-key")
    mapping = UserMap.load(write_mapping(tmp_path / "map.yaml", [row("k@example.org", "kirby", key_pem)]))
    accounts = Accounts(service, mapping)
    assert accounts.for_email("K@example.org").user == "kirby"
    assert accounts.for_email(None) is service
    with pytest.raises(Forbidden, match="nobody@example.org has no cluster account"):
        accounts.for_email("nobody@example.org")
    assert accounts.for_owner("kirby").user == "kirby"
    assert accounts.for_owner("jarvice") is service
    assert accounts.for_owner("stranger") is service
    assert "with 1 user (kirby)" in accounts.describe()


def test_without_a_mapping_everyone_is_the_service_account():
    service = ClusterAccount("jarvice", "service-key")
    accounts = Accounts(service, None)
    assert accounts.for_email("anyone@example.org") is service
    assert accounts.describe() == "none (every job runs as jarvice)"


def test_keys_as_pem_or_base64(key_pem):
    assert decode_private_key(key_pem) == decode_private_key(base64.b64encode(key_pem.encode()).decode())
    with pytest.raises(ValueError):
        decode_private_key("bm90IGEga2V5")


# Users from a claim of upstream's bearer (slurmrestd's JARVICE_SLURM_USERNAME_CLAIM) --------------


def submission(claims: dict | None, email: str | None = None):
    """A submission as the app hands it over: the bearer (None: none sent), its claims and e-mail."""
    return Submission(name="job-1", number=1, script="true", facts=JobFacts(), user_email=email,
                      bearer=None if claims is None else "a.b.c", bearer_claims=claims or {})


def test_without_a_mapping_the_claim_names_the_cluster_user():
    service = ClusterAccount("jarvice")
    accounts = Accounts(service, None, "preferred_username")
    assert accounts.for_submission(submission({"preferred_username": "kirby", "sun": "x"})).user == "kirby"
    assert Accounts(service, None, "sun").for_submission(submission({"preferred_username": "k@x.org",
                                                                     "sun": "mario"})).user == "mario"
    assert accounts.for_submission(submission(None)) is service, "no bearer: the service account"
    assert accounts.describe() == ("none: the preferred_username claim of upstream's bearer is the cluster "
                                   "user (JARVICE_SLURM_USERNAME_CLAIM); without a bearer, jarvice")


def test_a_bearer_without_the_claim_is_refused_with_403():
    accounts = Accounts(ClusterAccount("jarvice"), None, "preferred_username")
    with pytest.raises(Forbidden) as refused:
        accounts.for_submission(submission({"email": "kirby@example.org", "sun": "kirby"}))
    assert refused.value.message == (
        "Upstream's bearer has no preferred_username claim (JARVICE_SLURM_USERNAME_CLAIM), so DSSR cannot "
        "tell which cluster user the job is for; the portal's identity provider must add it.")


@pytest.mark.parametrize("name", ["kirby@example.org", "root;id", "-rf", "../etc", "a" * 33, "ki rby", "", 42,
                                  "kirby\n", ["kirby"]])
def test_a_claim_that_is_no_user_name_is_refused_before_slurm_hears_of_it(name):
    accounts = Accounts(ClusterAccount("jarvice"), None, "preferred_username")
    with pytest.raises(Forbidden, match="(is not a cluster user name|has no preferred_username claim)"):
        accounts.for_submission(submission({"preferred_username": name}))


def test_the_mapping_file_wins_over_the_claim(tmp_path, key_pem):
    mapping = UserMap.load(write_mapping(tmp_path / "map.yaml", [row("k@example.org", "kirby", key_pem)]))
    accounts = Accounts(ClusterAccount("jarvice"), mapping, "preferred_username")
    mapped = accounts.for_submission(submission({"preferred_username": "mario"}, "k@example.org"))
    assert mapped.user == "kirby"
    with pytest.raises(Forbidden, match="no e-mail claim .* the users ID mapping maps portal users by"):
        accounts.for_submission(submission({"preferred_username": "mario"}))


def test_with_users_from_a_claim_a_job_is_acted_on_as_its_owner():
    service = ClusterAccount("jarvice")
    accounts = Accounts(service, None, "preferred_username")
    assert accounts.for_owner("kirby") == ClusterAccount("kirby")
    assert accounts.for_owner("jarvice") is service
    assert accounts.for_owner("not a user") is service
    assert Accounts(service, None).for_owner("kirby") is service, "slurm-cli without a mapping: as before"
