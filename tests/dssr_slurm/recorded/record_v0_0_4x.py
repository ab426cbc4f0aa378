"""Record slurmrestd's answers of API versions v0.0.43 and later from a test cluster into
tests/dssr_slurm/recorded/<version>/, as record_v0_0_38.py does for v0.0.38.

Run as root on a machine with the cluster up, for example Slurm 26.05 (v0.0.42 to v0.0.45):

    export DSSR_CLUSTER_SLURM=26.05
    bash tests/cluster/cluster.sh up && eval "$(bash tests/cluster/cluster.sh env)"
    python tests/dssr_slurm/recorded/record_v0_0_4x.py v0.0.43 v0.0.44 v0.0.45

v0.0.40 to v0.0.42 are not recorded here: their folders hold answers built by hand, which the
tests of those versions rely on (ids 4001...); the live tests run those versions instead.

It talks to slurmrestd with plain ``requests`` (not DSSR's client), as the mapped user kirby
and the service account jarvice, with tokens minted from the cluster's key; no token is
written. Each file holds ``{"source", "request", "status", "body"}`` (or ``"text"`` when
slurmrestd answered no JSON). Jobs of other users and other tests are left out of
``jobs.json``. ``openapi-job-submission.json`` holds the version's submit schemas from
``GET /openapi.json`` and ``job-desc-fields.json`` the names of its ``job_desc_msg``.
"""

import json
import os
import sys
import uuid
from pathlib import Path

import recording
from recording import BASE, SCRATCH, only_ours, wait_purged, wait_state

HERE = Path(__file__).parent
FIRST_RECORDED = (0, 0, 43)


class Recorder:
    def __init__(self, version: str):
        self.version = version
        self.out = HERE / version
        self.tag = "rec" + uuid.uuid4().hex[:6]
        ping = self.call("GET", f"/slurm/{version}/ping", "jarvice")
        if ping["status"] != 200:
            sys.exit(f"slurmrestd at {BASE} does not serve {version} (HTTP {ping['status']})")
        release = ping["body"]["meta"]["slurm"]["release"]
        self.source = (f"recorded from slurmrestd {release} (DSSR test cluster, DSSR_CLUSTER_SLURM="
                       f"{os.environ.get('DSSR_CLUSTER_SLURM', '?')}), openapi/slurmctld + openapi/slurmdbd, "
                       f"data_parser/{version}")

    def call(self, method: str, path: str, user: str = "kirby", body=None, auth: str | None = "fresh"):
        return recording.call(getattr(self, "source", ""), method, path, user, body, auth)

    def save(self, name: str, answer: dict, note: str = "") -> dict:
        return recording.save(self.out, name, answer, note, label=f"{self.version} ")

    def job_body(self, name: str, script: str, **extra) -> dict:
        job = {"script": "#!/bin/bash\n" + script + "\n", "name": f"jarvice_{name}", "nodes": "1",
               "tasks": 1, "current_working_directory": SCRATCH,
               "standard_output": f"{SCRATCH}/jarvice_{name}.%j.out", "environment": ["PATH=/usr/bin:/bin"],
               **extra}
        return {"job": job}

    def submit(self, name: str, script: str, **extra) -> tuple[dict, int]:
        answer = self.call("POST", f"/slurm/{self.version}/job/submit",
                           body=self.job_body(f"{self.tag}-{name}", script, **extra))
        return answer, answer["body"].get("job_id", 0)

    def save_submit_schema(self) -> None:
        schemas = self.call("GET", "/openapi.json", "jarvice")["body"]["components"]["schemas"]
        names = (f"{self.version}_job_submit_req", f"{self.version}_job_desc_msg")
        data = {"source": f"{self.source}: GET /openapi.json, components.schemas {' and '.join(names)}",
                **{name: schemas[name] for name in names}}
        (self.out / "openapi-job-submission.json").write_text(json.dumps(data, indent=2) + "\n")
        fields = {"source": f"{self.source}: the properties of {names[1]} in GET /openapi.json",
                  "fields": sorted(schemas[names[1]]["properties"])}
        (self.out / "job-desc-fields.json").write_text(json.dumps(fields, indent=2) + "\n")
        print(f"{self.version} openapi-job-submission, job-desc-fields: the submit schema")

    def record(self) -> None:
        v = self.version
        self.out.mkdir(exist_ok=True)
        self.save_submit_schema()
        self.save("ping", self.call("GET", f"/slurm/{v}/ping", "jarvice"))
        self.save("ping-unauthenticated", self.call("GET", f"/slurm/{v}/ping", auth=None))
        self.save("ping-expired-token", self.call("GET", f"/slurm/{v}/ping", "jarvice", auth="expired"))
        self.save("path-unknown", self.call("GET", "/slurm/v0.0.37/ping", "jarvice"),
                  "a version this slurmrestd does not serve")
        self.save("jobs-expired-token", self.call("GET", f"/slurm/{v}/jobs", "jarvice", auth="expired"))
        self.save("jobs-token-refused", self.call("GET", f"/slurm/{v}/jobs", "jarvice", auth="wrong-key"),
                  "a token signed with another key")
        self.save("db-job-expired-token", self.call("GET", f"/slurmdb/{v}/job/1", "jarvice", auth="expired"))

        held, held_id = self.submit("held", "echo held-and-released", hold=True, shared=["none"],
                                    time_limit={"set": True, "infinite": False, "number": 5},
                                    memory_per_node={"set": True, "infinite": False, "number": 100})
        self.save("submit-held", held, "a held job (hold: true)")
        done, done_id = self.submit("ok", "echo hello; sleep 2")
        self.save("submit", done)
        failed, failed_id = self.submit("fail", "echo about to fail; exit 3")
        running, running_id = self.submit("run", "echo started; sleep 120")
        bad_partition = self.job_body(f"{self.tag}-bad", "true", partition="nope")
        self.save("submit-bad-partition", self.call("POST", f"/slurm/{v}/job/submit", body=bad_partition))
        unknown_field = self.save("submit-unknown-field", self.call(
            "POST", f"/slurm/{v}/job/submit", body=self.job_body(f"{self.tag}-bad", "true", bogus=1)))
        no_environment = self.job_body(f"{self.tag}-noenv", "true")
        del no_environment["job"]["environment"]
        no_environment = self.save("submit-no-environment",
                                   self.call("POST", f"/slurm/{v}/job/submit", body=no_environment))
        ids = {held_id, done_id, failed_id, running_id}
        extra_ids = {answer.get("body", {}).get("job_id") for answer in (unknown_field, no_environment)}
        ids |= extra_ids - {None, 0}

        wait_state(running_id, {"RUNNING"})
        wait_state(done_id, {"COMPLETED"})
        wait_state(failed_id, {"FAILED"})
        self.save("jobs", only_ours(self.call("GET", f"/slurm/{v}/jobs", "jarvice"), ids),
                  "held (PENDING), running, completed and failed jobs; other jobs removed")
        self.save("job-running", self.call("GET", f"/slurm/{v}/job/{running_id}", "jarvice"))
        self.save("job-completed", self.call("GET", f"/slurm/{v}/job/{done_id}", "jarvice"))
        self.save("job-failed", self.call("GET", f"/slurm/{v}/job/{failed_id}", "jarvice"))
        self.save("release", self.call("POST", f"/slurm/{v}/job/{held_id}", body={"hold": False}))
        self.save("delete", self.call("DELETE", f"/slurm/{v}/job/{running_id}"))
        wait_state(running_id, {"CANCELLED"})
        self.save("job-cancelled", self.call("GET", f"/slurm/{v}/job/{running_id}", "jarvice"))
        self.save("delete-ended", self.call("DELETE", f"/slurm/{v}/job/{done_id}"),
                  "cancelling a job that has ended")

        for jobid in ids:
            wait_purged(jobid)
        self.save("job-purged", self.call("GET", f"/slurm/{v}/job/{done_id}", "jarvice"),
                  "after MinJobAge slurmctld has forgotten the job")
        self.save("db-job-completed", self.call("GET", f"/slurmdb/{v}/job/{done_id}", "jarvice"))
        self.save("db-job-failed", self.call("GET", f"/slurmdb/{v}/job/{failed_id}", "jarvice"))
        self.save("db-job-cancelled", self.call("GET", f"/slurmdb/{v}/job/{running_id}", "jarvice"))
        self.save("db-job-unknown", self.call("GET", f"/slurmdb/{v}/job/987654321", "jarvice"))
        self.save("job-unknown", self.call("GET", f"/slurm/{v}/job/987654321", "jarvice"))
        for path in Path(SCRATCH).glob(f"jarvice_{self.tag}-*"):
            path.unlink()


def main(versions: list[str]) -> None:
    for version in versions:
        parts = tuple(int(part) for part in version.removeprefix("v").split("."))
        if parts < FIRST_RECORDED:
            sys.exit(f"{version}: its folder holds hand-built answers; record v0.0.43 or later")
    for version in versions:
        Recorder(version).record()


if __name__ == "__main__":
    main(sys.argv[1:] or sys.exit(__doc__))
