"""One fine-tuning run, epoch by epoch, with a checkpoint after every epoch (freeze-thaw).

The procedure (its version is `schema.FINETUNE_VERSION`; bump it when any of this changes):

- model: `hub.create_model(config.model, num_classes=n)` — pretrained backbone, new classifier
  head drawn from torch's RNG seeded with the run's seed;
- folded BatchNorm (identity statistics, as in weights converted from inference formats such
  as the Coral TFLite MobileNets) is recalibrated on training images first, so train-mode BN
  does not erase the folded shifts (`calibrate_folded_batchnorm`; eval-mode output unchanged);
- the recipe: the config's extras (`finetune.recipe.Recipe`; absent = v1), built by timm's factories
  (`finetune.timm_parts`): optimizer by `create_optimizer_v2` with lr = config.lr = ELR * (1 -
  momentum) for SGD (the one explicit rule, logged) or ELR for the Adam family, weight decay on
  every parameter; v1's "sgd" is heavy-ball momentum (timm "momentum"), "nesterov" is timm "sgd";
  freezing (embedding / linear probe / partial, `finetune.layers`), L2-SP, label smoothing, Mixup,
  drop rate, timm augmentations, gradient clipping, AMP on CUDA;
- schedule: without `sched`, v1's cosine decay per step over a FIXED horizon of `max_epochs`
  epochs, no warm-up; with it, timm's cosine / step / multistep / plateau (+ warm-up), stepped per
  epoch. The horizon is part of the run's identity (`schema.run_key(dataset, config, seed,
  max_epochs)`), so the first t epochs of a run are the same whatever is trained later;
- data: the task's uint8 tensors, normalised with the model's mean/std; per epoch a seeded
  shuffle and light augmentation (random crop with size//8 zero padding, horizontal flip);
- evaluation on the validation split after every epoch (accuracy, mean cross-entropy) and the
  mean training loss; seconds per epoch (training + evaluation, wall-clock);
- divergence: a non-finite training loss (or validation loss) ends the run with status
  "diverged" and val_acc NaN for that epoch.

Determinism: every random draw of epoch e comes from generators seeded by (seed, e), and the
checkpoint holds the model, optimizer and scheduler states (and every RNG state), so continuing
a run from its epoch-t checkpoint gives exactly the accuracies of an uninterrupted run (on the
same device with the same number of threads: CPU kernels are deterministic for a fixed thread
count). Checkpoints are written to a temporary file and `os.replace`d, so a kill never leaves a
half-written one. They hold only tensors and plain values and are read with weights_only=True
(`quicktune.safeload`): a planted or damaged checkpoint is ignored (logged) and the run retrained.
"""

from quicktune.finetune.batchnorm import (  # noqa: F401
    CALIBRATION_IMAGES,
    _is_folded,
    calibrate_folded_batchnorm,
)
from quicktune.finetune.records import (  # noqa: F401
    _CKPT_FORMAT,
    CHECKPOINT_NAME,
    DEFAULT_BATCH_SIZE,
    EpochResult,
    _epoch_seed,
    epoch_rows,
    run_identity,
    versions,
)
from quicktune.finetune.epoch import (  # noqa: F401
    EVAL_BATCH_SIZE,
    _augment,
)
from quicktune.finetune.trainer import (  # noqa: F401
    Finetuner,
    log,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EpochResult",
    "Finetuner",
    "epoch_rows",
    "run_identity",
    "versions",
]
