"""The declaration of one setting: :class:`Setting`, and how its text becomes a typed value.

A setting is declared once, where the code that reads it lives; readers, the init report,
``dssr settings`` and docs/settings.md all come from that declaration.
"""

import logging
import os

import attrs

from dssr_core.errors import SettingsError
from dssr_core.numbers import decimal_number, whole_number

KINDS = ("str", "int", "float", "bool", "list", "choice", "path", "directory", "log level")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
_SECRET_WORDS = ("KEY", "PASSWORD", "TOKEN", "SECRET", "PKEY", "CREDENTIAL")


def is_secret(name: str) -> bool:
    """Whether a variable's name says its value must never be shown (keys, passwords, tokens).

    For variables that no declaration covers (a job's environment); a declared setting says
    it itself (:attr:`Setting.secret`).
    """
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS) and not upper.endswith(("_FILE", "_PATH"))


@attrs.frozen
class Found:
    """A setting's raw text as given: under which ``spelling``, and from which ``source``
    (``environment``, ``config file <path>`` or ``command line``)."""

    spelling: str
    text: str = attrs.field(repr=False)
    source: str


@attrs.frozen
class Setting:
    """One setting: ``name``, ``kind``, ``default``, bounds, secret or not, other spellings, help.

    ``kind`` is one of :data:`KINDS`: ``str``; ``int`` and ``float`` (with ``minimum`` and
    ``maximum``); ``bool`` (true/false, yes/no, on/off, 1/0); ``list`` (comma-separated, as a
    tuple); ``choice`` (one of ``choices``, lower case); ``path`` (a local file, ``~``
    expanded); ``directory`` (an absolute directory, also one on the cluster, without a
    trailing ``/``); ``log level`` (10, 20, ... or a name such as ``INFO``). ``legacy`` are
    older spellings (and the chart's), checked in order after ``name``. ``default`` is the
    value when none of the spellings is set; ``default_text`` describes, for the docs, a
    default that is worked out at start (``default`` is then ``None``). An empty value is
    the same as no value: the default.

    Example::

        PORT = Setting("PBS_SERVER_PORT", "the PBS server's port", kind="int", default=15001,
                       minimum=1, maximum=65535)
        port = settings.read(PORT)
    """

    name: str
    help: str = attrs.field(validator=lambda _, __, text: _one_table_cell(text))
    kind: str = attrs.field(default="str", validator=attrs.validators.in_(KINDS))
    default: object = None
    default_text: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False
    legacy: tuple[str, ...] = ()

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.legacy)

    def default_value(self) -> object:
        if self.kind == "path" and isinstance(self.default, str):
            return os.path.expanduser(self.default)
        return self.default

    def parse(self, spelling: str, text: str) -> object:
        """The typed value of ``text``, given as ``spelling``; SettingsError names the spelling."""
        return getattr(self, "_parse_" + self.kind.replace(" ", "_"))(spelling, text)

    def shown(self, text: str) -> str:
        """``text`` as an error may show it: quoted, or ``(hidden)`` for a secret."""
        return "(hidden)" if self.secret or is_secret(self.name) else repr(text)

    # One parser per kind ----------------------------------------------------------------

    def _parse_str(self, spelling: str, text: str) -> str:
        return text

    def _parse_int(self, spelling: str, text: str) -> int:
        value = whole_number(text)
        if value is None:
            raise SettingsError(f"{spelling} must be a whole number, not {self.shown(text)}.")
        return self._bounded(spelling, value)

    def _parse_float(self, spelling: str, text: str) -> float:
        value = decimal_number(text)
        if value is None:
            raise SettingsError(f"{spelling} must be a number, not {self.shown(text)}.")
        return self._bounded(spelling, value)

    def _bounded(self, spelling: str, value):
        if self.minimum is not None and value < self.minimum:
            raise SettingsError(f"{spelling} must be at least {_number(self.minimum)}, not {_number(value)}.")
        if self.maximum is not None and value > self.maximum:
            raise SettingsError(f"{spelling} must be at most {_number(self.maximum)}, not {_number(value)}.")
        return value

    def _parse_bool(self, spelling: str, text: str) -> bool:
        lowered = text.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise SettingsError(f"{spelling} must be true or false, not {self.shown(text)}.")

    def _parse_list(self, spelling: str, text: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in text.split(",") if item.strip())

    def _parse_choice(self, spelling: str, text: str) -> str:
        value = text.lower()
        if value not in self.choices:
            raise SettingsError(
                f"{spelling} must be one of {', '.join(self.choices)}, not {self.shown(value)}.")
        return value

    def _parse_path(self, spelling: str, text: str) -> str:
        return os.path.expanduser(text)

    def _parse_directory(self, spelling: str, text: str) -> str:
        if not text.startswith("/") or any(char in text for char in "\n\r\0"):
            raise SettingsError(f"{spelling} must be an absolute directory path, not {self.shown(text)}.")
        return text.rstrip("/") or "/"

    def _parse_log_level(self, spelling: str, text: str) -> int:
        if whole_number(text) is not None:
            return whole_number(text)
        level = logging.getLevelName(text.upper())
        if not isinstance(level, int):
            raise SettingsError(
                f"{spelling} must be a log level such as 10, 20 or INFO, not {self.shown(text)}.")
        return level

    # For the docs and ``dssr settings`` ---------------------------------------------------

    def describe_kind(self) -> str:
        """The kind in words, with its bounds: ``whole number, 1 to 65535``."""
        words = {"str": "text", "int": "whole number", "float": "number", "bool": "true/false",
                 "list": "comma list", "path": "file path", "directory": "absolute directory",
                 "log level": "log level"}
        if self.kind == "choice":
            quoted = [f"`{choice}`" for choice in self.choices]
            text = " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)
        else:
            text = words[self.kind]
        if self.minimum is not None and self.maximum is not None:
            text += f", {_number(self.minimum)} to {_number(self.maximum)}"
        elif self.minimum is not None:
            text += f", at least {_number(self.minimum)}"
        elif self.maximum is not None:
            text += f", at most {_number(self.maximum)}"
        return text + (", secret" if self.secret else "")

    def describe_default(self) -> str:
        """The default in words, as docs/settings.md shows it."""
        if self.default_text:
            return self.default_text
        return "unset" if self.default is None else f"`{self.format(self.default)}`"

    def format(self, value: object) -> str:
        """A typed value as text: ``true``, ``a, b``, ``INFO``; never a secret's value."""
        if value is None or value == () or value == "":
            return "unset" if value is None else "empty"
        if self.secret:
            return "(secret, set)"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ", ".join(value)
        if self.kind == "log level":
            return logging.getLevelName(value)
        return _number(value) if isinstance(value, float) else str(value)


def _one_table_cell(text: str) -> None:
    """Help is one line that fits a cell of docs/settings.md's tables."""
    if not text or any(char in text for char in "|\n"):
        raise ValueError(f"a setting's help is one line without '|', not {text!r}")


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
