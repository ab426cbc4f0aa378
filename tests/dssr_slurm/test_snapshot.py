"""The status snapshot: at most one refresh per interval, single-flight, failures not kept."""

import threading
import time

import pytest

from dssr_core.errors import ClusterUnavailable
from dssr_core.models import JobListing, JobRef
from dssr_core.remote.jobs import JobRecord
from dssr_core.remote.snapshot import StatusSnapshot

RECORDS = [JobRecord("1", "a", "kirby", "RUNNING", 5, ("n1",)),
           JobRecord("2", "b", "mario", "PENDING"),
           JobRecord("3", "c", "mario", "COMPLETED")]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_listings_and_lookups():
    snapshot = StatusSnapshot(lambda: RECORDS, 2.0).get()
    assert snapshot.running == [JobListing("a", "1")]
    assert snapshot.queued == [JobListing("b", "2")]
    assert snapshot.find(JobRef("a", 1, "1")) is RECORDS[0]
    assert snapshot.find(JobRef("other-name", 1, "1")) is None  # a reused id is not ours


def test_refreshed_at_most_once_per_interval():
    clock, calls = Clock(), []
    snapshot = StatusSnapshot(lambda: calls.append(1) or RECORDS, 2.0, clock=clock)
    first = snapshot.get()
    clock.now += 1.9
    assert snapshot.get() is first and len(calls) == 1
    clock.now += 0.2
    assert snapshot.get() is not first and len(calls) == 2
    snapshot.invalidate()
    snapshot.get()
    assert len(calls) == 3


def test_concurrent_refreshes_collapse_into_one():
    started, release, calls = threading.Event(), threading.Event(), []

    def fetch():
        calls.append(1)
        started.set()
        release.wait(5)
        return RECORDS

    snapshot = StatusSnapshot(fetch, 2.0)
    results = []
    threads = [threading.Thread(target=lambda: results.append(snapshot.get())) for _ in range(16)]
    threads[0].start()
    started.wait(5)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.1)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1
    assert len(results) == 16 and all(result is results[0] for result in results)


def test_a_failed_refresh_reaches_every_waiter_and_is_not_kept():
    clock = Clock()
    started, release = threading.Event(), threading.Event()
    outcome = {"fail": True}

    def fetch():
        started.set()
        release.wait(5)
        if outcome["fail"]:
            raise ClusterUnavailable("Slurm does not answer (squeue): connection refused")
        return RECORDS

    snapshot = StatusSnapshot(fetch, 2.0, clock=clock)
    errors = []

    def poll():
        try:
            snapshot.get()
        except ClusterUnavailable as error:
            errors.append(error.message)

    threads = [threading.Thread(target=poll) for _ in range(8)]
    threads[0].start()
    started.wait(5)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.1)
    release.set()
    for thread in threads:
        thread.join(5)
    assert errors == ["Slurm does not answer (squeue): connection refused"] * 8
    outcome["fail"] = False
    assert snapshot.get().running == [JobListing("a", "1")]  # tried again at once, no empty list kept


def test_an_old_snapshot_is_never_served_when_the_refresh_fails():
    clock, outcome = Clock(), {"fail": False}

    def fetch():
        if outcome["fail"]:
            raise ClusterUnavailable("down")
        return RECORDS

    snapshot = StatusSnapshot(fetch, 2.0, clock=clock)
    snapshot.get()
    outcome["fail"] = True
    clock.now += 5
    with pytest.raises(ClusterUnavailable):
        snapshot.get()
    with pytest.raises(ClusterUnavailable):
        snapshot.get()
    assert snapshot.peek() is not None  # kept for facts that never change (an ended state)
