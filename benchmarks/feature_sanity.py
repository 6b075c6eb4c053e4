"""Sanity check of quicktune.features on the real hub models and a few real tasks.

For every model the weights dir holds (hub.list_models) and each task below, compute the
transferability features at n_samples images, time them, and check what should hold:

* the CIFAR-10-pretrained ResNets are most similar (EMD) to cifar10-small;
* LogME / LEEP of the CIFAR-10 ResNets are higher on cifar10-small than on omniglot;
* LogME agrees with a cheap ground truth: 5-fold cross-validated accuracy of a linear probe
  (logistic regression) on the same features;
* classifier-weight prototypes (the default, no source images needed) rank tasks like real
  source class means do (the CIFAR ResNets, whose source images are here).

Tasks: cifar10-small (train split), omniglot20 (20 characters drawn with seed 0 from
images_background_small1, 20 drawings each), digits (sklearn's 8x8 digits exported as PNGs).

    /work/venv/bin/python benchmarks/feature_sanity.py [--n-samples 500] [--threads 1]

Writes benchmarks/results/feature_sanity.csv, .png (heatmaps) and .md (the checks).
"""

from __future__ import annotations

import argparse
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from quicktune import features as qf
from quicktune import hub
from quicktune.data import TaskData, load_task

REPO = Path(__file__).resolve().parents[1]

TASKS = ("cifar10-small", "omniglot20", "digits")


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------
def omniglot_folder(shared: Path, work: Path, n_chars: int = 20, seed: int = 0) -> Path:
    """An ImageFolder of `n_chars` Omniglot characters (symlinked from the extracted zip)."""
    extracted = work / "omniglot"
    root = extracted / "images_background_small1"
    if not root.is_dir():
        with zipfile.ZipFile(shared / "data" / "omniglot" / "images_background_small1.zip") as z:
            z.extractall(extracted)
    chars = sorted(p for p in root.glob("*/*") if p.is_dir())
    rng = np.random.default_rng(seed)
    chosen = sorted(chars[i] for i in rng.choice(len(chars), n_chars, replace=False))
    folder = work / f"omniglot{n_chars}"
    folder.mkdir(parents=True, exist_ok=True)
    for c in chosen:
        link = folder / f"{c.parent.name}__{c.name}"
        if not link.exists():
            link.symlink_to(c.resolve(), target_is_directory=True)
    return folder


def digits_folder(work: Path) -> Path:
    """sklearn's 8x8 digits (1,797 images, 10 classes) as grayscale PNGs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = work / "digits"
    if not folder.is_dir():
        d = load_digits()
        tmp = work / ".digits-tmp"
        for i, (img, y) in enumerate(zip(d.images, d.target)):
            (tmp / str(y)).mkdir(parents=True, exist_ok=True)
            Image.fromarray((img * (255 / 16)).round().astype(np.uint8), mode="L").save(tmp / str(y) / f"{i:04d}.png")
        os.replace(tmp, folder)
    return folder


def load_tasks(shared: Path, work: Path) -> tuple[dict[str, TaskData], TaskData]:
    """The target tasks, and CIFAR-10 source images for the CIFAR ResNets' class-mean prototypes."""
    tasks = {
        "cifar10-small": load_task(shared / "data" / "cifar10-small"),
        "omniglot20": load_task(omniglot_folder(shared, work)),
        "digits": load_task(digits_folder(work)),
    }
    # Source: the CIFAR-10 training images as their own ImageFolder (split 80/20 here); sampled
    # with another seed than the target so source and target samples are mostly different images.
    source = load_task(shared / "data" / "cifar10-small" / "train")
    return tasks, source


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------
def probe_accuracy(feats: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """5-fold cross-validated accuracy of a logistic-regression probe on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = min(5, int(np.bincount(labels).min()))
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(probe, feats, labels, cv=cv).mean())


def measure(model_name: str, weights_dir: Path, tasks: dict[str, TaskData], source: TaskData, n_samples: int,
            seed: int, arrays_dir: Path | None = None) -> list[dict]:
    t0 = time.perf_counter()
    info = hub.model_info(model_name, weights_dir)
    model = hub.create_model(model_name, weights_dir=weights_dir)
    t_create = time.perf_counter() - t0
    protos = qf.classifier_prototypes(model)
    src_means = src_weights = None
    if info.source_dataset == "cifar10":
        f_src, _, y_src = qf.extract(model, source, info.mean, info.std, info.input_size, n_samples, seed + 1)
        src_means, src_weights, _ = qf.class_means(f_src, y_src)
    rows = []
    for task_name, task in tasks.items():
        t1 = time.perf_counter()
        feats, probs, labels = qf.extract(model, task, info.mean, info.std, info.input_size, n_samples, seed)
        t2 = time.perf_counter()
        main = qf.transfer_features(feats, probs, labels, protos)  # what domain_features computes
        t3 = time.perf_counter()
        if arrays_dir is not None:  # for exploring other feature variants without re-extracting
            arrays_dir.mkdir(parents=True, exist_ok=True)
            extra = {} if protos is None else {"prototypes": protos}
            if src_means is not None:
                extra.update(src_means=src_means, src_weights=src_weights)
            np.savez_compressed(arrays_dir / f"{model_name}__{task_name}.npz", features=feats, labels=labels,
                                probs=probs if probs is not None else np.zeros((0, 0)), **extra)
        row = {"model": model_name, "task": task_name, "source_dataset": info.source_dataset,
               "input_size": info.input_size, "n": len(labels), "classes": len(np.unique(labels)),
               "dim": feats.shape[1], **main}
        nan = float("nan")
        row["emd_distance_nocenter"] = (
            qf.emd_similarity(feats, labels, protos, center=False)[1] if protos is not None else nan)
        if src_means is not None:
            row["emd_distance_src"] = qf.emd_similarity(feats, labels, src_means, src_weights)[1]
            # Cui et al.'s original setting: raw features, gamma = 0.01.
            sim_raw, d_raw = qf.emd_similarity(feats, labels, src_means, src_weights, gamma=0.01, center=False,
                                               normalize="none")
            row["emd_distance_src_raw"], row["emd_sim_src_cui"] = d_raw, sim_raw
        else:
            row["emd_distance_src"] = row["emd_distance_src_raw"] = row["emd_sim_src_cui"] = nan
        row["probe_acc"] = probe_accuracy(feats, labels, seed)
        row["seconds_extract"] = t2 - t1
        row["seconds_features"] = t3 - t2
        # What one uncached domain_features call costs: model creation + extraction + features.
        row["seconds_total"] = t_create + (t2 - t1) + (t3 - t2)
        rows.append(row)
        print(f"{model_name:34s} {task_name:14s} emd_sim={row['emd_sim']:.3f} logme={row['logme']:+.3f} "
              f"leep={row['leep']:+.3f} probe={row['probe_acc']:.3f} {row['seconds_total']:.1f}s", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _spearman(a: pd.Series, b: pd.Series) -> float:
    ok = a.notna() & b.notna()
    if ok.sum() < 3:
        return float("nan")
    return float(a[ok].rank().corr(b[ok].rank()))


def checks(df: pd.DataFrame) -> list[str]:
    lines = []
    cifar_models = sorted(df.loc[df.source_dataset == "cifar10", "model"].unique())
    lines.append("## Checks\n")
    lines.append("### CIFAR-10 ResNets: most similar task (EMD) and LogME / LEEP on cifar10-small vs omniglot20\n")
    lines.append("| model | argmax emd_sim (classifier protos) | argmax emd_sim (source means) | "
                 "logme cifar / omniglot | logme_gain cifar / omniglot | leep cifar / omniglot | "
                 "leep_gain cifar / omniglot |")
    lines.append("|---|---|---|---|---|---|---|")
    for m in cifar_models:
        d = df[df.model == m].set_index("task")
        best_clf = d["emd_sim"].idxmax()
        best_src = d["emd_distance_src"].idxmin()
        pair = " | ".join(f"{d.loc['cifar10-small', k]:+.3f} / {d.loc['omniglot20', k]:+.3f}"
                          for k in ("logme", "logme_gain", "leep", "leep_gain"))
        lines.append(f"| {m} | {best_clf} | {best_src} | {pair} |")
    lines.append("")
    lines.append("### Which models are most similar to each task (emd_sim, classifier prototypes)\n")
    for t in df.task.unique():
        d = df[df.task == t].sort_values("emd_sim", ascending=False)
        lines.append(f"- {t}: " + ", ".join(f"{r.model} {r.emd_sim:.3f}" for r in d.head(4).itertuples()))
    lines.append("")
    lines.append("### Rank agreement across models within a task (Spearman)\n")
    cols = ("logme", "logme_gain", "leep", "emd_sim", "source_confidence")
    lines.append("| task | " + " | ".join(f"{c} vs probe_acc" for c in cols) + " |")
    lines.append("|---" * (len(cols) + 1) + "|")
    for t in df.task.unique():
        d = df[df.task == t]
        lines.append(f"| {t} | " + " | ".join(f"{_spearman(d[c], d.probe_acc):+.2f}" for c in cols) + " |")
    lines.append("")
    lines.append("Across all (model, task) pairs: " + ", ".join(
        f"Spearman({c}, probe_acc) = {_spearman(df[c], df.probe_acc):+.2f}" for c in cols + ("leep_gain",)))
    lines.append("")
    if cifar_models:
        c = df[df.model.isin(cifar_models)]
        lines.append("### Classifier-weight prototypes vs real source class means (CIFAR ResNets x tasks)\n")
        lines.append(f"- Spearman(emd_distance [classifier, centred+L2], emd_distance_src [source means, centred+L2]) "
                     f"= {_spearman(c.emd_distance, c.emd_distance_src):+.2f} over {len(c)} pairs")
        lines.append(f"- Spearman(emd_distance_nocenter [classifier, L2 only], emd_distance_src) "
                     f"= {_spearman(c.emd_distance_nocenter, c.emd_distance_src):+.2f}")
        lines.append(f"- Spearman(emd_distance_src_raw [Cui: raw features], emd_distance_src) "
                     f"= {_spearman(c.emd_distance_src_raw, c.emd_distance_src):+.2f}")
        lines.append("")
    lines.append("### Distribution of emd_distance (default: classifier prototypes, centred + L2)\n")
    q = df.emd_distance.quantile([0, 0.25, 0.5, 0.75, 1]).round(3).tolist()
    lines.append(f"- min / q25 / median / q75 / max = {q} -> emd_sim = exp(-{qf.DEFAULT_GAMMA:g} d) in "
                 f"[{df.emd_sim.min():.3f}, {df.emd_sim.max():.3f}]")
    lines.append("")
    lines.append("### Runtime per (model, task) (seconds, uncached: create model + extract + features)\n")
    piv = df.pivot(index="model", columns="task", values="seconds_total")
    lines.append("| model | " + " | ".join(piv.columns) + " |")
    lines.append("|---" * (len(piv.columns) + 1) + "|")
    for m, r in piv.iterrows():
        lines.append(f"| {m} | " + " | ".join(f"{v:.1f}" for v in r) + " |")
    return lines


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("emd_sim", "EMD similarity (classifier protos)"), ("logme", "LogME"), ("logme_gain", "LogME gain"),
              ("leep", "LEEP"), ("leep_gain", "LEEP gain"), ("probe_acc", "linear-probe accuracy (5-fold CV)")]
    models = sorted(df.model.unique(), key=lambda m: (df.loc[df.model == m, "source_dataset"].iloc[0], m))
    tasks = list(dict.fromkeys(df.task))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 0.45 * len(models) + 2.4), sharey=True)
    for ax, (col, title) in zip(axes, panels):
        mat = df.pivot(index="model", columns="task", values=col).loc[models, tasks].to_numpy(float)
        im = ax.imshow(np.ma.masked_invalid(mat), aspect="auto", cmap="viridis")
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if mat[i, j] < np.nanmean(mat) else "black")
        ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
        ax.set_yticks(range(len(models)), models)
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046)
    sizes = ", ".join(f"{t} {int(df.loc[df.task == t, 'n'].iloc[0])}" for t in tasks)
    fig.suptitle(f"quicktune.features on real hub models (images sampled per task: {sizes})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--weights-dir", type=Path, default=None, help="default: SHARED/weights")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "quicktune" / "bench" / "feature_sanity")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="", help="comma-separated (default: every model in the weights dir)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    weights = args.weights_dir or args.shared / "weights"
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    tasks, source = load_tasks(args.shared, args.work)
    for name, t in tasks.items():
        print(f"task {name}: {t.descriptors()} (train {len(t.train)})")
    models = [m for m in args.models.split(",") if m] or hub.list_models(weights)
    rows = []
    for m in models:
        rows += measure(m, weights, tasks, source, args.n_samples, args.seed, args.work / "arrays")
    df = pd.DataFrame(rows)

    # domain_features must give exactly what was measured here (same sample, same math).
    first = df.iloc[0]
    via_wrapper = qf.domain_features(first.model, tasks[first.task], weights, args.n_samples, args.seed,
                                     cache_dir=args.work / "cache", refresh=True)
    consistent = all(np.isclose(via_wrapper[k], first[k], equal_nan=True) for k in qf.FEATURE_NAMES)

    df.to_csv(args.out / "feature_sanity.csv", index=False, float_format="%.6g")
    plot(df, args.out / "feature_sanity.png")
    header = [
        "# feature_sanity: quicktune.features on the real hub models\n",
        f"n_samples={args.n_samples}, seed={args.seed}, torch threads={args.threads}, "
        f"gamma={qf.DEFAULT_GAMMA:g} (centred + L2-normalised prototypes), {len(models)} models x {len(tasks)} tasks. "
        f"domain_features() reproduces the measured row for ({first.model}, {first.task}): {consistent}.\n",
        "Regenerate: `/work/venv/bin/python benchmarks/feature_sanity.py` (CSV, PNG and this file).\n",
    ]
    load = os.getloadavg()
    header.append(f"Machine: {os.cpu_count()} cores shared with other jobs; load average at the end "
                  f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min), so runtimes are upper bounds.\n")
    header += [
        "Reading: LogME and LEEP drift with the number of classes (omniglot20 has 20, the others 10), so",
        "across tasks compare logme_gain / leep_gain (baselined against the label prior). emd_sim with",
        "classifier prototypes is comparable across tasks for one model; across models it is confounded",
        "by the number of source classes (1001 for the Coral models, 10 for the CIFAR ResNets).\n",
    ]
    (args.out / "feature_sanity.md").write_text("\n".join(header + checks(df)) + "\n")
    print("\n".join(checks(df)))
    print(f"consistent with domain_features: {consistent}")


if __name__ == "__main__":
    main()
