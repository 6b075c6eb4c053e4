from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from quicktune.data import DataError, TaskSpec, load_task, parse_task_specs
from tests.helpers import make_image_folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_split_folder_loads_uint8_rgb(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "d", classes=3, per_class=5, val_per_class=2, size=12, split=True)
    data = load_task(root, size=8, cache_dir=cache)
    assert data.classes == ["class_0", "class_1", "class_2"]
    assert data.train.images.shape == (15, 3, 8, 8) and data.train.images.dtype == torch.uint8
    assert data.val.images.shape == (6, 3, 8, 8)
    assert torch.bincount(data.train.labels).tolist() == [5, 5, 5]
    assert data.descriptors() == {"n_samples": 21.0, "n_classes": 3.0, "image_size": 12.0, "channels": 3.0}
    assert data.name == "d"


def test_test_folder_is_the_validation_split(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "d", classes=2, per_class=4, val_per_class=3, split=True)
    (root / "val").rename(root / "test")
    data = load_task(root, size=8, cache_dir=cache)
    assert len(data.val) == 6 and len(data.train) == 8


def test_unsplit_folder_split_is_stratified_and_reproducible(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "d", classes=3, per_class=10)
    a = load_task(root, size=8, cache_dir=cache)
    b = load_task(root, size=8, cache_dir=None)  # no cache: decoded afresh, same split
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert torch.bincount(a.val.labels).tolist() == [2, 2, 2]
    assert torch.bincount(a.train.labels).tolist() == [8, 8, 8]
    other = load_task(TaskSpec(str(root), seed=1), size=8, cache_dir=cache)
    assert not torch.equal(a.val.images, other.val.images)
    # train and val are disjoint: no validation image appears among the training images
    flat_train = {bytes(x.numpy()) for x in a.train.images}
    assert not any(bytes(x.numpy()) in flat_train for x in a.val.images)


def test_grayscale_is_repeated_and_reported_as_one_channel(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "g", classes=2, per_class=3, mode="L", split=True, val_per_class=1)
    data = load_task(root, size=8, cache_dir=cache)
    x = data.train.images
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert data.descriptors()["channels"] == 1.0


def test_mixed_sizes_and_modes_are_normalised(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "m", classes=2, per_class=3, size=10, split=True, val_per_class=1)
    Image.new("RGBA", (30, 17), (10, 20, 30, 128)).save(root / "train" / "class_0" / "rgba.png")
    Image.new("P", (5, 9)).save(root / "train" / "class_1" / "pal.gif")
    data = load_task(root, size=6, cache_dir=cache)
    assert data.train.images.shape == (8, 3, 6, 6)
    assert data.descriptors()["channels"] == 3.0


def test_second_load_reads_the_cache_and_a_change_invalidates_it(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "d", classes=2, per_class=4, split=True, val_per_class=2)
    first = load_task(root, size=8, cache_dir=cache)
    files = sorted(cache.glob("*.pt"))
    assert len(files) == 2  # one per split folder
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = load_task(root, size=8, cache_dir=cache)
    assert torch.equal(first.train.images, again.train.images)
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # read, not rewritten
    # editing an image changes the key: a new cache entry with the new pixels
    p = root / "train" / "class_0" / "000.png"
    Image.new("RGB", (16, 16), (0, 0, 0)).save(p)
    os.utime(p, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    changed = load_task(root, size=8, cache_dir=cache)
    assert len(list(cache.glob("*.pt"))) == 3
    assert int(changed.train.images[0].sum()) == 0


# -- derived tasks ---------------------------------------------------------------------------------
def test_class_subset_shots_and_size(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "base", classes=5, per_class=6, size=16, split=True, val_per_class=2)
    spec = TaskSpec(str(root), classes=3, shots=2, size=8)
    data = load_task(spec, cache_dir=cache)
    assert spec.task_name == "base/c3-k2-8px"
    assert data.n_classes == 3 and data.size == 8
    assert torch.bincount(data.train.labels).tolist() == [2, 2, 2]
    assert torch.bincount(data.val.labels).tolist() == [2, 2, 2]  # validation keeps every image
    assert data.train.images.shape[-1] == 8
    assert data.descriptors()["image_size"] == 8.0
    # the same options give the same classes and shots; another seed other classes
    again = load_task(spec, cache_dir=cache)
    assert again.classes == data.classes and torch.equal(again.train.images, data.train.images)
    draws = {tuple(load_task(TaskSpec(str(root), classes=3, seed=s), size=8, cache_dir=cache).classes) for s in range(6)}
    assert len(draws) > 1


def test_val_shots_caps_validation_images_per_class(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "base", classes=3, per_class=4, size=16, split=True, val_per_class=5)
    spec = TaskSpec.parse(f"{root}:vshots=2")
    data = load_task(spec, size=8, cache_dir=cache)
    assert spec.task_name == "base/vk2" and TaskSpec.parse(spec.to_string()) == spec
    assert torch.bincount(data.val.labels).tolist() == [2, 2, 2]
    assert torch.bincount(data.train.labels).tolist() == [4, 4, 4]  # training images untouched
    assert torch.equal(load_task(spec, size=8, cache_dir=cache).val.images, data.val.images)  # seeded
    with pytest.raises(DataError, match="vshots"):
        TaskSpec.parse(f"{root}:vshots=0")


def test_explicit_class_names(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "base", classes=4, per_class=3, split=True, val_per_class=1)
    spec = TaskSpec.parse(f"{root}:names=class_3+class_1")
    data = load_task(spec, size=8, cache_dir=cache)
    assert data.classes == ["class_1", "class_3"]
    assert spec.task_name == "base/c[class_1+class_3]"


def test_spec_string_round_trip_and_list_parsing(tmp_path: Path) -> None:
    spec = TaskSpec.parse("/data/cifar10-small:classes=5,shots=50,size=32")
    assert (spec.path, spec.classes, spec.shots, spec.size) == ("/data/cifar10-small", 5, 50, 32)
    assert spec.task_name == "cifar10-small/c5-k50-32px"
    assert TaskSpec.parse(spec.to_string()) == spec
    assert TaskSpec.parse("/data/x").task_name == "x"
    assert TaskSpec.parse("/data/x:seed=3,classes=2").task_name == "x/c2-s3"
    assert TaskSpec.parse("/data/x:name=mine,size=64").task_name == "mine/64px"
    specs = parse_task_specs("/a,/b:classes=5,shots=10,/c:size=32")
    assert [(s.path, s.classes, s.shots, s.size) for s in specs] == [
        ("/a", None, None, None), ("/b", 5, 10, None), ("/c", None, None, 32)]
    with pytest.raises(DataError, match="unknown dataset option 'clases'"):
        TaskSpec.parse("/a:clases=3")
    with pytest.raises(DataError, match="must be a number"):
        TaskSpec.parse("/a:shots=many")


# -- bad input -------------------------------------------------------------------------------------
def _one_line(e: pytest.ExceptionInfo[DataError]) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_task(tmp_path / "nope", size=8, cache_dir=None)
    assert str(tmp_path / "nope") in _one_line(e) and "no such directory" in str(e.value)


def test_no_class_folders(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError) as e:
        load_task(tmp_path / "flat", size=8, cache_dir=None)
    assert str(tmp_path / "flat") in _one_line(e) and "no class folders" in str(e.value)


def test_only_one_class(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "one", classes=1, per_class=3)
    with pytest.raises(DataError) as e:
        load_task(root, size=8, cache_dir=None)
    assert str(root) in _one_line(e) and "at least 2" in str(e.value)


def test_empty_class(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "e", classes=2, per_class=3)
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError) as e:
        load_task(root, size=8, cache_dir=None)
    assert str(root / "empty") in _one_line(e) and "no images" in str(e.value)


def test_corrupt_image_is_an_error_unless_skipped(tmp_path: Path, cache: Path) -> None:
    root = make_image_folder(tmp_path / "c", classes=2, per_class=4, split=True, val_per_class=2)
    bad1 = root / "train" / "class_0" / "broken.png"
    bad1.write_bytes(b"definitely not a png")
    bad2 = root / "val" / "class_1" / "truncated.png"
    good = (root / "val" / "class_1" / "000.png").read_bytes()
    bad2.write_bytes(good[: len(good) // 3])
    with pytest.raises(DataError) as e:
        load_task(root, size=8, cache_dir=cache)
    assert str(bad1) in _one_line(e) and "unreadable" in str(e.value) and "1 more" in str(e.value)
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        data = load_task(root, size=8, cache_dir=cache, skip_unreadable=True)
    assert sorted(data.skipped) == sorted([str(bad1), str(bad2)])
    assert len(data.train) == 8 and len(data.val) == 4


def test_class_left_empty_by_skipping_is_an_error(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "c", classes=2, per_class=2)
    for p in (root / "class_1").iterdir():
        p.write_bytes(b"junk")
    with pytest.raises(DataError) as e, pytest.warns(UserWarning):
        load_task(root, size=8, cache_dir=None, skip_unreadable=True)
    assert str(root / "class_1") in _one_line(e) and "no readable images" in str(e.value)


def test_validation_classes_must_match(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "v", classes=3, per_class=2, split=True, val_per_class=1)
    for p in (root / "val" / "class_2").iterdir():
        p.unlink()
    (root / "val" / "class_2").rmdir()
    with pytest.raises(DataError) as e:
        load_task(root, size=8, cache_dir=None)
    assert str(root / "val") in _one_line(e) and "same class folders" in str(e.value)


def test_bad_derived_options(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "b", classes=3, per_class=4, split=True, val_per_class=1)
    with pytest.raises(DataError, match=r"classes <= 3"):
        load_task(TaskSpec(str(root), classes=4), size=8, cache_dir=None)
    with pytest.raises(DataError, match=r"shots <= 4"):
        load_task(TaskSpec(str(root), shots=5), size=8, cache_dir=None)
    with pytest.raises(DataError, match=r"not folders here"):
        load_task(TaskSpec(str(root), class_names=("class_0", "zebra")), size=8, cache_dir=None)
    with pytest.raises(DataError, match=r"classes >= 2"):
        TaskSpec(str(root), classes=1)


def test_size_defaults_to_the_originals(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "s", classes=2, per_class=3, size=10, split=True, val_per_class=1)
    data = load_task(root, cache_dir=None)
    assert data.size == 10 and data.train.images.shape[-1] == 10
    assert np.isfinite(list(data.descriptors().values())).all()


def _rows(split) -> set[bytes]:
    return {bytes(x.numpy().tobytes()) for x in split.images}


def test_a_test_split_is_the_test_folder_or_a_seeded_share_of_train_never_seen_otherwise(tmp_path: Path) -> None:
    from quicktune.data import TaskSpec, load_task

    root = make_image_folder(tmp_path / "tv", classes=3, per_class=10, val_per_class=5, split=True, size=8)
    (root / "val").rename(root / "test")  # train/ + test/: collect validates on test/, suggest tests on it
    legacy = load_task(TaskSpec(str(root)), cache_dir=None)
    assert legacy.test is None and len(legacy.val) == 15
    held = load_task(TaskSpec(str(root), test_fraction=0.2), cache_dir=None)
    assert held.test is not None and len(held.test) == 15 and "test/ folder" in held.test_source
    assert _rows(held.test) == _rows(legacy.val)  # the folder itself
    assert len(held.train) + len(held.val) == 30 and not _rows(held.val) & _rows(held.test)

    flat = make_image_folder(tmp_path / "flat", classes=3, per_class=10, size=8)
    a = load_task(TaskSpec(str(flat), test_fraction=0.3, shots=3, seed=4), cache_dir=None)
    b = load_task(TaskSpec(str(flat), test_fraction=0.3, shots=3, seed=4), cache_dir=None)
    assert torch.equal(a.test.images, b.test.images)  # seeded
    assert torch.bincount(a.test.labels).tolist() == [3, 3, 3]  # stratified: 30% of each class
    assert not _rows(a.test) & (_rows(a.train) | _rows(a.val))  # disjoint from what the search sees
    assert torch.bincount(a.train.labels).tolist() == [3, 3, 3]  # shots drawn from what is left
    other = load_task(TaskSpec(str(flat), test_fraction=0.3, seed=5), cache_dir=None)
    assert not torch.equal(a.test.images, other.test.images)
    assert TaskSpec.parse(f"{flat}:test=0.3,seed=4").test_fraction == 0.3
    assert TaskSpec.parse(TaskSpec(str(flat), test_fraction=0.3).to_string()).test_fraction == 0.3


def test_holding_out_a_test_split_from_too_few_images_is_refused_in_one_line(tmp_path: Path) -> None:
    from quicktune.data import DataError, TaskSpec, load_task

    tiny = make_image_folder(tmp_path / "tiny", classes=2, per_class=2, size=8)
    with pytest.raises(DataError, match="at least 3 images a class") as e:
        load_task(TaskSpec(str(tiny), test_fraction=0.2), cache_dir=None)
    assert "\n" not in str(e.value) and "test=0" in str(e.value)
    with pytest.raises(DataError, match="`0 <= test < 1`"):
        TaskSpec(str(tiny), test_fraction=1.0)
    assert load_task(TaskSpec(str(tiny), test_fraction=0.0), cache_dir=None).test is None


@pytest.mark.parametrize("option, message", [("classes=4", "classes <= 3"), ("names=c0+zz", "not folders here")])
def test_loader_and_descriptor_scan_refuse_the_same_class_options(tmp_path: Path, option: str, message: str) -> None:
    from quicktune.data.describe import describe_folder

    root = make_image_folder(tmp_path / "d", classes=3, per_class=6)
    spec = f"{root}:{option}"
    with pytest.raises(DataError, match=message):
        load_task(TaskSpec.parse(spec))
    with pytest.raises(DataError, match=message):
        describe_folder(spec)
    # What both accept, both describe alike.
    ok = TaskSpec.parse(f"{root}:classes=2")
    assert describe_folder(ok)["n_classes"] == load_task(ok).descriptors()["n_classes"] == 2
