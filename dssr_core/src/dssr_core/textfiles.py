"""Reading job output on DSSR's own host, for connectors that can see the files."""

import os
from pathlib import Path

BLOCK = 64 * 1024


def last_lines(path: str | Path, lines: int) -> str:
    """The last ``lines`` lines of a file, read backwards from its end in blocks.

    Raises FileNotFoundError when there is no file. Undecodable bytes become U+FFFD.
    """
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= lines:
            step = min(BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    ends_with_newline = data.endswith(b"\n")
    parts = data.split(b"\n")
    if ends_with_newline:
        parts.pop()
    kept = b"\n".join(parts[-lines:]) + (b"\n" if ends_with_newline and parts else b"")
    return kept.decode("utf-8", errors="replace")
