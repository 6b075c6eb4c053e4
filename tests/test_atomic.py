import pytest

from quicktune.atomic import TMP_PREFIX, atomic_write


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "a.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(dest, "w") as f:
            f.write("half of the new")
            raise RuntimeError("killed mid-write")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_finished_write_replaces_the_file_and_creates_its_directory(tmp_path):
    dest = tmp_path / "sub" / "b.bin"
    with atomic_write(dest, sync_dir=True) as f:
        assert f.name != str(dest) and f.name.rsplit("/", 1)[1].startswith(TMP_PREFIX)
        f.write(b"new")
    assert dest.read_bytes() == b"new"
    assert [p.name for p in dest.parent.iterdir()] == ["b.bin"]
