"""Ray Tune orchestration: the function trainable, searchers, the runner, progress and the shared CLI.

- :func:`dgl_ray.tune.trainable.dgl_trainable` — one trial, reported at every evaluation.
- :mod:`dgl_ray.tune.searchers` — GridSearcher, ChainedSearcher, BoundarySearcher: one contract (PlanSearcher),
  versioned state (get_state/set_state).
- :mod:`dgl_ray.tune.plan` — packing a plan into populations, the dry run's plan text, the manifest's plan facts.
- :func:`dgl_ray.tune.runner.run_sweep` — Tuner, storage, resume, Parquet, summary table.
"""
