"""Record slurmrestd's v0.0.38 answers from the test cluster into tests/dssr_slurm/recorded/v0.0.38/.

Run on a machine with the test cluster up (``bash tests/cluster/cluster.sh up``), as root:

    eval "$(bash tests/cluster/cluster.sh env)"
    python tests/dssr_slurm/recorded/record_v0_0_38.py

It talks to slurmrestd with plain ``requests`` (not DSSR's client), as the mapped user kirby
and the service account jarvice, with tokens minted from the cluster's key; no token is
written. Each file holds ``{"source", "request", "status", "body"}`` (or ``"text"`` when
slurmrestd answered no JSON). Jobs of other users and other tests are left out of
``jobs.json``.
"""

import json
import time
import uuid
from functools import partial
from pathlib import Path

import recording
from recording import SCRATCH, only_ours, wait_purged, wait_state

OUT = Path(__file__).parent / "v0.0.38"
TAG = "rec" + uuid.uuid4().hex[:6]
SOURCE = ("recorded from slurmrestd 22.05.8 (Debian 12), openapi/v0.0.38 + openapi/dbv0.0.38, "
          "DSSR test cluster")
call = partial(recording.call, SOURCE)
save = partial(recording.save, OUT)


def job_body(name: str, script: str, **extra) -> dict:
    job = {"name": f"jarvice_{name}", "nodes": [1, 1], "tasks": 1, "current_working_directory": SCRATCH,
           "standard_output": f"{SCRATCH}/jarvice_{name}.%j.out", "environment": {"PATH": "/usr/bin:/bin"},
           **extra}
    return {"script": "#!/bin/bash\n" + script + "\n", "job": job}


def submit(name: str, script: str, **extra) -> tuple[dict, int]:
    answer = call("POST", "/slurm/v0.0.38/job/submit", body=job_body(name, script, **extra))
    return answer, answer["body"].get("job_id", 0)


def save_submit_schema() -> None:
    schemas = call("GET", "/openapi/v3", "jarvice")["body"]["components"]["schemas"]
    data = {"source": "recorded from slurmrestd 22.05.8's GET /openapi/v3 (DSSR test cluster): "
                      "components.schemas v0.0.38_job_submission and v0.0.38_job_properties",
            **{name: schemas[name] for name in ("v0.0.38_job_submission", "v0.0.38_job_properties")}}
    (OUT / "openapi-job-submission.json").write_text(json.dumps(data, indent=2) + "\n")
    print("openapi-job-submission: the submit schema")


def save_clock_and_not_modified() -> None:
    """slurmctld's clock (``GET /diag``), then the job list asked with it as ``update_time``: with
    no job changed in the last second, 22.05 answers 304 and no body."""
    time.sleep(1.5)
    clock = save("diag", call("GET", "/slurm/v0.0.38/diag", "jarvice"),
                 "statistics.req_time: slurmctld's clock, which DSSR asks the next job list with")
    since = clock["body"]["statistics"]["req_time"]
    save("jobs-not-modified", call("GET", f"/slurm/v0.0.38/jobs?update_time={since}", "jarvice"),
         "no job changed since update_time (slurmctld's clock from diag.json): 304, no body")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    save_submit_schema()
    save("ping", call("GET", "/slurm/v0.0.38/ping", "jarvice"))
    save("ping-unauthenticated", call("GET", "/slurm/v0.0.38/ping", auth=None))
    save("ping-expired-token", call("GET", "/slurm/v0.0.38/ping", "jarvice", auth="expired"),
         "an expired token: 22.05 answers as if slurmctld were down")
    save("path-unknown", call("GET", "/slurm/v0.0.40/ping", "jarvice"),
         "a version this slurmrestd does not serve")
    save("jobs-expired-token", call("GET", "/slurm/v0.0.38/jobs", "jarvice", auth="expired"))
    save("db-job-expired-token", call("GET", "/slurmdb/v0.0.38/job/1", "jarvice", auth="expired"),
         "accounting answers 200 with error 1007 for a refused token")

    held, held_id = submit(f"{TAG}-held", "echo held-and-released", hold=True, exclusive="exclusive",
                           time_limit=5, memory_per_node=100)
    save("submit-held", held, "a held job: job_id AND error 2042, which is not a failure")
    done, done_id = submit(f"{TAG}-ok", "echo hello; sleep 2")
    save("submit", done)
    failed, failed_id = submit(f"{TAG}-fail", "echo about to fail; exit 3")
    running, running_id = submit(f"{TAG}-run", "echo started; sleep 120")
    save("submit-bad-partition", call("POST", "/slurm/v0.0.38/job/submit",
                                      body=job_body(f"{TAG}-bad", "true", partition="nope")))
    save("submit-unknown-field", call("POST", "/slurm/v0.0.38/job/submit",
                                      body=job_body(f"{TAG}-bad", "true", bogus=1)))
    save("submit-no-environment", call("POST", "/slurm/v0.0.38/job/submit",
                                       body={"script": "#!/bin/bash\ntrue\n",
                                             "job": {"name": f"jarvice_{TAG}-noenv",
                                                     "current_working_directory": SCRATCH}}))

    wait_state(running_id, {"RUNNING"})
    wait_state(done_id, {"COMPLETED"})
    wait_state(failed_id, {"FAILED"})
    ids = {held_id, done_id, failed_id, running_id}
    save("jobs", only_ours(call("GET", "/slurm/v0.0.38/jobs", "jarvice"), ids),
         "held (PENDING), running, completed and failed jobs; other jobs removed")
    save("job-running", call("GET", f"/slurm/v0.0.38/job/{running_id}", "jarvice"))
    save("job-completed", call("GET", f"/slurm/v0.0.38/job/{done_id}", "jarvice"))
    save("job-failed", call("GET", f"/slurm/v0.0.38/job/{failed_id}", "jarvice"))
    save("release", call("POST", f"/slurm/v0.0.38/job/{held_id}", body={"hold": False}))
    save("delete", call("DELETE", f"/slurm/v0.0.38/job/{running_id}"))
    wait_state(running_id, {"CANCELLED"})
    save("job-cancelled", call("GET", f"/slurm/v0.0.38/job/{running_id}", "jarvice"))
    save("delete-ended", call("DELETE", f"/slurm/v0.0.38/job/{done_id}"), "cancelling a job that has ended")

    for jobid in ids:
        wait_purged(jobid)
    save("job-purged", call("GET", f"/slurm/v0.0.38/job/{done_id}", "jarvice"),
         "after MinJobAge 22.05 answers 500 with error 2017")
    save_clock_and_not_modified()
    save("db-job-completed", call("GET", f"/slurmdb/v0.0.38/job/{done_id}", "jarvice"))
    save("db-job-failed", call("GET", f"/slurmdb/v0.0.38/job/{failed_id}", "jarvice"),
         "dbv0.0.38 bug: exit_code says SUCCESS/0 for a job that exited 3; state.current says FAILED")
    save("db-job-cancelled", call("GET", f"/slurmdb/v0.0.38/job/{running_id}", "jarvice"))
    save("db-job-unknown", call("GET", "/slurmdb/v0.0.38/job/987654321", "jarvice"))
    save("job-unknown", call("GET", "/slurm/v0.0.38/job/987654321", "jarvice"))
    for jobid in ids:
        for suffix in (".out",):
            for path in Path(SCRATCH).glob(f"jarvice_{TAG}-*.{jobid}{suffix}"):
                path.unlink()


if __name__ == "__main__":
    main()
