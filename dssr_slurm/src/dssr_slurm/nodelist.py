"""Slurm host lists (``node[01-03,07],gpu1``) expanded without ``scontrol show hostnames``.

``scontrol`` is one command per job; the status path expands lists itself.
"""

import itertools
import re

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_HOSTS = 100_000


def expand_nodelist(text: str) -> tuple[str, ...]:
    """Host names of a Slurm host list, in order.

    >>> expand_nodelist("node[01-03,07],gpu1")
    ('node01', 'node02', 'node03', 'node07', 'gpu1')

    Empty text and Slurm's placeholders (``(null)``, ``None assigned``) give no host. A list
    this function cannot read is returned as one name rather than guessed at.
    """
    text = text.strip()
    if not text or text.startswith("(") or text.lower() == "none assigned":
        return ()
    hosts: list[str] = []
    for item in _split_top_level(text):
        try:
            hosts.extend(_expand_item(item))
        except ValueError:
            return (text,)
        if len(hosts) > MAX_HOSTS:
            return (text,)
    return tuple(hosts)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are outside brackets."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    items.append(text[start:])
    return [item for item in items if item]


def _expand_item(item: str) -> list[str]:
    """``rack[1-2]-n[01-02]`` -> every combination, in order."""
    parts = re.split(r"(\[[^\]]*\])", item)
    choices = []
    for part in parts:
        if part.startswith("["):
            choices.append(_expand_ranges(part[1:-1]))
        elif "[" in part or "]" in part:
            raise ValueError(item)
        else:
            choices.append([part])
    return ["".join(combination) for combination in itertools.product(*choices)]


def _expand_ranges(ranges: str) -> list[str]:
    """``01-03,07`` -> ``01 02 03 07``, keeping the zero padding."""
    numbers = []
    for piece in ranges.split(","):
        match = _RANGE.match(piece.strip())
        if match is None:
            raise ValueError(ranges)
        first, last = match.group(1), match.group(2) or match.group(1)
        if int(last) < int(first) or int(last) - int(first) > MAX_HOSTS:
            raise ValueError(ranges)
        width = len(first)
        numbers.extend(str(n).zfill(width) for n in range(int(first), int(last) + 1))
    return numbers
