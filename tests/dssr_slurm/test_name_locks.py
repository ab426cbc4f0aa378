"""Submissions of one name wait for each other in one DSSR; other names do not wait."""

import threading

from dssr_core.remote.base import NameLocks


def test_one_name_waits_another_does_not_and_nothing_is_kept():
    locks = NameLocks()
    inside = threading.Event()
    leave = threading.Event()
    entered = []

    def first():
        with locks.held("job-a"):
            inside.set()
            leave.wait(10)

    def enter(name):
        with locks.held(name):
            entered.append(name)

    holder = threading.Thread(target=first)
    holder.start()
    assert inside.wait(10)
    same, other = (threading.Thread(target=enter, args=(name,)) for name in ("job-a", "job-b"))
    same.start()
    other.start()
    other.join(10)
    same.join(0.3)
    assert entered == ["job-b"] and same.is_alive()
    leave.set()
    for thread in (holder, same):
        thread.join(10)
    assert entered == ["job-b", "job-a"]
    assert not locks._locks
