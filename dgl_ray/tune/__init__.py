"""Ray Tune orchestration: the function trainable, searchers, the runner, progress and the shared CLI.

- :func:`dgl_ray.tune.trainable.dgl_trainable` — one trial, reported at every evaluation.
- :mod:`dgl_ray.tune.searchers` — GridSearcher, ChainedSearcher, BoundarySearcher (save/restore).
- :func:`dgl_ray.tune.runner.run_sweep` — Tuner, storage, resume, Parquet, summary table.
"""
