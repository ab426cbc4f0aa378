"""Slurm states -> the contract's running / queued, from codes and from long names."""

import pytest

from dssr_core.remote.states import (
    LIVE_STATE_NAMES,
    is_final,
    is_live,
    is_queued,
    is_running,
    state_code,
    state_name,
)

CONTRACT_RUNNING = ["R", "RH", "RS", "SI", "ST", "S", "CG", "SO"]
CONTRACT_QUEUED = ["CF", "PD", "RD", "RF"]


@pytest.mark.parametrize("code", CONTRACT_RUNNING)
def test_running_states_of_the_contract(code):
    assert is_running(code) and is_running(state_name(code)) and not is_queued(code)


@pytest.mark.parametrize("code", CONTRACT_QUEUED)
def test_queued_states_of_the_contract(code):
    assert is_queued(code) and is_queued(state_name(code)) and not is_running(code)


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "CANCELLED by 1234", "TIMEOUT", "NODE_FAIL",
                                   "OUT_OF_MEMORY", "PREEMPTED", "DEADLINE", "BOOT_FAIL", "CD", "CA"])
def test_ended_states_are_neither_running_nor_queued(state):
    assert is_final(state) and not is_live(state)


def test_long_names_and_suffixes():
    assert state_name("CANCELLED by 1234") == "CANCELLED"
    assert state_name("r") == "RUNNING"
    assert state_name("PENDING") == "PENDING"
    assert state_code("COMPLETING") == "CG"


def test_an_unknown_state_is_kept_not_made_up():
    assert state_name("WEIRD_NEW_STATE") == "WEIRD_NEW_STATE"
    assert not is_live("WEIRD_NEW_STATE") and not is_final("WEIRD_NEW_STATE")
    assert state_name("") == "UNKNOWN"


def test_live_state_list_for_squeue_holds_every_live_state():
    names = LIVE_STATE_NAMES.split(",")
    assert sorted(map(state_code, names)) == sorted(CONTRACT_RUNNING + CONTRACT_QUEUED)
