"""The timed search on N workers: the one-worker loop of `Search.run`, with a pool.

Whenever a worker is free, the search checks the budget (`Search.stop_before_ask`), takes the next
trial (`Search.next_trial`: runs a killed session left in flight first, then Quick-Tune's choice
with the running trials pending, so they are never proposed twice and its surrogate believes their
predicted accuracies), refuses one predicted to overrun the budget (`Search.refuse`) and submits
it; every finished trial is told and logged (`Search.record`). These are the very same steps as
the one-worker loop, so stop rules and the budget behave identically; only the number of trials in
flight differs. Once a stop reason is found no new trial starts, and the running ones are waited
for (each is one epoch, predicted to end within the budget).

Resumable as the one-worker search: every run is checkpointed after every epoch in the work dir
(which every worker reaches), and `session.json` lists the trials in flight; a killed search,
rerun, continues those runs from their last checkpointed epoch before asking for new ones. A run
that fails in a worker stops the search with a SuggestError naming it (as it would with one
worker); its session is saved, so the rerun restarts the runs that were in flight.
"""

from __future__ import annotations

from quicktune.pool import WorkerPool
from quicktune.suggest.errors import SuggestError
from quicktune.suggest.search import Search


def run_parallel(search: Search, pool: WorkerPool) -> str:
    """Run `search` on the workers of `pool` until the budget is used (see the module docstring);
    returns the stop reason. The pool is closed on the way out."""
    search.begin()
    asked_at: dict[int, float] = {}  # config id -> optimizer seconds spent choosing its trial
    reason: str | None = None
    try:
        while True:
            while reason is None and pool.free > 0:
                reason = search.stop_before_ask()
                if reason:
                    break
                trial, overhead = search.next_trial()
                if trial is None:
                    if not pool.running:  # nothing in flight could change the optimizer's mind
                        reason = "every candidate is finished"
                    break
                reason = search.refuse(trial)
                if reason:
                    break
                asked_at[trial.config_id] = overhead
                pool.submit(trial)
                search.started(trial)
            if not pool.running:
                break
            for done in pool.wait():
                if done.observation is None:
                    c = search.configs[done.trial.config_id]
                    raise SuggestError(f"the run of {c.describe()} (candidate {done.trial.config_id}) failed in a "
                                       f"worker at epoch {done.trial.epoch}: {done.error}")
                search.record(done.trial, done.observation, asked_at.pop(done.trial.config_id, 0.0))
    except KeyboardInterrupt:
        pool.close()
        search.end("interrupted", interrupted=True)
        raise
    except BaseException:
        pool.close()
        search.end("failed", interrupted=True)
        raise
    pool.close()
    return search.end(reason or "every candidate is finished")


__all__ = ["run_parallel"]
