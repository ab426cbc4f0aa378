"""docs/singularity.md documents every setting the executor reads, and the test double."""

import re
from pathlib import Path

import dssr_singularity

DOC = Path(__file__).resolve().parents[2] / "docs" / "singularity.md"
SOURCES = sorted(Path(dssr_singularity.__file__).parent.glob("*.py"))
#: A setting name passed to a Settings getter or to a helper taking the settings, or a legacy
#: spelling. (Facts are read with .get too: anchoring on `settings` leaves them out.)
NAME = r'"((?:JARVICE|DSSR)_[A-Z0-9_]+)"'
SETTING = re.compile(rf"(?:settings\.get(?:_int|_bool|_list)?\(|\(settings,\s*){NAME}|legacy=\({NAME}")


def settings_read() -> set[str]:
    names = set()
    for source in SOURCES:
        for match in SETTING.finditer(source.read_text()):
            names.add(match.group(1) or match.group(2))
    return names


def test_every_setting_is_documented():
    names = settings_read()
    assert len(names) >= 25                       # the pattern still finds them
    doc = DOC.read_text()
    assert [name for name in sorted(names) if f"| `{name}` |" not in doc
            and f"`{name}` |\n" not in doc] == []


def test_the_double_is_documented_as_a_test_double():
    doc = DOC.read_text()
    assert "## The `singularity` test double" in doc and "**test double**" in doc
