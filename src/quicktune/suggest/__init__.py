"""`quicktune suggest`, the library side: which model to fine-tune on a user's data, and how.

The pieces, in the order the command uses them:

- `load_surrogate`: the meta-trained surrogate (default: the checkpoint shipped in the package,
  `DEFAULT_SURROGATE_PATH`), with one-line errors for a missing or foreign file.
- `resolve_models` / `make_candidates`: the hub models available offline x a seeded Sobol design
  of (ELR, weight decay, momentum) per model over the ranges the meta-dataset was collected on
  (`quicktune.collect`'s ELR_RANGE, WEIGHT_DECAY_RANGE, P_ZERO_WEIGHT_DECAY, MOMENTA).
- `open_target` / `task_features`: the user's ImageFolder (validated by `load_task`), its dataset
  descriptors and, per model, the domain features (EMD similarity, LogME, LEEP) computed at the
  resolution that model trains at, exactly as the collection campaign computed them for
  meta-training (500 images, seed 0; cached by `quicktune.features`).
- `zero_shot`: no training: the surrogate's prior at the full horizon (budget = max epochs, an
  empty curve) and its cost net, for every candidate, best first.
- `Search` (`Search.open(...)`, which locks the work dir and reads its session): a timed search that really fine-tunes: `QuickTune` asks, `FinetuneObjective` trains
  one epoch per step (a new config at epoch 1, or one more epoch of a started one), until the
  wall-clock budget is used or the stop rule (`quicktune.stopping`) holds. Each run keeps its
  best epoch's weights; the chosen model is measured on the task's held-out test split (an
  unbiased estimate with a Wilson 95% interval, `quicktune.estimate`). All state lives in the work dir (run checkpoints + `session.json`),
  so running the same command again continues: the optimizer is re-told the history and the
  budget counts the time already spent.

Features are passed to the surrogate by name, so its own scaler (fitted at meta-training) scales
them; names it was not trained with are ignored and names it knows but we lack scale to 0 (the
training mean).
"""

from quicktune.suggest.candidates import (  # noqa: F401
    DEFAULT_CANDIDATES,
    candidate_hyperparameters,
    candidates_fingerprint,
    make_candidates,
)
from quicktune.suggest.errors import (  # noqa: F401
    SuggestError,
)
from quicktune.suggest.loading import (  # noqa: F401
    DEFAULT_SURROGATE_PATH,
    FALLBACK_BATCH_SIZE,
    feature_settings,
    finetune_settings,
    load_surrogate,
    resolve_models,
)
from quicktune.suggest.ranking import (  # noqa: F401
    DEFAULT_TOP,
    Prediction,
    zero_shot,
)
from quicktune.suggest.search import (  # noqa: F401
    Search,
)
from quicktune.suggest.session import (  # noqa: F401
    SESSION_FILE,
    SESSION_FORMAT,
    SESSION_VERSION,
    StepRecord,
    _atomic_json,
    default_workdir,
)
from quicktune.suggest.target import (  # noqa: F401
    FEATURE_SAMPLES,
    FEATURE_SEED,
    DEFAULT_TEST_FRACTION,
    Target,
    TaskFeatures,
    open_target,
    out_of_range,
    task_features,
)

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_SURROGATE_PATH",
    "Prediction",
    "Search",
    "SuggestError",
    "Target",
    "TaskFeatures",
    "candidate_hyperparameters",
    "default_workdir",
    "feature_settings",
    "finetune_settings",
    "load_surrogate",
    "make_candidates",
    "open_target",
    "out_of_range",
    "resolve_models",
    "task_features",
    "zero_shot",
]
