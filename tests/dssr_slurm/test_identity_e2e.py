"""Identity as JARVICE runs it, end to end on the real cluster: DSSR with ``JARVICE_SLURM_CLIENT=
slurmrestd_client`` and the chart's settings only, a REAL OpenID Connect provider (tests/oidc) in
Keycloak's part, and Slurm trusting that provider's key (``AuthAltParameters=jwks=``, set up by
tests/cluster/cluster.sh).

- the service token comes from the provider (client credentials), and is fetched again when it
  expires during a run (a 15 s lifespan here, 3600 s in the chart);
- jobs submitted with the portal users' bearers (the provider's tokens of kirby and mario) run as
  those users, in squeue and in the job's own ``id -un``; the user comes from the bearer's
  ``preferred_username`` or, told so, ``sun`` (Slurm 22.05 reads ``sun``, so the tokens carry
  both, with the same value but where a test says otherwise; from 23.02 on the test clusters
  also read ``preferred_username`` themselves: ``userclaimfield``);
- a forged, expired or wrongly signed bearer is refused by DSSR (its keys are the realm's, derived
  from ``JARVICE_KEYCLOAK_TOKEN_URL``) and reaches no cluster;
- the provider stopped: 503 that says so; started again: DSSR answers again.

Added to the chart's environment: the job PATH that finds the singularity TEST DOUBLE (the tests
are about identity, not containers; tests/dssr_slurm/test_containers.py runs real ones on 26.05).
"""

import json
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import jwt
import pytest
from chart_environment import SERVER_KEY, chart_environment
from cryptography.hazmat.primitives.asymmetric import rsa
from oidc_fixtures import SERVICE_CLIENT
from slurm_helpers import SHARED, job_of, newest_api, squeue_field

from dssr_core.app import create_app
from dssr_core.cli.server import build_backends
from dssr_core.facts import read_facts
from dssr_core.remote.files import job_files
from dssr_core.settings import Settings
from dssr_core.testing import ApiClient, wait_until
from dssr_singularity.executor import SingularityExecutor, job_template

pytest_plugins = ["oidc_fixtures", "rest_fixtures"]
pytestmark = pytest.mark.slow

DOUBLE = Path(__file__).resolve().parents[1] / "doubles" / "singularity"
APP = "nvcr.io/nvidia/pytorch:23.10-py3"
SERVICE_LIFESPAN = 15
USERS = {
    "portal-kirby": {"sun": "kirby", "preferred_username": "kirby", "email": "kirby@example.org"},
    "portal-mario": {"sun": "mario", "preferred_username": "mario", "email": "mario@example.org"},
    # A portal that logs users in by e-mail: only sun holds the cluster user.
    "portal-mario-by-mail": {"sun": "mario", "preferred_username": "mario@example.org",
                             "email": "mario@example.org"},
    "portal-nameless": {"email": "nobody@example.org"},
    "portal-kirby-without-sun": {"preferred_username": "kirby", "email": "kirby@example.org"},
}


def clients(service_lifespan: int) -> dict[str, dict]:
    made = {SERVICE_CLIENT: {"token_ttl": service_lifespan,
                             "claims": {"sun": "jarvice", "preferred_username": "jarvice"}}}
    for client, claims in USERS.items():
        made[client] = claims if "claims" in claims else {"claims": claims}
    return made


@pytest.fixture(scope="module")
def provider(cluster_env, oidc_provider_factory):
    return oidc_provider_factory(clients(SERVICE_LIFESPAN), signing_key=cluster_env["DSSR_CLUSTER_OIDC_KEY"])


@pytest.fixture(scope="module")
def double(cluster_env):
    """The double in a directory of its own that only these tests' jobs have on their PATH: the
    26.05 cluster runs real Apptainer, and the container tests there must not meet the double."""
    directory = double_bin(cluster_env)
    directory.mkdir(mode=0o755, exist_ok=True)
    shutil.copy(DOUBLE, directory / "singularity")


def double_bin(cluster_env) -> Path:
    return Path(cluster_env["DSSR_CLUSTER_DIR"]) / "double-bin"


def chart_env(cluster_env, provider, **values) -> dict[str, str]:
    """The chart's environment for slurmrestd with service tokens from ``provider``."""
    return chart_environment(
        cluster_env, JARVICE_SLURM_CLIENT="slurmrestd_client",
        JARVICE_SLURMRESTD_URL=f"http://127.0.0.1:{cluster_env['JARVICE_SLURMRESTD_PORT']}",
        JARVICE_KEYCLOAK_TOKEN_URL=provider.token_url,
        JARVICE_KEYCLOAK_CLIENT_SECRET=provider.secrets[SERVICE_CLIENT],
        JARVICE_SLURMRESTD_JOB_PATH=f"{double_bin(cluster_env)}:/usr/local/bin:/usr/bin:/bin",
        **values)


@pytest.fixture
def in_process(cluster_env, provider):
    """A factory: DSSR's app (create_app, as ``dssr serve`` builds it) on the chart's settings, and
    its connector (to count what reached slurmrestd)."""
    made = []

    def build(provider=provider, **values):
        settings = Settings.from_env(chart_env(cluster_env, provider, **values))
        _, executor_backend, connector, executor = build_backends(settings)
        made.append(connector)
        app = create_app(settings, connector, executor, executor_name=executor_backend.name)
        return ApiClient.for_app(app, auth=SERVER_KEY), connector

    yield build
    for connector in made:
        connector.close()


def unique(label: str) -> str:
    return f"rest-id-{label}-{uuid.uuid4().hex[:6]}"


def container_job(command: str) -> str:
    """An app job of APP that shares the node (upstream's exclusive=False device): the jobs of a
    test run side by side, not one after the other."""
    facts = read_facts(SingularityExecutor.template_for(command, image=APP))
    return job_template({**facts, "JOBOBJ_DEVICES": json.dumps(SHARED)})


def output_of(cluster_env, job) -> str:
    """The job's output file, read as root (output access is the chart's default, none)."""
    files = job_files(cluster_env["JARVICE_JOB_SCRATCH_DIR"], job["name"], job["jobid"])
    return Path(files.output).read_text()


def ended(api, job) -> bool:
    return all([job["name"], job["jobid"]] not in api.get(path).json for path in ("/queued", "/running"))


def test_jobs_run_as_the_portal_users_their_bearers_name_and_the_service_token_is_renewed(
        cluster_env, provider, double, dssr_server):
    server = dssr_server(chart_env(cluster_env, provider), auth=SERVER_KEY)
    log = wait_until(lambda: "Init done." in server.log() and server.log(), 30, what="the init report")
    assert "connector: slurmrestd (dssr_slurm" in log and "first connection: OK" in log
    assert ("token mode: bearer (upstream's bearer for submissions; reads as jarvice with service tokens "
            f"from Keycloak (the client {SERVICE_CLIENT} at {provider.token_url}; the token expires "
            "at ") in log
    assert (f"bearer signatures: checked against the keys of {provider.certs_url} "
            f"(JARVICE_KEYCLOAK_TOKEN_URL), issuer {provider.issuer}") in log
    assert ("users ID mapping: none: the preferred_username claim of upstream's bearer is the cluster "
            "user") in log
    assert (f"API version: {newest_api(cluster_env)} (auto: the newest DSSR speaks of those /openapi.json "
            "advertises") in log

    api = server.api()
    fetched_before = provider.issued(SERVICE_CLIENT)
    bearers = {user: provider.token(f"portal-{user}") for user in ("kirby", "mario")}
    jobs = {}
    for user, bearer in bearers.items():
        name = unique(user)
        # Runs past two lifespans of the service token, so DSSR must renew it while it watches the job.
        answer = api.submit(name, container_job("echo ran as $(id -un); sleep 35"), executor="singularity",
                            bearer=bearer)
        jobs[user] = job_of(name, answer)
    for user, job in jobs.items():
        assert squeue_field(job["jobid"], "%u") == user
    started = time.monotonic()
    while not all(ended(api, job) for job in jobs.values()):
        for job in jobs.values():
            assert api.post("/runstatus", job).status == 200
        assert time.monotonic() - started < 180, "the jobs did not end within 3 minutes"
        time.sleep(1)
    assert time.monotonic() - started > 2 * SERVICE_LIFESPAN
    assert provider.issued(SERVICE_CLIENT) - fetched_before >= 2, "the service token was not renewed"

    for user, job in jobs.items():
        rc, _, (_, banner) = api.post("/exitstatus", job).json
        assert rc == 0 and "COMPLETED" in banner
        assert f"ran as {user}" in output_of(cluster_env, job)
        assert (f"dssr.audit: submit job {job['jobid']} ({job['name']}) as cluster user {user} for portal "
                f"user {user}@example.org") in server.log()
    server.stop()
    log = server.log()
    assert provider.secrets[SERVICE_CLIENT] not in log
    assert not re.search(r"eyJ[\w-]{10,}\.", log), "a token reached the log"
    assert all(bearer not in log for bearer in bearers.values())


def test_the_sun_claim_names_the_user_when_dssr_is_told_to_read_it(cluster_env, provider, double, in_process):
    bearer = provider.token("portal-mario-by-mail")
    api, _ = in_process()
    refused = api.submit(unique("by-mail"), container_job("id -un"), executor="singularity", bearer=bearer)
    assert refused.status == 403
    assert refused.json["description"].startswith(
        "The preferred_username claim of upstream's bearer, 'mario@example.org', is not a cluster user name")

    api, _ = in_process(JARVICE_SLURM_USERNAME_CLAIM="sun")
    name = unique("sun")
    job = job_of(name, api.submit(name, container_job("echo ran as $(id -un)"), executor="singularity",
                                  bearer=bearer))
    assert squeue_field(job["jobid"], "%u") == "mario"
    wait_until(lambda: ended(api, job), 120, what=f"{name} to end")
    assert api.post("/exitstatus", job).json[0] == 0
    assert "ran as mario" in output_of(cluster_env, job)


def test_from_slurm_23_02_on_slurm_reads_preferred_username_itself(cluster_env, provider, double, in_process):
    """The clusters of 24.11 and 26.05 have ``userclaimfield=preferred_username``: a bearer without
    ``sun`` runs as its ``preferred_username``. Slurm 22.05 has no ``userclaimfield``: it refuses that
    bearer (as it answers a refused token: ambiguously), so there the portal's tokens need ``sun``."""
    api, _ = in_process()
    name = unique("no-sun")
    answer = api.submit(name, container_job("echo ran as $(id -un)"), executor="singularity",
                        bearer=provider.token("portal-kirby-without-sun"))
    if cluster_env["DSSR_CLUSTER_SLURM"] == "22.05":
        assert answer.status == 503, answer.text
        assert "or it refused the token of kirby" in answer.json["description"]
        assert squeue_field_by_name(name) == ""
        return
    job = job_of(name, answer)
    assert squeue_field(job["jobid"], "%u") == "kirby"
    wait_until(lambda: ended(api, job), 120, what=f"{name} to end")
    assert "ran as kirby" in output_of(cluster_env, job)


def forged(provider) -> str:
    """Claims for mario, the provider's kid, another key."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(provider.token("portal-kirby"))["kid"]
    now = int(time.time())
    return jwt.encode({**USERS["portal-mario"], "iss": provider.issuer, "aud": "slurm", "iat": now,
                       "exp": now + 300}, other, algorithm="RS256", headers={"kid": kid})


def slurms_own(cluster_env) -> str:
    """A token Slurm itself accepts (its HS256 key), for mario: still no bearer of the portal's."""
    now = int(time.time())
    return jwt.encode({**USERS["portal-mario"], "iss": "x", "iat": now, "exp": now + 300},
                      Path(cluster_env["JARVICE_SLURMRESTD_JWT_KEY_FILE"]).read_bytes(), algorithm="HS256")


def expired(cluster_env, provider) -> str:
    """A token of the provider's for kirby, signed again with the realm's key as it was a minute
    after it expired: past DSSR's leeway without waiting for it."""
    token = provider.token("portal-kirby")
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(time.time())
    return jwt.encode({**claims, "iat": now - 120, "exp": now - 60},
                      Path(cluster_env["DSSR_CLUSTER_OIDC_KEY"]).read_text(), algorithm="RS256",
                      headers={"kid": jwt.get_unverified_header(token)["kid"]})


def other_issuer(cluster_env, provider) -> str:
    """Signed with the realm's own key, but issued by another realm."""
    kid = jwt.get_unverified_header(provider.token("portal-kirby"))["kid"]
    now = int(time.time())
    return jwt.encode({**USERS["portal-mario"], "iss": provider.issuer.replace("jarvice", "elsewhere"),
                       "iat": now, "exp": now + 300}, Path(cluster_env["DSSR_CLUSTER_OIDC_KEY"]).read_text(),
                      algorithm="RS256", headers={"kid": kid})


def test_bearers_that_fail_their_check_are_refused_and_reach_no_cluster(cluster_env, provider, in_process):
    api, connector = in_process()
    assert api.get("/queued").status == 200
    refusals = {
        "forged": (forged(provider), 401, f"does not carry a valid signature of the key it names at "
                   f"{provider.certs_url}: it was not signed by the portal's identity"),
        "expired": (expired(cluster_env, provider), 401, "Upstream's bearer expired at "),
        "slurm-key": (slurms_own(cluster_env), 401, "Upstream's bearer is signed with 'HS256'; DSSR accepts "
                      "only public-key signatures"),
        "issuer": (other_issuer(cluster_env, provider), 401, f"/realms/elsewhere', not by {provider.issuer}"),
        "nameless": (provider.token("portal-nameless"), 403,
                     "Upstream's bearer has no preferred_username claim"),
    }
    calls = connector.client.calls
    for label, (bearer, status, words) in refusals.items():
        name = unique(label)
        answer = api.submit(name, container_job("id -un"), executor="singularity", bearer=bearer)
        assert answer.status == status, (label, answer.text)
        assert words in answer.json["description"], (label, answer.json)
        assert bearer not in answer.text
        assert squeue_field_by_name(name) == "", f"{label}: Slurm has the job"
    assert connector.client.calls == calls, "a refused bearer reached slurmrestd"


@pytest.mark.one_slurm_version  # DSSR's own service tokens; Slurm sees none while the provider is down
def test_the_providers_outage_is_a_503_that_says_so_and_dssr_recovers(cluster_env, oidc_provider_factory,
                                                                        in_process):
    lifespan = 3
    provider = oidc_provider_factory(clients(lifespan), signing_key=cluster_env["DSSR_CLUSTER_OIDC_KEY"])
    api, connector = in_process(provider=provider, JARVICE_SLURM_STATUS_INTERVAL="0")
    assert api.get("/queued").status == 200
    bearer = provider.token("portal-kirby")  # a portal user's bearer from before the outage
    provider.stop()
    try:
        said = (f"Keycloak at {provider.token_url} did not give DSSR a service token for slurmrestd "
                "(connection refused): the identity provider is not reachable.")
        # Until the service token DSSR holds is due for renewal, DSSR needs no provider.
        wait_until(lambda: api.get("/queued").status != 200, lifespan + 15,
                   what="a new service token to be due")
        answer = api.get("/queued")
        assert (answer.status, answer.json["description"]) == (503, said)
        name = unique("outage")  # this DSSR has checked no bearer yet, so it has no keys to check this one
        answer = api.submit(name, container_job("id -un"), executor="singularity", bearer=bearer)
        assert (answer.status, answer.json["description"]) == (503, (
            f"DSSR cannot fetch the keys that check upstream's bearer from {provider.certs_url} (connection "
            "refused); the identity provider must be reachable."))
        assert squeue_field_by_name(name) == ""
    finally:
        provider.start()
    wait_until(lambda: api.get("/queued").status == 200, 15, what="DSSR to answer again")
    assert "no token yet" not in dict(connector.report())["token mode"]


def squeue_field_by_name(name: str) -> str:
    listed = subprocess.run(["squeue", "-h", "-a", "-t", "all", "-n", f"jarvice_{name}", "-o", "%i"],
                            capture_output=True, text=True)
    return listed.stdout.strip()
