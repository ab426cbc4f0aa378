"""A REAL OpenID Connect provider for the identity tests: tests/oidc/provider.mjs, the certified
``oidc-provider`` package from npm on Node, playing Keycloak's part (its token and certs paths,
confidential clients with the client credentials grant, RS256 JWT access tokens).

``OidcProvider`` installs the package (``npm ci``, once), starts the provider on a free port of
127.0.0.1, stops it by its pid, and reads its log (one line per token it issued, never the
token). Test modules load the fixtures with ``pytest_plugins = ["oidc_fixtures"]``.
(PYTEST_DONT_REWRITE: test modules import its names before pytest loads it as a plugin.)
"""

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from dssr_core.testing.plugin import find_free_port, stop_process, wait_answering

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
REALM = "jarvice"
SERVICE_CLIENT = "nimbix-slurm-sched-client"


def install_provider() -> None:
    """``npm ci`` in tests/oidc unless node_modules matches package-lock.json (CI starts empty)."""
    for program in ("node", "npm"):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is needed for the identity tests (Node 20 and npm: apt-get install "
                        "nodejs npm)", pytrace=False)
    installed = OIDC_DIR / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= (OIDC_DIR / "package-lock.json").stat().st_mtime:
        return
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=OIDC_DIR,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"npm ci in {OIDC_DIR} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}",
                    pytrace=False)


class OidcProvider:
    """The provider with ``clients`` ({client_id: {"claims": {...}, "token_ttl": s}}), each given a
    random secret; ``signing_key`` a PKCS#8 PEM (else the provider makes one in its state dir)."""

    def __init__(self, workdir: Path, clients: dict[str, dict], signing_key: str | None = None):
        self.workdir = workdir
        self.port = find_free_port()
        self.secrets = {client_id: secrets.token_urlsafe(24) for client_id in clients}
        self.issuer = f"http://127.0.0.1:{self.port}/realms/{REALM}"
        self.token_url = self.issuer + "/protocol/openid-connect/token"
        self.certs_url = self.issuer + "/protocol/openid-connect/certs"
        self.jwks_file = workdir / "jwks.json"
        self.log_path = workdir / "provider.log"
        self.process: subprocess.Popen | None = None
        config = {"port": self.port, "realm": REALM, "state_dir": str(workdir), "token_ttl": 3600,
                  "clients": [{"client_id": client_id, "client_secret": self.secrets[client_id], **options}
                              for client_id, options in clients.items()]}
        if signing_key:
            config["signing_key"] = signing_key
        self.config_path = workdir / "provider.json"
        self.config_path.write_text(json.dumps(config))
        self.config_path.chmod(0o600)

    def start(self, timeout: float = 30) -> "OidcProvider":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(["node", str(OIDC_DIR / "provider.mjs"), str(self.config_path)],
                                            cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "NODE_NO_WARNINGS": "1"})
        discovery = self.issuer + "/.well-known/openid-configuration"
        wait_answering(self.process, lambda: requests.get(discovery, timeout=2).ok, timeout,
                       "the OIDC provider", self.log)
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def token(self, client_id: str) -> str:
        """An access token of ``client_id`` (client credentials), as a portal user's bearer."""
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": self.secrets[client_id]}
        answer = requests.post(self.token_url, data=form, timeout=10)
        answer.raise_for_status()
        return answer.json()["access_token"]

    def issued(self, client_id: str) -> int:
        """How many tokens the provider has issued to ``client_id`` (from its log)."""
        return self.log().splitlines().count(f"issued a token to {client_id}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def oidc_provider_factory(tmp_path_factory):
    """A factory: ``oidc_provider_factory(clients, signing_key=None)`` starts a provider; all are
    stopped at the end of the session."""
    install_provider()
    started = []

    def start(clients: dict[str, dict], signing_key: str | None = None) -> OidcProvider:
        provider = OidcProvider(tmp_path_factory.mktemp("oidc"), clients, signing_key)
        started.append(provider)
        return provider.start()

    yield start
    for provider in started:
        provider.stop()
