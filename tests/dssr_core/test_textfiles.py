import pytest

from dssr_core.textfiles import BLOCK, last_lines


@pytest.mark.parametrize("text,lines,expected", [
    ("a\nb\nc\n", 2, "b\nc\n"),
    ("a\nb\nc", 2, "b\nc"),
    ("a\nb\n", 5, "a\nb\n"),
    ("", 3, ""),
    ("\n\n", 1, "\n"),
])
def test_last_lines(tmp_path, text, lines, expected):
    path = tmp_path / "out"
    path.write_text(text)
    assert last_lines(path, lines) == expected


def test_last_lines_of_a_file_larger_than_a_block(tmp_path):
    path = tmp_path / "out"
    path.write_text("".join(f"line {i:07d} " + "x" * 50 + "\n" for i in range(3 * BLOCK // 60)))
    tail = last_lines(path, 2000)
    assert tail.count("\n") == 2000
    assert tail.endswith(f"line {3 * BLOCK // 60 - 1:07d} " + "x" * 50 + "\n")


def test_undecodable_bytes_and_missing_files(tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"ok\n\xff\xfe\n")
    assert last_lines(path, 1) == "\ufffd\ufffd\n"
    with pytest.raises(FileNotFoundError):
        last_lines(tmp_path / "missing", 1)
