"""The three bugs a connector written from the docs once passed the contract suite with, made
again in the docs' example connector: each fails the contract test written for it."""

import tempfile
from pathlib import Path

import pytest
from mutants import MUTANTS, TARGETS, run_contract, write_mutant

#: mutant -> the contract test that must fail it
MISSED = {
    "local-tail": "test_two_live_jobs_each_tail_their_own_output",
    "local-waiting-running": "test_job_waiting_for_resources_is_queued_not_running",
    "local-per-process": "test_restart_keeps_running_held_and_ended_jobs",
}


@pytest.mark.parametrize("ident", sorted(MISSED))
def test_the_contract_fails_a_bug_it_once_missed(ident):
    mutant = next(mutant for mutant in MUTANTS if mutant.ident == ident)
    with tempfile.TemporaryDirectory(prefix=f"dssr-mutant-{ident}-") as folder:
        failing, output = run_contract(TARGETS[mutant.target], write_mutant(mutant, Path(folder)),
                                       ("-k", MISSED[ident]))
    assert failing == MISSED[ident], output[-3000:]
