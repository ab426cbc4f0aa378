"""What checking upstream's bearer costs a submission: reading it unchecked (as before) against
checking its RS256 signature, issuer and expiry with the keys cached (a JWKS file; a URL's keys
are cached the same way after the first fetch).

Run: ``python bench/bench_bearer.py [repeats]``. Prints figures only (microseconds per call,
median of 5 rounds).
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from dssr_core.bearer import BearerCheck
from dssr_core.settings import Settings

REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ISSUER = "https://keycloak.example.org/realms/jarvice"


def per_call_us(function, repeats: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            function()
        rounds.append((time.perf_counter() - started) / repeats * 1e6)
    return statistics.median(rounds)


def main() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "alg": "RS256", "use": "sig"}
    now = int(time.time())
    bearer = jwt.encode({"iss": ISSUER, "exp": now + 3600, "iat": now, "email": "kirby@example.org",
                         "preferred_username": "kirby"}, key, algorithm="RS256", headers={"kid": "k1"})
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "jwks.json"
        keys.write_text(json.dumps({"keys": [jwk]}))
        checked = BearerCheck.from_settings(Settings.from_env({"DSSR_BEARER_JWKS_FILE": str(keys),
                                                               "DSSR_BEARER_ISSUER": ISSUER}))
        unchecked = BearerCheck()
        for label, check in (("read unchecked (as before)", unchecked),
                             ("checked (RS256 2048, keys cached)", checked)):
            cost = per_call_us(lambda check=check: check.read(bearer), REPEATS)
            print(f"bearer {label:<34} {cost:7.1f} us per call")


if __name__ == "__main__":
    main()
