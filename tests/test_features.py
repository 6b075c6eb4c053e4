"""Tests of quicktune.features: the transferability math on synthetic arrays, then the wrapper."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from quicktune import features as qf
from quicktune.metadataset.schema import DATASET_DESCRIPTORS


# ---------------------------------------------------------------------------------------------
# EMD similarity
# ---------------------------------------------------------------------------------------------
def _blobs(means: np.ndarray, counts: list[int], noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features whose class means are exactly `means` (C x D), `counts` samples per class."""
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for c, (mu, n) in enumerate(zip(means, counts)):
        e = noise * rng.standard_normal((n, means.shape[1]))
        feats.append(mu + e - e.mean(axis=0))  # zero-mean noise keeps the class mean exact
        labels.append(np.full(n, c))
    return np.concatenate(feats), np.concatenate(labels)


@pytest.mark.parametrize("center,normalize", [(True, "l2"), (False, "none"), (False, "l2")])
def test_emd_identical_distributions_give_similarity_one(center, normalize):
    rng = np.random.default_rng(0)
    protos = rng.standard_normal((4, 8))
    counts = [10, 20, 30, 40]
    x, y = _blobs(protos, counts, noise=0.5)
    sim, dist = qf.emd_similarity(x, y, protos, np.array(counts), center=center, normalize=normalize)
    assert dist == pytest.approx(0.0, abs=1e-9)
    assert sim == pytest.approx(1.0)


def test_emd_translation_distance_equals_shift_and_similarity_decreases():
    rng = np.random.default_rng(1)
    protos = rng.standard_normal((5, 6))
    x, y = _blobs(protos, [7] * 5, noise=0.3)
    v = rng.standard_normal(6)
    v /= np.linalg.norm(v)
    sims = []
    for t in [0.0, 0.5, 1.0, 2.0, 4.0]:
        sim, dist = qf.emd_similarity(x + t * v, y, protos, gamma=0.3, center=False, normalize="none")
        # W1 between a distribution and its translate is exactly the length of the translation.
        assert dist == pytest.approx(t, abs=1e-9)
        assert sim == pytest.approx(math.exp(-0.3 * t))
        sims.append(sim)
    assert all(a > b for a, b in zip(sims, sims[1:]))


def test_emd_normalised_similarity_decreases_as_target_rotates_away():
    # Two source directions; the target class means rotate away from them by a growing angle.
    protos = np.eye(2)
    sims = []
    # Up to 45 degrees matching class i to prototype i stays optimal, so the distance is monotone.
    for angle in np.linspace(0, np.pi / 4, 6):
        r = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        x, y = _blobs(protos @ r.T, [5, 5])
        sims.append(qf.emd_similarity(x, y, protos, center=False)[0])
    assert sims[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(sims, sims[1:]))


def test_emd_is_symmetric_in_the_two_domains():
    rng = np.random.default_rng(2)
    mean_a, mean_b = rng.standard_normal((3, 5)), rng.standard_normal((4, 5)) + 1.0
    counts_a, counts_b = [3, 5, 2], [4, 1, 6, 2]
    xa, ya = _blobs(mean_a, counts_a, noise=1.0, seed=3)
    xb, yb = _blobs(mean_b, counts_b, noise=1.0, seed=4)
    for center, normalize in [(True, "l2"), (False, "none")]:
        ab = qf.emd_similarity(xa, ya, mean_b, np.array(counts_b), center=center, normalize=normalize)
        ba = qf.emd_similarity(xb, yb, mean_a, np.array(counts_a), center=center, normalize=normalize)
        assert ab[1] > 0.1
        assert ab == pytest.approx(ba)


def test_emd_class_weights_matter():
    # One target class sits on the prototype, the other far away: the more frequent the far
    # class, the larger the distance.
    protos = np.zeros((1, 3))
    means = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    dists = []
    for n_far in [1, 5, 20]:
        x, y = _blobs(means, [20, n_far])
        dists.append(qf.emd_similarity(x, y, protos, center=False, normalize="none")[1])
    assert dists == pytest.approx([3.0 * n / (20 + n) for n in [1, 5, 20]])
    # The source weights matter too: moving mass onto the far prototype moves the optimum.
    x, y = _blobs(means, [10, 10])
    d_uniform = qf.emd_similarity(x, y, means, None, center=False, normalize="none")[1]
    d_skewed = qf.emd_similarity(x, y, means, np.array([0.9, 0.1]), center=False, normalize="none")[1]
    assert d_uniform == pytest.approx(0.0, abs=1e-9)
    assert d_skewed == pytest.approx(0.4 * 3.0)


def test_emd_centring_ignores_a_common_offset_and_scale():
    rng = np.random.default_rng(5)
    protos = rng.standard_normal((4, 6))
    x, y = _blobs(protos, [5] * 4)
    # ReLU-like features: the class structure of the prototypes, scaled and on a big common offset.
    shifted = 7.0 * x + 20.0
    sim, dist = qf.emd_similarity(shifted, y, protos)  # defaults: centre + L2
    assert dist == pytest.approx(0.0, abs=1e-9) and sim == pytest.approx(1.0)
    assert qf.emd_similarity(shifted, y, protos, center=False)[1] > 0.5


def test_emd_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="D=3"):
        qf.emd_similarity(np.zeros((4, 3)), np.array([0, 0, 1, 1]), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="source_weights"):
        qf.emd_similarity(np.zeros((4, 3)), np.array([0, 0, 1, 1]), np.zeros((2, 3)), np.array([1.0, -1.0]))


# ---------------------------------------------------------------------------------------------
# LogME
# ---------------------------------------------------------------------------------------------
def _log_evidence_direct(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log N(y; 0, F F^T / alpha + I / beta): the marginal likelihood written out in full."""
    n = f.shape[0]
    cov = f @ f.T / alpha + np.eye(n) / beta
    _, logdet = np.linalg.slogdet(cov)
    return float(-0.5 * (logdet + y @ np.linalg.solve(cov, y) + n * math.log(2 * math.pi)))


def _logme_brute_force(f: np.ndarray, labels: np.ndarray) -> float:
    """Maximise the direct evidence over (log alpha, log beta) numerically, per class."""
    out = []
    for c in np.unique(labels):
        y = (labels == c).astype(float)
        best = -np.inf
        for start in [(0.0, 0.0), (-3.0, 3.0), (3.0, 1.0)]:
            r = minimize(lambda p: -_log_evidence_direct(f, y, math.exp(p[0]), math.exp(p[1])), start,
                         method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
            best = max(best, -r.fun)
        out.append(best / f.shape[0])
    return float(np.mean(out))


@pytest.mark.parametrize("n,d", [(40, 5), (12, 30)])  # N > D and N < D (rank-deficient F^T F)
def test_logme_matches_brute_force(n, d):
    rng = np.random.default_rng(n + d)
    labels = rng.integers(0, 3, size=n)
    f = rng.standard_normal((n, d)) + 0.8 * np.eye(3)[labels] @ rng.standard_normal((3, d))
    assert qf.logme(f, labels) == pytest.approx(_logme_brute_force(f, labels), abs=1e-5)


def test_logme_evidence_formula_equals_direct_gaussian_likelihood():
    rng = np.random.default_rng(7)
    f = rng.standard_normal((15, 20))
    y = (rng.random(15) < 0.4).astype(float)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    ev, alpha, beta = qf._logme_evidence_from_svd(u, s**2, f.shape[1], y)
    assert ev == pytest.approx(_log_evidence_direct(f, y, alpha, beta), rel=1e-9)


def test_logme_higher_for_separable_features_than_noise():
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(4), 50)
    separable = np.eye(4)[labels] * 5.0 + 0.3 * rng.standard_normal((200, 4))
    separable = np.concatenate([separable, rng.standard_normal((200, 12))], axis=1)
    noise = rng.standard_normal((200, 16))
    assert qf.logme(separable, labels) > qf.logme(noise, labels) + 0.5


def test_logme_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        qf.logme(np.ones((5, 2)), np.zeros(5, dtype=int))


# ---------------------------------------------------------------------------------------------
# LEEP
# ---------------------------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_leep_is_non_positive_and_rewards_a_deterministic_label_map():
    rng = np.random.default_rng(9)
    n, k = 300, 12
    probs = _softmax(3.0 * rng.standard_normal((n, k)))
    mapped = probs.argmax(axis=1) % 4  # target label = a function of the source prediction
    random = rng.integers(0, 4, size=n)
    l_mapped, l_random = qf.leep(probs, mapped), qf.leep(probs, random)
    assert l_mapped <= 0 and l_random <= 0
    assert l_mapped > l_random + 0.3
    # LEEP >= the label prior's mean log-likelihood: the EEP's P(y|z) is one EM step for the mixture
    # sum_z theta_z(x) q(y|z) started from q(y|z) = P(y), and EM never lowers the likelihood.
    prior = np.bincount(random) / n
    assert l_random >= float(np.mean(np.log(prior[random]))) - 1e-9


def test_leep_is_zero_for_one_hot_predictions_that_determine_the_label():
    probs = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    assert qf.leep(probs, np.array([1, 0, 2, 1, 0, 2])) == pytest.approx(0.0, abs=1e-12)


def test_leep_rejects_non_probabilities():
    with pytest.raises(ValueError, match="sum to 1"):
        qf.leep(np.ones((3, 4)), np.array([0, 1, 0]))


# ---------------------------------------------------------------------------------------------
# Sampling and descriptors
# ---------------------------------------------------------------------------------------------
def test_stratified_sample_keeps_class_shares_and_is_seeded():
    labels = np.repeat([0, 1, 2], [100, 50, 10])
    idx = qf.stratified_sample(labels, 32, seed=3)
    assert len(idx) == 32 and len(np.unique(idx)) == 32
    assert np.bincount(labels[idx]).tolist() == [20, 10, 2]
    assert np.array_equal(idx, qf.stratified_sample(labels, 32, seed=3))
    assert not np.array_equal(idx, qf.stratified_sample(labels, 32, seed=4))
    assert np.bincount(labels[qf.stratified_sample(labels, 5, seed=0)]).min() >= 1  # every class kept
    assert np.array_equal(qf.stratified_sample(labels, 1000), np.arange(160))


def test_dataset_descriptors_from_arrays_match_the_schema():
    class Data:
        images = np.zeros((6, 1, 28, 28), dtype=np.uint8)
        labels = np.array([0, 1, 2, 0, 1, 2])

    d = qf.dataset_descriptors(Data())
    assert tuple(d) == DATASET_DESCRIPTORS
    assert d == {"n_samples": 6.0, "n_classes": 3.0, "image_size": 28.0, "channels": 1.0}


def test_dataset_descriptors_use_the_loaders_own_descriptors():
    class Loaded:
        def descriptors(self):
            return {"n_samples": 10, "n_classes": 2, "image_size": 32, "channels": 3, "extra": 1}

    expected = {"n_samples": 10.0, "n_classes": 2.0, "image_size": 32.0, "channels": 3.0}
    assert qf.dataset_descriptors(Loaded()) == expected


# ---------------------------------------------------------------------------------------------
# The wrapper: a real (tiny) model over a tiny synthetic ImageFolder
# ---------------------------------------------------------------------------------------------
TINY_MODEL = "test_resnet"  # a timm test architecture (0.5 M parameters), random weights: no files


def _image_folder(root, n_classes: int = 3, per_class: int = 8, size: int = 20, seed: int = 0):
    """ROOT/<class>/*.png with a class-dependent colour plus noise (so labels are learnable)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        base = rng.integers(0, 256, size=3)
        for i in range(per_class):
            img = np.clip(base + rng.normal(0, 30, size=(size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i}.png")
    return root


@pytest.fixture
def tiny_task(tmp_path):
    from quicktune.data import load_task

    return load_task(_image_folder(tmp_path / "imgs"), size=20, cache_dir=None)


def test_extract_gives_stratified_features_and_probabilities(tiny_task):
    from quicktune import hub

    model = hub.create_model(TINY_MODEL, pretrained=False)
    info = hub.model_info(TINY_MODEL)
    feats, probs, labels = qf.extract(model, tiny_task, info.mean, info.std, image_size=32, n_samples=9, seed=1)
    assert feats.shape == (9, info.num_features)
    assert probs.shape == (9, info.num_source_classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert np.bincount(labels).tolist() == [3, 3, 3]
    assert qf.classifier_prototypes(model).shape == (info.num_source_classes, info.num_features)


def test_domain_features_tiny_model_gives_finite_values_and_caches(tiny_task, tmp_path, monkeypatch):
    calls = []
    compute = qf._compute_domain_features

    def counting(*args, **kwargs):
        calls.append(args)
        return compute(*args, **kwargs)

    monkeypatch.setattr(qf.cache, "_compute_domain_features", counting)
    kw = dict(n_samples=12, seed=0, cache_dir=tmp_path / "cache", image_size=32, pretrained=False)
    first = qf.domain_features(TINY_MODEL, tiny_task, **kw)
    assert tuple(first) == qf.FEATURE_NAMES
    assert all(np.isfinite(v) for v in first.values()), first
    assert 0 < first["emd_sim"] <= 1 and first["leep"] <= 0 and 0 < first["source_confidence"] <= 1
    second = qf.domain_features(TINY_MODEL, tiny_task, **kw)
    assert second == first and len(calls) == 1  # the cache answered
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    # Other options are other entries; refresh recomputes.
    qf.domain_features(TINY_MODEL, tiny_task, **{**kw, "seed": 1})
    qf.domain_features(TINY_MODEL, tiny_task, **kw, refresh=True)
    assert len(calls) == 3


def test_transfer_features_gains_are_baselined_against_the_label_prior():
    rng = np.random.default_rng(10)
    labels = np.repeat(np.arange(5), 40)
    good = np.eye(5)[labels] * 4.0 + 0.5 * rng.standard_normal((200, 5))
    probs = _softmax(good)
    out_good = qf.transfer_features(good, probs, labels, np.eye(5))
    out_noise = qf.transfer_features(rng.standard_normal((200, 5)), _softmax(rng.standard_normal((200, 5))), labels,
                                     np.eye(5))
    prior_loglik = math.log(1 / 5)
    assert out_good["leep_gain"] == pytest.approx(out_good["leep"] - prior_loglik)
    assert out_good["logme_gain"] == pytest.approx(out_good["logme"] - qf.logme(np.ones((200, 1)), labels))
    assert out_noise["leep_gain"] >= 0 and abs(out_noise["logme_gain"]) < 0.1
    assert out_good["logme_gain"] > 0.5 and out_good["leep_gain"] > 0.5
    assert out_good["emd_sim"] > out_noise["emd_sim"]


def test_transfer_features_are_nan_where_the_model_has_no_classifier():
    rng = np.random.default_rng(0)
    out = qf.transfer_features(rng.standard_normal((20, 4)), None, np.arange(20) % 2, None)
    assert np.isfinite(out["logme"])
    assert np.isfinite(out["logme_gain"])
    assert all(np.isnan(out[k]) for k in ("emd_sim", "emd_distance", "leep", "source_confidence", "leep_gain"))


def test_features_to_rows_fit_the_store(tmp_path):
    from quicktune.metadataset.storage import MetaDatasetStore

    feats = {"emd_sim": 0.5, "logme": -0.2}
    desc = {"n_samples": 100.0, "n_classes": 4.0, "image_size": 32.0, "channels": 3.0}
    store = MetaDatasetStore(tmp_path / "md")
    store.append_features(qf.features_to_rows("d0", "m0", feats) + qf.features_to_rows("d0", "", desc))
    df = store.read_features()
    assert len(df) == 6
    assert df.set_index(["model", "name"]).loc[("m0", "emd_sim"), "value"] == 0.5
    assert set(df[df.model == ""].name) == set(desc)


def test_domain_features_cifar_resnet_on_cifar_images(tmp_path):
    """The real CIFAR-10 ResNet20 on 40 real CIFAR-10 images: it recognises its own domain."""
    from quicktune.data import TaskSpec, load_task

    from tests.helpers import shared_path

    weights = shared_path("weights")
    root = shared_path("data", "cifar10-small")
    task = load_task(TaskSpec(str(root), classes=4, shots=10, seed=0), size=32, cache_dir=None)
    out = qf.domain_features("resnet20.cifar10", task, weights, n_samples=40, cache_dir=tmp_path)
    assert all(np.isfinite(v) for v in out.values()), out
    assert out["source_confidence"] > 0.6  # it is confident on images like those it was trained on
    # Class means of the source images themselves as prototypes: the same domain, so EMD ~ 0.
    same = qf.domain_features("resnet20.cifar10", task, weights, n_samples=40, cache_dir=tmp_path, source_data=task)
    assert same["emd_distance"] == pytest.approx(0.0, abs=1e-9)
