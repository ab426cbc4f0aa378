"""Whole numbers read from text: ASCII digits only.

``str.isdigit()`` is true for "²", "٣" and "１", which ``int()`` then refuses or reads as a
number; ``int()`` also takes "1_000", " 7 " and "+7", and fails past 4,300 digits. Every
number DSSR reads from a caller or a setting goes through :func:`whole_number` instead.
"""

import re

#: The largest signed 64-bit integer: what SQLite's INTEGER and Slurm's fields hold.
INT64_MAX = 2**63 - 1
#: More digits than any bound DSSR checks, few enough for ``int()`` to be instant.
_MAX_DIGITS = 30
_WHOLE_NUMBER = re.compile(rf"-?[0-9]{{1,{_MAX_DIGITS}}}")
_DECIMAL_NUMBER = re.compile(
    rf"-?(?:[0-9]{{1,{_MAX_DIGITS}}}(?:\.[0-9]{{0,{_MAX_DIGITS}}})?|\.[0-9]{{1,{_MAX_DIGITS}}})")


def whole_number(text: object) -> int | None:
    """The value of ``text`` when it is an optional ``-`` and ASCII digits, else None.

    >>> whole_number("42"), whole_number("²"), whole_number("4 2")
    (42, None, None)
    """
    if isinstance(text, str) and _WHOLE_NUMBER.fullmatch(text):
        return int(text)
    return None


def decimal_number(text: object) -> float | None:
    """The value of ``text`` when it is ASCII digits with an optional ``-`` and ``.``, else None
    (``float()`` also takes "٣", "1_0", "nan" and "inf")."""
    if isinstance(text, str) and _DECIMAL_NUMBER.fullmatch(text):
        return float(text)
    return None


def is_digits(text: object) -> bool:
    """Whether ``text`` is one or more ASCII digits (``str.isdigit`` takes any script's)."""
    return isinstance(text, str) and text.isascii() and text.isdigit()
