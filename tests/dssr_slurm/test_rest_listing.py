"""slurmrestd's job list read for the fields DSSR uses, as it arrives; the last list kept when
nothing changed; what a replica knows of job ids for the check for a twin."""

import json

import pytest
from rest_fixtures import recorded

from dssr_core.remote.jobs import JobRecord
from dssr_slurm.rest.listing import JOB_FIELDS, Listing, highest_job_id, read_jobs, unchanged
from dssr_slurm.rest.twins import TwinIndex

VERSIONS = ("v0.0.38", "v0.0.40", "v0.0.43", "v0.0.45")


class Trickle:
    """An answer's bytes, ``size`` at a time at most (as a socket gives them)."""

    def __init__(self, data: bytes, size: int):
        self.data, self.size, self.offset = data, size, 0

    def read(self, size: int | None = None) -> bytes:
        size = len(self.data) if size is None else min(size, self.size)
        chunk = self.data[self.offset:self.offset + size]
        self.offset += len(chunk)
        return chunk


def fields(job: dict) -> dict:
    return {key: job.get(key) for key in JOB_FIELDS}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("layout", [{"indent": 2}, {"indent": 4}, {"indent": None},
                                    {"separators": (",", ":")}])
@pytest.mark.parametrize("size", [7, 1 << 16])
def test_a_job_list_is_read_for_the_fields_dssr_uses_in_any_layout_and_any_pieces(version, layout, size):
    body = recorded(version, "jobs")["body"]
    body = {**body, "jobs": body["jobs"] + [{**body["jobs"][0], "name": 'jarvice_x", "\n    }', "job_id": 9}]}
    read = read_jobs(Trickle(json.dumps(body, **layout).encode(), size))
    assert read["jobs"] == [fields(job) for job in body["jobs"]]
    assert read.get("errors") == body.get("errors") and read.get("last_update") == body.get("last_update")


@pytest.mark.parametrize("text", [b'{"jobs": [\n  {\n    "job_id": 1\n', b'{"jobs": [\n  {"job_id": 1}, 7]}',
                                  b"<html>Unable find requested URL</html>"])
def test_an_answer_cut_short_or_not_a_job_list_is_no_list(text):
    with pytest.raises(ValueError):
        read_jobs(Trickle(text, 5))


def test_an_answer_without_a_job_list_is_read_whole():
    body = {"errors": [{"error_number": 2017, "error": "Invalid job id specified"}], "warnings": []}
    assert read_jobs(Trickle(json.dumps(body, indent=2).encode(), 3)) == {**body, "jobs": []}


def test_nothing_changed_only_when_slurm_says_so():
    assert unchanged({"jobs": [], "last_update": {"set": True, "infinite": False, "number": 0}}, 1796649062)
    assert not unchanged({"jobs": [], "last_update": {"set": True, "number": 1796649070}}, 1796649062), \
        "a list that changed to empty carries the time of the change"
    assert not unchanged({"jobs": []}, None), "no update_time was asked for (v0.0.38)"
    assert not unchanged({"jobs": [{"job_id": 1}], "last_update": 0}, 1796649062)


def test_the_last_list_moves_running_jobs_on_by_the_clock():
    running = JobRecord("7", "a", "kirby", "RUNNING", elapsed_s=10)
    listing = Listing(records=(running, JobRecord("8", "b", "kirby", "PENDING"),
                               JobRecord("9", "c", "kirby", "SUSPENDED", elapsed_s=4)),
                      highest=9, last_update=1796649062, taken=1000.0, api="v0.0.45")
    assert [record.elapsed_s for record in listing.records_now(1005.5)] == [15, 0, 4]
    assert listing.update_time("v0.0.45") == 1796649062 and listing.update_time("v0.0.44") is None
    assert highest_job_id([{"job_id": 3}, {"job_id": 12}, {"job_id": True}, {}]) == 12


def test_the_twin_index_knows_the_live_jobs_up_to_an_id():
    index = TwinIndex()
    assert index.upto is None
    index.listed([JobRecord("5", "a", "kirby", "PENDING"), JobRecord("6", "a", "kirby", "COMPLETED"),
                  JobRecord("7", "b", "kirby", "RUNNING")], highest=9)
    assert index.upto == 9 and [r.jobid for r in index.named("a")] == ["5"]
    index.learned([JobRecord("11", "a", "kirby", "PENDING")], upto=12)
    assert index.upto == 12 and [r.jobid for r in index.named("a")] == ["5", "11"]
    assert [r.jobid for r in index.named("a", upto=10)] == ["5"]
    index.listed([JobRecord("7", "b", "kirby", "RUNNING")], highest=10)  # asked for before the ids read
    assert index.upto == 12 and [r.jobid for r in index.named("a")] == ["11"], "what was read after it stays"
    index.ended(JobRecord("11", "a", "kirby", "PENDING"))
    assert index.named("a") == []
