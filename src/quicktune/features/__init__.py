"""Dataset descriptors and per-(model, dataset) transferability features.

Two layers:

* Pure functions on arrays (numpy float64; torch tensors are accepted and converted):
  `emd_similarity` (Cui et al. 2018), `logme` (You et al. 2021), `leep` (Nguyen et al. 2020),
  `class_means`, `stratified_sample`, `dataset_descriptors`.
* `domain_features(model_name, data, ...)`: runs a hub model over a seeded, stratified sample of
  the target data and returns {emd_sim, emd_distance, logme, leep, source_confidence, logme_gain,
  leep_gain} (FEATURE_NAMES), cached as
  JSON per (model, dataset fingerprint, options). `features_to_rows` turns them into
  metadataset FEATURE_SCHEMA rows for `MetaDatasetStore.append_features`.

Making source prototypes and target class means comparable (EMD)
-----------------------------------------------------------------
Cui et al. compare raw penultimate class-mean features of source and target images (gamma=0.01).
Here the source images are usually unavailable, so the source side is the classifier's weight rows
(K x D). Those are not feature means: their scale is arbitrary, softmax is unchanged when the same
vector is added to every row (so only centred rows mean anything), and by the neural-collapse
geometry of a trained classifier (Papyan et al. 2020) a weight row points along the *globally
centred* class mean (w_k ~ mu_k - mu_global), while raw ReLU features all share a large common
offset. So by default (`center=True, normalize="l2"`) each side is centred by its own weighted mean
and every prototype / class mean is L2-normalised: the ground distance is then a chordal distance
on the unit sphere, d = sqrt(2 - 2 cos), in [0, 2], and the same transform applies to real source
class means, so both kinds of prototype give comparable numbers. On the CIFAR-10 ResNets, whose
source images are available, the classifier-weight EMD ranks (model, task) pairs like the
source-class-mean EMD (Spearman 0.99; 0.87 without centring; benchmarks/feature_sanity.py).
`center=False, normalize="none", gamma=0.01` reproduces Cui et al.'s raw setting.

Caveat: with uniform weights over K source prototypes the EMD must move mass to every source
class, so a 1001-class ImageNet model sits near d = 1.3 for every target while a 10-class CIFAR
model spans 0.3 to 1.1: compare emd_sim across tasks for one model, or give the surrogate the
model's num_source_classes alongside it.
"""

from quicktune.features.cache import (  # noqa: F401
    _compute_domain_features,
    _weights_identity,
    default_cache_dir,
    domain_features,
    features_to_rows,
)
from quicktune.features.estimators import (  # noqa: F401
    DEFAULT_GAMMA,
    FEATURE_NAMES,
    _check_features_labels,
    _import_pot_numpy_only,
    _logme_evidence_from_svd,
    _np,
    _prepare_prototypes,
    class_means,
    dataset_descriptors,
    emd_similarity,
    leep,
    logme,
    stratified_sample,
)
from quicktune.features.extraction import (  # noqa: F401
    FEATURES_VERSION,
    _images_labels,
    _preprocess,
    classifier_prototypes,
    dataset_fingerprint,
    extract,
    transfer_features,
)

__all__ = [
    "DEFAULT_GAMMA",
    "FEATURES_VERSION",
    "FEATURE_NAMES",
    "class_means",
    "classifier_prototypes",
    "dataset_descriptors",
    "dataset_fingerprint",
    "default_cache_dir",
    "domain_features",
    "emd_similarity",
    "extract",
    "features_to_rows",
    "leep",
    "logme",
    "stratified_sample",
    "transfer_features",
]
