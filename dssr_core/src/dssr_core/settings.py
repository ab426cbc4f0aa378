"""Settings: the environment (and an optional YAML file) read once, validated, frozen.

Core settings become attributes; plugins read their own through the typed getters, which
raise :class:`SettingsError` with one sentence naming the setting.
"""

import logging
import os
import re
from collections.abc import Mapping

import attrs
import yaml

from dssr_core.errors import SettingsError
from dssr_core.numbers import whole_number

DEFAULT_CONNECTOR = "dummy"
DEFAULT_EXECUTOR = "shell"
_LEGACY_MODULE = re.compile(r"^(?:connectors|executors)\.([A-Za-z0-9_-]+)\.(?:connector|executor)$")
_SECRET_WORDS = ("KEY", "PASSWORD", "TOKEN", "SECRET", "PKEY", "CREDENTIAL")


def is_secret(name: str) -> bool:
    """Whether a setting's value must never be shown (keys, passwords, tokens)."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS) and not upper.endswith(("_FILE", "_PATH"))


@attrs.frozen
class Settings:
    """Every setting DSSR and its plugins read. Build with :meth:`from_env`."""

    values: Mapping[str, str] = attrs.field(repr=False)
    connector: str = DEFAULT_CONNECTOR
    executor: str = DEFAULT_EXECUTOR
    log_level: int = logging.INFO
    bind: str = "127.0.0.1"
    port: int = 5000
    threads: int = 16
    server_key: str | None = attrs.field(default=None, repr=False)
    max_body_bytes: int = 8 * 1024 * 1024
    connection_limit: int = 1000
    channel_timeout: int = 30
    cleanup_interval: int = 5
    backlog: int = 1024
    max_header_bytes: int = 64 * 1024

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        config_file: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> "Settings":
        """Read the environment, under it the YAML file, over it explicit overrides.

        The YAML file is ``config_file`` or ``DSSR_CONFIG``: a mapping of setting names to
        values, for instance ``JARVICE_BAREMETAL_CONNECTOR: slurm-cli``.
        """
        environ = dict(os.environ if environ is None else environ)
        path = config_file or environ.get("DSSR_CONFIG")
        values = {**_read_yaml(path), **environ} if path else environ
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        probe = cls(values=values)
        key = probe.get("JARVICE_SCHED_SERVER_KEY") or None
        if key is not None and ":" not in key:
            raise SettingsError("JARVICE_SCHED_SERVER_KEY must be of the form user:password.")
        return cls(
            values=values,
            connector=connector_name(probe),
            executor=executor_name(probe),
            log_level=probe.get_log_level("JARVICE_SCHED_LOGLEVEL", logging.INFO),
            bind=probe.get("WAITRESS_BIND_ADDRESS") or "127.0.0.1",
            port=probe.get_int("WAITRESS_PORT", 5000, minimum=0, maximum=65535),
            threads=probe.get_int("DSSR_THREADS", 16, minimum=1, maximum=512),
            server_key=key,
            max_body_bytes=probe.get_int("DSSR_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024),
            # Upstream polls with a few short requests every few seconds: an open connection
            # that sends nothing for 30 s is an idle or hostile one.
            connection_limit=probe.get_int("DSSR_CONNECTION_LIMIT", 1000, minimum=1, maximum=100_000),
            channel_timeout=probe.get_int("DSSR_CHANNEL_TIMEOUT", 30, minimum=1, maximum=3600),
            cleanup_interval=probe.get_int("DSSR_CLEANUP_INTERVAL", 5, minimum=1, maximum=3600),
            backlog=probe.get_int("DSSR_BACKLOG", 1024, minimum=1, maximum=65535),
            max_header_bytes=probe.get_int("DSSR_MAX_HEADER_BYTES", 64 * 1024, minimum=4096),
        )

    # Typed getters for core and plugins -------------------------------------------------

    def get(self, name: str, default: str | None = None, *, legacy: tuple[str, ...] = ()) -> str | None:
        """The value of ``name``, else of its legacy spellings in order, else ``default``."""
        found = self._lookup(name, legacy)
        return default if found is None else found[1]

    def _lookup(self, name: str, legacy: tuple[str, ...]) -> tuple[str, str] | None:
        """``(the spelling that is set, its value)``, or None."""
        for key in (name, *legacy):
            value = self.values.get(key)
            if value is not None and str(value).strip() != "":
                return key, str(value).strip()
        return None

    def get_int(self, name: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None, legacy: tuple[str, ...] = ()) -> int:
        found = self._lookup(name, legacy)
        if found is None:
            return default
        key, text = found
        value = whole_number(text)
        if value is None:
            raise SettingsError(f"{key} must be a whole number, not {_shown(key, text)}.")
        if minimum is not None and value < minimum:
            raise SettingsError(f"{key} must be at least {minimum}, not {value}.")
        if maximum is not None and value > maximum:
            raise SettingsError(f"{key} must be at most {maximum}, not {value}.")
        return value

    def get_float(self, name: str, default: float, *, minimum: float = 0.0,
                  legacy: tuple[str, ...] = ()) -> float:
        found = self._lookup(name, legacy)
        if found is None:
            return default
        key, text = found
        try:
            value = float(text)
        except ValueError:
            raise SettingsError(f"{key} must be a number, not {_shown(key, text)}.") from None
        if value < minimum:
            raise SettingsError(f"{key} must be at least {minimum}, not {value}.")
        return value

    def get_bool(self, name: str, default: bool, *, legacy: tuple[str, ...] = ()) -> bool:
        found = self._lookup(name, legacy)
        if found is None:
            return default
        key, text = found
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{key} must be true or false, not {_shown(key, text)}.")

    def get_list(self, name: str, *, legacy: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A comma-separated list, items stripped, empty items dropped."""
        text = self.get(name, legacy=legacy) or ""
        return tuple(item.strip() for item in text.split(",") if item.strip())

    def get_log_level(self, name: str, default: int, *, legacy: tuple[str, ...] = ()) -> int:
        text = self.get(name, legacy=legacy)
        if text is None:
            return default
        if whole_number(text) is not None:
            return whole_number(text)
        level = logging.getLevelName(text.upper())
        if not isinstance(level, int):
            raise SettingsError(f"{name} must be a log level such as 10, 20 or INFO, not {text!r}.")
        return level


def connector_name(settings: Settings) -> str:
    """The connector's short name, translating older module-path spellings."""
    name = settings.get("JARVICE_BAREMETAL_CONNECTOR", DEFAULT_CONNECTOR)
    legacy = _LEGACY_MODULE.match(name)
    if legacy is None:
        return name
    short = legacy.group(1)
    if short == "slurm":
        interface = (settings.get("JARVICE_SLURM_INTERFACE") or "cli").lower()
        if interface not in ("cli", "http"):
            raise SettingsError(f"JARVICE_SLURM_INTERFACE must be cli or http, not {interface!r}.")
        return "slurmrestd" if interface == "http" else "slurm-cli"
    return short


def executor_name(settings: Settings) -> str:
    name = settings.get("JARVICE_BAREMETAL_EXECUTOR", DEFAULT_EXECUTOR)
    legacy = _LEGACY_MODULE.match(name)
    return legacy.group(1) if legacy else name


def _read_yaml(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as error:
        raise SettingsError(f"DSSR_CONFIG file {path} cannot be read: {error.strerror}.") from None
    except yaml.YAMLError:
        raise SettingsError(f"DSSR_CONFIG file {path} is not valid YAML.") from None
    if not isinstance(data, dict):
        raise SettingsError(f"DSSR_CONFIG file {path} must hold a mapping of setting names to values.")
    return {str(k): "" if v is None else str(v) for k, v in data.items()}


def _shown(name: str, text: str) -> str:
    return "(hidden)" if is_secret(name) else repr(text)
