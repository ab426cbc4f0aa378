"""Job states as the legacy API names them, which are Slurm's: compact codes (``R``) and long names
(``RUNNING``), mapped to the contract. A connector to another scheduler maps its states to these.

Slurm's connectors read them as they are: ``squeue %t`` gives codes, ``squeue %T``, ``sacct`` and
slurmrestd give long names, sometimes with a suffix (``CANCELLED by 1234``) or flags.
"""

LONG_NAMES = {
    "BF": "BOOT_FAIL",
    "CA": "CANCELLED",
    "CD": "COMPLETED",
    "CF": "CONFIGURING",
    "CG": "COMPLETING",
    "DL": "DEADLINE",
    "F": "FAILED",
    "NF": "NODE_FAIL",
    "OOM": "OUT_OF_MEMORY",
    "PD": "PENDING",
    "PR": "PREEMPTED",
    "R": "RUNNING",
    "RD": "RESV_DEL_HOLD",
    "RF": "REQUEUE_FED",
    "RH": "REQUEUE_HOLD",
    "RQ": "REQUEUED",
    "RS": "RESIZING",
    "RV": "REVOKED",
    "S": "SUSPENDED",
    "SE": "SPECIAL_EXIT",
    "SI": "SIGNALING",
    "SO": "STAGE_OUT",
    "ST": "STOPPED",
    "TO": "TIMEOUT",
}
CODES = {long: code for code, long in LONG_NAMES.items()}

#: The contract: these codes count as running, these as queued (LEGACY_API.md).
RUNNING_CODES = frozenset({"R", "RH", "RS", "SI", "ST", "S", "CG", "SO"})
QUEUED_CODES = frozenset({"CF", "PD", "RD", "RF"})
#: States a job never leaves: its files may be collected.
FINAL_CODES = frozenset({"BF", "CA", "CD", "DL", "F", "NF", "OOM", "PR", "RV", "SE", "TO"})


def state_name(state: str) -> str:
    """The long upper-case name of a state given as a code or a long name.

    ``"CANCELLED by 1234"`` -> ``"CANCELLED"``, ``"r"`` -> ``"RUNNING"``; an unknown word is
    returned upper-cased, so that nothing is made up.
    """
    words = state.strip().upper().replace("+", " ").split()
    if not words:
        return "UNKNOWN"
    return LONG_NAMES.get(words[0], words[0])


def state_code(state: str) -> str | None:
    """The compact code of a state, or None when Slurm has no such state."""
    return CODES.get(state_name(state))


def is_running(state: str) -> bool:
    return state_code(state) in RUNNING_CODES


def is_queued(state: str) -> bool:
    return state_code(state) in QUEUED_CODES


def is_final(state: str) -> bool:
    return state_code(state) in FINAL_CODES


def is_live(state: str) -> bool:
    """Running or queued: the job still holds (or waits for) resources."""
    return is_running(state) or is_queued(state)


#: For ``squeue -t``: every state that counts as queued or running, in long names.
LIVE_STATE_NAMES = ",".join(sorted(LONG_NAMES[code] for code in RUNNING_CODES | QUEUED_CODES))
