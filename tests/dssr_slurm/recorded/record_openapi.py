"""Record slurmrestd's ``GET /openapi.json`` into recorded/openapi/, for the tests of the ``auto``
API version. The document is megabytes; what DSSR reads of it is the list of paths, so the file
keeps ``openapi``, ``info`` and, of ``paths``, each path with its methods (the operations' bodies
and ``components`` are dropped, as the file's ``note`` says).

    python tests/dssr_slurm/recorded/record_openapi.py http://127.0.0.1:6820 /usr/bin/scontrol
    # Slurm in a chroot (tests/cluster/cluster.sh with DSSR_CLUSTER_SLURM=26.05): its scontrol wrapper
    python tests/dssr_slurm/recorded/record_openapi.py http://127.0.0.1:6826 \\
        /var/lib/dssr-test-cluster-26.05/slurm-bin/scontrol
"""

import json
import subprocess
import sys
from pathlib import Path

import requests

OUT = Path(__file__).parent / "openapi"


def record(url: str, scontrol: str) -> Path:
    token = subprocess.run([scontrol, "token", "username=jarvice", "lifespan=60"], capture_output=True,
                           text=True, check=True).stdout.strip().removeprefix("SLURM_JWT=")
    answer = requests.get(url.rstrip("/") + "/openapi.json", timeout=60,
                          headers={"X-SLURM-USER-NAME": "jarvice", "X-SLURM-USER-TOKEN": token})
    answer.raise_for_status()
    document = answer.json()
    release = subprocess.run([scontrol, "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[-1]
    trimmed = {"openapi": document.get("openapi"), "info": document.get("info"),
               "paths": {path: {method: {} for method in sorted(operations)}
                         for path, operations in sorted(document.get("paths", {}).items())}}
    OUT.mkdir(exist_ok=True)
    path = OUT / f"slurm-{release}.json"
    path.write_text(json.dumps({
        "source": f"recorded from the test cluster's slurmrestd (Slurm {release}) by record_openapi.py",
        "request": "GET /openapi.json", "status": answer.status_code, "body": trimmed,
        "note": "trimmed: each path keeps its methods; the operations' bodies and components are dropped",
    }, indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(record(sys.argv[1], sys.argv[2]))
