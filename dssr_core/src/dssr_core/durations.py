"""Durations: Slurm's time formats in, the contract's ``HH:MM:SS`` out."""

import re

from dssr_core.errors import InvalidRequest
from dssr_core.numbers import is_digits, whole_number

# [0-9], not \d: \d takes any script's digits. Nine digits keep every value far from overflow.
_SLURM_TIME = re.compile(
    r"(?:(?P<days>[0-9]{1,9})-)?(?:(?P<a>[0-9]{1,9}):)?(?:(?P<b>[0-9]{1,9}):)?(?P<c>[0-9]{1,9})"
    r"(?:\.[0-9]+)?"
)
#: The longest walltime DSSR takes: 68 years, what a signed 32-bit count of seconds holds.
MAX_WALLTIME_S = 2**31 - 1


def format_hms(seconds: int | float | None) -> str:
    """Format seconds as ``HH:MM:SS``; hours may exceed 24. ``None`` or negative -> 0."""
    total = max(int(seconds or 0), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def parse_slurm_duration(text: str) -> int:
    """Seconds in a Slurm duration: ``SS``, ``M:SS``, ``H:MM:SS``, ``D-HH[:MM[:SS]]``.

    ``INVALID``, ``UNLIMITED``, ``N/A`` and empty text count as 0.

    >>> parse_slurm_duration("1-02:03:04")
    93784
    """
    text = text.strip()
    if not text or not is_digits(text[0]):
        return 0
    match = _SLURM_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not a Slurm duration: {text!r}")
    days = int(match["days"] or 0)
    parts = [int(p) for p in (match["a"], match["b"], match["c"]) if p is not None]
    if days and len(parts) == 1:
        parts = [parts[0], 0, 0]  # "D-HH"
    elif days and len(parts) == 2:
        parts = [parts[0], parts[1], 0]  # "D-HH:MM"
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_walltime(text: str, field: str) -> int:
    """Seconds in a walltime given by upstream (``HH:MM:SS``, ``D-HH:MM:SS`` or minutes)."""
    text = text.strip()
    minutes = whole_number(text)
    try:
        if minutes is not None:
            seconds = minutes * 60
        elif not is_digits(text[:1]):
            raise ValueError(text)
        else:
            seconds = parse_slurm_duration(text)
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= MAX_WALLTIME_S:
        shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
        raise InvalidRequest(
            f"{field} must be a duration such as 02:00:00 or 1-00:00:00 (at most "
            f"{MAX_WALLTIME_S // 86400} days), not {shown}."
        )
    return seconds
