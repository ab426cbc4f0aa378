"""Reading upstream's script: base64, the ``str.format``-style template, and the job facts.

Shared by every executor so that no executor parses facts its own way.
"""

import base64
import binascii
import json
import re
import shlex

from dssr_core.durations import parse_walltime
from dssr_core.errors import InvalidRequest
from dssr_core.models import JobFacts
from dssr_core.numbers import whole_number

PARAMETERS_FIELD = "DOWNSTREAM_PARAMETERS"
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{" + PARAMETERS_FIELD + r"\}|[{}]")
_FACT_LINE = re.compile(r"^\s*(?:export\s+)?((?:JOBOBJ|JARVICE)_[A-Z0-9_]+)=(.*?)\s*$")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_SIMPLE_VALUE = re.compile(r"^[A-Za-z0-9._:,@+/=-]*$")
_OPTION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
#: Bounds of the numeric facts: far above any machine, far below what overflows a field.
MAX_CORES = 100_000
MAX_GPUS = 1_024
MAX_MEMORY_GB = 1_000_000
MAX_OVERLAY_MB = 100_000_000


def decode_script(encoded: object, field: str) -> str:
    """Decode upstream's base64 script; raise InvalidRequest naming ``field`` when it isn't."""
    if not isinstance(encoded, str) or not encoded.strip():
        raise InvalidRequest(f"{field} must be a non-empty base64 string.")
    compact = "".join(encoded.split())
    # b64decode(validate=True) takes "YWJj=" and "YWJj====": padding is checked here.
    if len(compact) % 4 or not _BASE64.fullmatch(compact):
        raise InvalidRequest(f"{field} is not valid base64 (RFC 4648, with its = padding).")
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field} is not valid base64.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{field} does not decode to UTF-8 text.") from None


def escape_braces(text: str) -> str:
    """Text made literal inside a template: every brace doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def render_template(template: str, parameters: str) -> str:
    """Replace ``{DOWNSTREAM_PARAMETERS}`` and turn ``{{``/``}}`` into single braces.

    Done by hand rather than with ``str.format`` so that a script can never reach Python
    attributes through a format field; any other single brace is refused.
    """

    def replace(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        if token == "{" + PARAMETERS_FIELD + "}":
            return parameters
        line = template.count("\n", 0, match.start()) + 1
        raise InvalidRequest(
            f"hpc_script has a single {token!r} on line {line}; literal braces must be "
            f"doubled and the only field is {{{PARAMETERS_FIELD}}}."
        )

    return _TEMPLATE_TOKEN.sub(replace, template)


def read_facts(template: str) -> dict[str, str]:
    """The ``KEY=value`` facts upstream wrote into the script (JOBOBJ_* and JARVICE_*).

    Braces come back single, one layer of matching quotes is removed; the first line that
    sets a key wins.
    """
    facts: dict[str, str] = {}
    for line in template.splitlines():
        match = _FACT_LINE.match(line)
        if match and match.group(1) not in facts:
            value = match.group(2).replace("{{", "{").replace("}}", "}")
            facts[match.group(1)] = _unquoted(value)
    return facts


def _unquoted(value: str) -> str:
    """The value without one layer of matching quotes (JSON inside them stays as it is)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def export_lines(values: dict[str, object]) -> str:
    """``export KEY=value`` lines, every value shell-quoted."""
    lines = []
    for key, value in values.items():
        text = "" if value is None else str(value)
        lines.append(f"export {key}={shlex.quote(text)}")
    return "\n".join(lines)


def job_facts(facts: dict[str, str], nodes: int, *, require_cores: bool = False) -> JobFacts:
    """Typed, validated :class:`JobFacts` from the raw facts of :func:`read_facts`."""
    if require_cores and not facts.get("JARVICE_CPU_CORES"):
        raise InvalidRequest("The script does not set JARVICE_CPU_CORES (cores per node).")
    cores = _int_fact(facts, "JARVICE_CPU_CORES", default=1, minimum=1, maximum=MAX_CORES)
    gpus = _int_fact(facts, "JOBOBJ_GPUS", default=0, minimum=0, maximum=MAX_GPUS)
    memory = _int_fact(facts, "JOBOBJ_RAM", default=0, minimum=0, maximum=MAX_MEMORY_GB)
    interactive = _bool_fact(facts, "JOBOBJ_INTERACTIVE")
    walltime = facts.get("JOBOBJ_WALLTIME", "").strip()
    devices = parse_devices(facts.get("JOBOBJ_DEVICES", ""))
    exclusive = devices.exclusive or gpus > 0 or interactive
    return JobFacts(
        nodes=nodes,
        cores=cores,
        gpus=gpus,
        memory_gb=memory or None,
        walltime_s=parse_walltime(walltime, "JOBOBJ_WALLTIME") if walltime else None,
        licenses=_simple_fact(facts, "JOBOBJ_LICENSES"),
        partition=devices.partition,
        exclusive=exclusive,
        interactive=interactive,
        overlay_mb=devices.overlay_mb,
        scheduler_options=devices.scheduler_options,
        arch=_simple_fact(facts, "JOBOBJ_ARCH"),
    )


class _Devices:
    def __init__(self):
        self.partition: str | None = None
        self.exclusive = True
        self.overlay_mb: int | None = None
        self.scheduler_options: tuple[tuple[str, str], ...] = ()


def parse_devices(text: str) -> _Devices:
    """Parse ``JOBOBJ_DEVICES``: a JSON list of ``key=value`` pseudo-devices."""
    devices = _Devices()
    if not text.strip():
        return devices
    try:
        entries = json.loads(text)
    except ValueError:
        raise InvalidRequest("JOBOBJ_DEVICES must be a JSON list of 'key=value' strings.") from None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise InvalidRequest("JOBOBJ_DEVICES must be a JSON list of 'key=value' strings.")
    options = []
    for entry in entries:
        key, sep, value = entry.partition("=")
        key = key.strip()
        if not sep:
            raise InvalidRequest(f"JOBOBJ_DEVICES entry {entry!r} is not of the form key=value.")
        if key == "partition":
            devices.partition = _checked_simple(value, "the partition device")
        elif key == "exclusive":
            devices.exclusive = _parse_bool(value, "the exclusive device")
        elif key == "overlay":
            devices.overlay_mb = _parse_int(value, "the overlay device (MB)", minimum=0,
                                            maximum=MAX_OVERLAY_MB)
        elif key.startswith("sbatch_"):
            options.append(_scheduler_option(key.removeprefix("sbatch_"), value))
        else:
            raise InvalidRequest(
                f"Unknown device {key!r} in JOBOBJ_DEVICES; known: partition, exclusive, "
                "overlay, sbatch_<option>."
            )
    devices.scheduler_options = tuple(options)
    return devices


def _scheduler_option(option: str, value: str) -> tuple[str, str]:
    """The syntax of a ``sbatch_<option>=<value>`` device; which options and values a scheduler
    takes is its connector's to check (the Slurm connectors: ``dssr_slurm.jobspec``)."""
    if not _OPTION_NAME.match(option):
        raise InvalidRequest(
            f"Device sbatch_{option!r} names no valid option: lower-case letters, digits, '-'."
        )
    if any(ch in value for ch in "\n\r\0"):
        raise InvalidRequest(f"Device sbatch_{option} has a line break in its value.")
    return option, value


def _int_fact(facts: dict[str, str], key: str, *, default: int, minimum: int, maximum: int) -> int:
    text = facts.get(key, "").strip()
    if not text:
        return default
    return _parse_int(text, key, minimum=minimum, maximum=maximum)


def _parse_int(text: str, what: str, *, minimum: int, maximum: int) -> int:
    value = whole_number(text.strip())
    if value is None or not minimum <= value <= maximum:
        raise InvalidRequest(
            f"{what} must be a whole number from {minimum} to {maximum}, not {_shown(text)}."
        )
    return value


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _bool_fact(facts: dict[str, str], key: str) -> bool:
    text = facts.get(key, "").strip()
    return _parse_bool(text, key) if text else False


def _parse_bool(text: str, what: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidRequest(f"{what} must be True or False, not {_shown(text)}.")


def _simple_fact(facts: dict[str, str], key: str) -> str | None:
    text = facts.get(key, "").strip()
    return _checked_simple(text, key) if text else None


def _checked_simple(text: str, what: str) -> str:
    text = text.strip()
    if not text or not _SIMPLE_VALUE.match(text) or text.startswith("-"):
        raise InvalidRequest(
            f"{what} may hold only letters, digits and . _ : , @ + / = -, not {_shown(text)}."
        )
    return text
