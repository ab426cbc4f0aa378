"""``pvcls`` lists one level of ``<state dir>/data`` and never anything outside it."""

import os

import pytest

from dssr_core.errors import Forbidden, NotAvailable


@pytest.fixture
def data(dummy, connector):
    root = dummy.state_dir / "data"
    (root / "results" / "run-1").mkdir(parents=True)
    (root / "results" / "summary.txt").write_text("12345")
    (root / "readme").write_text("hi")
    os.utime(root / "readme", (1_700_000_000, 1_700_000_000))
    outside = dummy.tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("nope")
    (root / "escape").symlink_to(outside)
    (root / "results" / "to-etc").symlink_to("/etc")
    (root / "dangling").symlink_to(root / "nothing-here")
    (root / "shortcut").symlink_to(root / "results")
    return root


def _listing(entries, details=False):
    return [entry.as_line(details) for entry in entries]


def test_the_root_lists_one_level_and_hides_links_that_lead_out(connector, data):
    assert _listing(connector.pvcls("", False)) == [
        "/data/readme", "/data/results/", "/data/shortcut/"]


def test_a_folder_with_details(connector, data):
    entries = {entry.path: entry for entry in connector.pvcls("results", True)}
    assert sorted(entries) == ["results/run-1", "results/summary.txt"]
    assert entries["results/run-1"].is_dir
    assert (entries["results/summary.txt"].is_dir, entries["results/summary.txt"].size) == (False, 5)
    readme = next(e for e in connector.pvcls("", True) if e.path == "readme")
    assert readme.as_line(True) == "1700000000 2 /data/readme"


def test_a_symlink_inside_the_root_is_followed_under_its_own_name(connector, data):
    assert _listing(connector.pvcls("shortcut", False)) == [
        "/data/shortcut/run-1/", "/data/shortcut/summary.txt"]


def test_a_file_lists_itself(connector, data):
    assert _listing(connector.pvcls("results/summary.txt", False)) == ["/data/results/summary.txt"]


@pytest.mark.parametrize("path", [
    "escape", "escape/secret", "results/to-etc", "../outside", "results/../../outside"])
def test_a_path_that_leads_outside_is_forbidden(connector, data, path):
    with pytest.raises(Forbidden):
        connector.pvcls(path, False)


@pytest.mark.parametrize("path", ["missing", "results/missing", "dangling"])
def test_a_missing_path_is_not_available(connector, data, path):
    with pytest.raises(NotAvailable):
        connector.pvcls(path, True)


def test_an_empty_data_root_exists_from_the_start(connector):
    assert connector.pvcls("", False) == []
