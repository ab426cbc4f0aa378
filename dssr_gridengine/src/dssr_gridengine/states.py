"""Grid Engine's job states (``qstat``) and accounting records (``qacct``) in the legacy API's words.

The legacy API's states are Slurm's (:mod:`dssr_core.remote.states`). ``qstat`` shows live
jobs only, as letters: ``qw`` waiting, ``hqw`` held, ``r`` running, ``t`` being started, ``s``,
``S``, ``T`` suspended, ``d`` being deleted, ``E`` in error (``Eqw``: the job could not start and
waits for an administrator), ``R`` restarted. An ended job is read from ``qacct``: ``failed``
(0, or a code and a reason) and ``exit_status`` (128 + the signal for a killed job).
"""

#: qstat's letters -> the legacy API's state, checked in this order.
_LIVE = (
    ("d", "COMPLETING"),  # qdel'd, still on its host: counts as running until it is gone
    ("E", "PENDING"),     # waits for an administrator (qmod -cj) or a qdel
    ("h", "PENDING"),
    ("w", "PENDING"),
    ("s", "SUSPENDED"),
    ("S", "SUSPENDED"),
    ("T", "SUSPENDED"),
    ("r", "RUNNING"),
    ("t", "RUNNING"),
    ("R", "RUNNING"),
)
#: ``failed`` codes of qacct for a job that qdel ended (100: "assumedly after job", the job was
#: killed while it ran).
KILLED_BY_DELETE = "100"
#: Exit statuses of a job killed by KILL or TERM (128 + the signal).
KILLED = frozenset({137, 143})


def live_state(letters: str) -> str:
    """The legacy API's state of a job qstat shows with ``letters`` (``hqw``, ``r``, ``dr``...)."""
    for letter, state in _LIVE:
        if letter in letters:
            return state
    return "PENDING"


def ended_state(failed: str, exit_status: int | None) -> str:
    """The legacy API's state of an ended job from qacct's ``failed`` and ``exit_status``."""
    code = failed.split(":", 1)[0].strip()
    if code == KILLED_BY_DELETE or (exit_status in KILLED and code != "0"):
        return "CANCELLED"
    if code not in ("", "0"):
        return "FAILED"  # Grid Engine could not start or finish it (the reason is in qacct)
    return "COMPLETED" if exit_status == 0 else "FAILED"
