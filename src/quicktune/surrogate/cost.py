"""The cost of a step: the meta-trained cost net's prediction for a candidate's next epoch,
calibrated on the target's observed epoch seconds (what the optimizer divides EI by).

A started config's next epoch costs what its epochs cost so far (observed); an unstarted one gets
the cost net's prediction, corrected by the target's observed residuals: a shrunk per-dataset
offset (a machine or data-size mismatch shifts every config) plus a shrunk per-model offset (the
net may misjudge one architecture on this data). Without a cost net (no meta-training): the
observed mean of the same model, else of all observed epochs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np


class CalibratedCost:
    """Predicted log seconds of each candidate's next epoch.

    prior_log_cost: (n,) the cost net's log seconds per candidate, or None (no meta-training).
    model_of: (n,) each candidate's model index (calibration groups by model).
    """

    def __init__(self, prior_log_cost: np.ndarray | None, model_of: np.ndarray) -> None:
        self.prior = prior_log_cost
        self.model_of = np.asarray(model_of)

    def log_seconds(self, cand: np.ndarray, epoch_seconds: Mapping[int, Sequence[float]],
                    unhealthy: Collection[int] = ()) -> np.ndarray:
        """(len(cand),) log seconds of each candidate's next epoch, given the observed seconds of
        every started config's epochs; `unhealthy` configs (runs that ended before the horizon,
        often within seconds) are left out of the calibration."""
        obs_log = {c: float(np.log(np.mean(s))) for c, s in epoch_seconds.items() if s}
        calib = [c for c in obs_log if c not in unhealthy]
        if self.prior is not None:
            prior = self.prior
            res = {c: obs_log[c] - prior[c] for c in calib}
            offset = sum(res.values()) / (len(res) + 1.0)
            by_model: dict[int, list[float]] = {}
            for c, r in res.items():
                by_model.setdefault(int(self.model_of[c]), []).append(r - offset)
            model_off = {m: sum(v) / (len(v) + 1.0) for m, v in by_model.items()}
            out: np.ndarray = prior[cand] + offset + np.array([model_off.get(int(self.model_of[c]), 0.0) for c in cand])
        else:
            by_model_log: dict[int, list[float]] = {}
            for c in calib:
                by_model_log.setdefault(int(self.model_of[c]), []).append(obs_log[c])
            overall = float(np.mean([obs_log[c] for c in calib])) if calib else 0.0
            model_mean = {m: float(np.mean(v)) for m, v in by_model_log.items()}
            out = np.array([model_mean.get(int(self.model_of[c]), overall) for c in cand])
        for i, c in enumerate(cand):
            if int(c) in obs_log:
                out[i] = obs_log[int(c)]
        return out
