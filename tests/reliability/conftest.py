"""The reliability scenarios (issue 8) as a user meets them: real `quicktune` processes, killed
with SIGKILL at chosen moments (`quicktune.testhook`, inert unless $QUICKTUNE_TEST_HOOK_DIR is
set), two writers at once, damaged and planted files.

Tiny on purpose so CI runs them in a few minutes: 3 classes, 20 training shots, 32 px, a tiny
timm test architecture from random weights (collect) or saved by the test as a local hub
checkpoint (suggest), 2 configs x 4 epochs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import make_image_folder

SRC = Path(__file__).resolve().parents[2] / "src"
MODEL = "test_resnet"  # a tiny timm test architecture; --random-init needs no weights file
EPOCHS = 4
CONFIGS = 2


@dataclass
class Proc:
    code: int
    out: str
    err: str


class Cli:
    """Runs `python -m quicktune.cli ...` in its own session (so a kill point's SIGKILL of the
    process group is a kill -9 of exactly that command), with caches and HOME in a temp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hooks = root / "hooks"
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "HOME": str(root / "home"),
            "QUICKTUNE_CACHE": str(root / "cache"),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "COLUMNS": "200",
        }
        for var in ("QUICKTUNE_FEATURES_CACHE", "QUICKTUNE_CONVERTED_CACHE", "XDG_CACHE_HOME", "QUICKTUNE_WEIGHTS"):
            self.env.pop(var, None)

    def start(self, *args: str, kill_at: dict[str, int] | None = None) -> subprocess.Popen:
        env = dict(self.env)
        if kill_at:
            self.hooks.mkdir(exist_ok=True)
            for f in self.hooks.iterdir():
                f.unlink()
            for name, n in kill_at.items():
                (self.hooks / name).write_text(str(n))
            env["QUICKTUNE_TEST_HOOK_DIR"] = str(self.hooks)
        return subprocess.Popen([sys.executable, "-m", "quicktune.cli", *args], env=env, cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def run(self, *args: str, kill_at: dict[str, int] | None = None, timeout: float = 600) -> Proc:
        p = self.start(*args, kill_at=kill_at)
        out, err = p.communicate(timeout=timeout)
        if kill_at:
            fired = [n for n in kill_at if (self.hooks / f"{n}.fired").exists()]
            assert fired, f"no kill point fired (exit {p.returncode}):\n{err[-2000:]}"
            assert p.returncode == -9, (p.returncode, err[-2000:])
        return Proc(p.returncode, out, err)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x (20 train + 6 val) colour-patch PNGs at 32 px."""
    return make_image_folder(tmp_path_factory.mktemp("data") / "colours", classes=3, per_class=20, val_per_class=6,
                             split=True, size=32)


@pytest.fixture(scope="session")
def suggest_folder(tiny_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny folder plus a test/ split (a copy of val/), so suggest keeps all 20 training shots."""
    import shutil

    root = tmp_path_factory.mktemp("sdata") / "colours"
    shutil.copytree(tiny_folder, root)
    shutil.copytree(root / "val", root / "test")
    return root


def collect_args(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["collect", "--datasets", f"{folder}:shots=20,size=32", "--models", MODEL, "--configs", str(CONFIGS),
            "--epochs", str(EPOCHS), "--random-init", "--batch-size", "16", "--threads", "1", "--out", str(out),
            *extra]


def store_rows(store: Path):
    """(de-duplicated rows, raw rows of every part): what a read promises, and what was written."""
    import pandas as pd
    import pyarrow.parquet as pq

    from quicktune.metadataset import MetaDatasetStore

    parts = sorted((store / "runs").glob("*.parquet"))
    raw = pd.concat([pq.read_table(p).to_pandas() for p in parts]) if parts else pd.DataFrame()
    return MetaDatasetStore(store).read(), raw


def curves(df) -> dict[str, list[float]]:
    return {k: [float(v) for v in g.sort_values("epoch")["val_acc"]] for k, g in df.groupby("run_key")}


@dataclass
class SuggestEnv:
    weights: Path
    surrogate: Path


SUGGEST_MODEL = "tiny_r"


@pytest.fixture(scope="session")
def suggest_env(tmp_path_factory: pytest.TempPathFactory) -> SuggestEnv:
    """A weights folder with one tiny local checkpoint the test writes (a timm test architecture,
    random weights, input 32 px) and a tiny surrogate meta-trained for a few steps on synthetic
    curves of it (4-epoch horizon)."""
    from dataclasses import replace

    import pandas as pd
    import torch

    from quicktune import hub
    from quicktune.metadataset.tabular import CurveTable
    from quicktune.surrogate.fit import meta_train
    from quicktune.surrogate.nets import NetConfig
    from tests.helpers import synthetic_runs

    root = tmp_path_factory.mktemp("suggest_env")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = hub.create_model(MODEL, pretrained=False)
        hub.save_checkpoint(model, replace(hub.model_info(MODEL), name=SUGGEST_MODEL, input_size=32), root / "weights")
        datasets = ("d0", "d1", "d2")
        runs = synthetic_runs(datasets=datasets, models=(SUGGEST_MODEL,), max_epochs=EPOCHS)
        feats = []
        for i, d in enumerate(datasets):
            desc = dict(n_samples=60.0 * (i + 1), n_classes=3.0 + i, image_size=32.0, channels=3.0)
            feats += [dict(dataset=d, model="", name=k, value=v, written_at=0.0) for k, v in desc.items()]
        tiny = NetConfig(hp_hidden=8, model_emb=4, meta_hidden=4, curve_channels=4, curve_hidden=8, hidden=16, out_dim=8,
                         cost_hidden=8)
        res = meta_train(CurveTable(runs, pd.DataFrame(feats)), steps=40, batch_size=16, lr=1e-2, seed=0,
                         holdout=["d2"], val_every=20, net=tiny)
    res.surrogate.info["finetune"] = {"batch_size": 16, "max_image_size": 32}
    return SuggestEnv(root / "weights", res.surrogate.save(root / "surrogate.pt"))


def suggest_args(folder: Path, env: SuggestEnv, workdir: Path, budget: str, *extra: str) -> list[str]:
    return ["suggest", "--data", f"{folder}:shots=20", "--budget", budget, "--models", SUGGEST_MODEL,
            "--weights-dir", str(env.weights), "--surrogate", str(env.surrogate), "--candidates", str(CONFIGS),
            "--epochs", str(EPOCHS), "--threads", "1", "--workdir", str(workdir), "--stop-when", "none", "--json", *extra]
