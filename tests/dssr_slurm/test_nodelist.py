"""Host lists expanded without scontrol."""

import pytest

from dssr_slurm.nodelist import expand_nodelist


@pytest.mark.parametrize("text, hosts", [
    ("localhost", ("localhost",)),
    ("node[01-03,07]", ("node01", "node02", "node03", "node07")),
    ("node[1-2],gpu7", ("node1", "node2", "gpu7")),
    ("a[1-2]-b[08-09]", ("a1-b08", "a1-b09", "a2-b08", "a2-b09")),
    ("n[9-11]", ("n9", "n10", "n11")),
    ("", ()),
    ("(null)", ()),
    ("None assigned", ()),
])
def test_expansion(text, hosts):
    assert expand_nodelist(text) == hosts


@pytest.mark.parametrize("text", ["node[1-", "node[a-b]", "node[3-1]"])
def test_a_list_it_cannot_read_is_kept_whole(text):
    assert expand_nodelist(text) == (text,)
