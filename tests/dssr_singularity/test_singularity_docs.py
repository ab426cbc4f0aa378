"""docs/singularity.md points at the settings the executor declares, and documents the test double."""

from pathlib import Path

from dssr_core.catalogue import declared_settings
from dssr_core.plugins import make_registry
from dssr_singularity import executor

DOC = Path(__file__).resolve().parents[2] / "docs" / "singularity.md"


def test_the_executors_settings_are_declared_and_the_page_points_at_their_reference():
    declared = {entry.setting for entry in declared_settings(make_registry())
                if entry.distribution == "dssr_singularity"}
    assert declared == set(executor.SETTINGS) and len(declared) >= 20
    assert "(settings.md#singularity-executor-dssr_singularity)" in DOC.read_text()


def test_the_double_is_documented_as_a_test_double():
    doc = DOC.read_text()
    assert "## The `singularity` test double" in doc and "**test double**" in doc
