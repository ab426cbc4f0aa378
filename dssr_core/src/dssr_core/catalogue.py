"""Every installed distribution's settings, from their declarations: collected from the
plugins, listed with their effective values (``dssr settings``) and written as the tables of
docs/settings.md (``dssr settings --markdown``)."""

import attrs

from dssr_core.declarations import Setting
from dssr_core.errors import PluginError, SettingsError
from dssr_core.remote import SETTINGS as REMOTE_SETTINGS
from dssr_core.settings import CORE_SETTINGS, Settings

CORE_DISTRIBUTION = "dssr_core"
#: Variables with these prefixes that no declaration reads are listed by ``dssr settings``.
SETTING_PREFIXES = ("JARVICE_", "DSSR_", "WAITRESS_")
_SHOWN_VALUE = 60


@attrs.frozen
class Declared:
    """A setting and the distribution that declares it."""

    setting: Setting
    distribution: str


def declared_settings(registry) -> tuple[Declared, ...]:
    """DSSR's own settings (with those of :mod:`dssr_core.remote`, which connectors of any scheduler
    family share), then every plugin's (hook ``dssr_declare_settings``), by distribution.

    Two plugins of one distribution may declare the same setting; one name declared twice by two
    distributions, or differently, is a :class:`PluginError`.
    """
    declared = {setting.name: Declared(setting, CORE_DISTRIBUTION)
                for setting in (*CORE_SETTINGS, *REMOTE_SETTINGS)}
    for plugin_name, settings in registry.answers("dssr_declare_settings"):
        distribution = registry.origin(plugin_name)[0]
        for setting in settings:
            _add(declared, Declared(setting, distribution))
    order = _distribution_order(declared.values())
    return tuple(sorted(declared.values(), key=lambda entry: order[entry.distribution]))


def _add(declared: dict[str, Declared], new: Declared) -> None:
    existing = declared.setdefault(new.setting.name, new)
    if existing != new:
        raise PluginError(
            f"The setting {new.setting.name} is declared twice, differently: by {existing.distribution} "
            f"and by {new.distribution}. Uninstall one of them, or block one with DSSR_DISABLE_PLUGINS.")


def _distribution_order(declared) -> dict[str, int]:
    """DSSR's own settings first, then the distributions by name."""
    names = sorted({entry.distribution for entry in declared} - {CORE_DISTRIBUTION})
    return {name: index for index, name in enumerate([CORE_DISTRIBUTION, *names])}


# dssr settings ------------------------------------------------------------------------------


@attrs.frozen
class Effective:
    """What a setting is now: ``value`` as text (a secret masked), ``source`` and a problem."""

    declared: Declared
    value: str
    source: str
    problem: str | None = None


def effective_settings(settings: Settings, declared: tuple[Declared, ...]) -> list[Effective]:
    return [_effective(settings, entry) for entry in declared]


def _effective(settings: Settings, entry: Declared) -> Effective:
    setting = entry.setting
    found = settings.found(setting)
    if found is None:
        value = setting.default_value()
        text = setting.format(value) if value is not None else _unset(setting)
        return Effective(entry, text, "default")
    source = found.source if found.spelling == setting.name else f"{found.source}, as {found.spelling}"
    try:
        value = settings.read(setting)
    except SettingsError as error:
        return Effective(entry, "INVALID", source, error.message)
    return Effective(entry, setting.format(value), source)


def _unset(setting: Setting) -> str:
    return f"unset: {setting.default_text.replace('`', '')}" if setting.default_text else "unset"


def settings_report(settings: Settings, registry) -> tuple[list[str], bool]:
    """The lines ``dssr settings`` prints, and whether every value is valid."""
    rows = effective_settings(settings, declared_settings(registry))
    width = max(len(row.declared.setting.name) for row in rows)
    source_width = max(len(row.source) for row in rows)
    lines = [f"connector: {settings.connector}, {settings.connector_reason}",
             f"executor: {settings.executor}, {settings.executor_reason}"]
    distribution = None
    for row in rows:
        if row.declared.distribution != distribution:
            distribution = row.declared.distribution
            lines += ["", f"{distribution}:", f"  {'SETTING':<{width}}  {'FROM':<{source_width}}  VALUE"]
        value = row.problem or (row.value if row.source == "default" else _shortened(row.value))
        lines.append(f"  {row.declared.setting.name:<{width}}  {row.source:<{source_width}}  {value}")
    unread = unread_names(settings, tuple(row.declared for row in rows))
    if unread:
        lines += ["", "Set, but read by no installed distribution: " + ", ".join(unread)]
    return lines, not any(row.problem for row in rows)


def unread_names(settings: Settings, declared: tuple[Declared, ...]) -> list[str]:
    """Names that look like settings, are set, and that no declaration reads (names only)."""
    spellings = {spelling for entry in declared for spelling in entry.setting.spellings}
    return sorted(name for name in settings.values
                  if name.startswith(SETTING_PREFIXES) and name not in spellings)


def _shortened(text: str) -> str:
    return text if len(text) <= _SHOWN_VALUE else text[: _SHOWN_VALUE - 3] + "..."


# docs/settings.md -------------------------------------------------------------------------------


def markdown_tables(declared: tuple[Declared, ...]) -> dict[str, str]:
    """docs/settings.md's table of each distribution, by distribution."""
    tables: dict[str, list[str]] = {}
    for entry in declared:
        rows = tables.setdefault(entry.distribution, [
            "| setting | kind | default | meaning | other spellings |", "|---|---|---|---|---|"])
        setting = entry.setting
        cells = (f"`{setting.name}`", setting.describe_kind(), setting.describe_default(), setting.help,
                 ", ".join(f"`{spelling}`" for spelling in setting.legacy))
        rows.append("|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|")
    return {distribution: "\n".join(rows) + "\n" for distribution, rows in tables.items()}


def markdown(declared: tuple[Declared, ...]) -> str:
    """Every table, each under a comment that names its distribution."""
    return "\n".join(f"<!-- declared by {distribution} (dssr settings --markdown) -->\n{table}"
                     for distribution, table in markdown_tables(declared).items())
