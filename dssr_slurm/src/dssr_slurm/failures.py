"""What a failed Slurm command says: Slurm's own words, and whether Slurm could not be reached.

Shared by slurm-cli (every command it runs) and by the output access over SSH that both Slurm
connectors use.
"""

from dssr_core.errors import ClusterUnavailable
from dssr_core.remote.ssh import CommandResult, command_message

#: Words in Slurm's error output that mean the controller or the database did not answer.
UNREACHABLE = ("unable to contact slurm controller", "socket timed out", "connection refused",
               "zero bytes were transmitted", "transport endpoint is not connected",
               "problem talking to the database", "connection timed out", "slurmdbd")


def is_unreachable(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in UNREACHABLE)


def unreachable_or_failed(program: str, result: CommandResult) -> Exception:
    """The error for a command that failed where it should not: 503 with Slurm's words."""
    message = _sentence(command_message(result))
    if is_unreachable(message):
        return ClusterUnavailable(f"Slurm does not answer ({program}): {message}")
    return ClusterUnavailable(f"{program} failed on the cluster: {message}")


def _sentence(text: str) -> str:
    """Slurm's words closed as a sentence (newer Slurm ends its messages without a period)."""
    return text if text.endswith(".") else text + "."
