"""Sweep families, each runnable with ``python -m dgl_ray.sweeps.<family>`` (see docs/SWEEPS.md).

coexistence (S1), bimodality (S2), scan (M/N), finite_size (Q1), schedules (Q2), hysteresis (R1/R2
loops; Tα/Tβ/Tγ sweeps from checkpoints), spinodal (R3, T1/T2), lifetime (T1a/T13), trap (Tδ),
intervention (W2), universality (V1–V4). ``python -m dgl_ray.sweeps --config sweeps/S1.toml`` runs a
preset with the family it names. Each module registers one :class:`dgl_ray.sweeps.family.Family`;
``dgl_ray.sweeps.family.families()`` lists them (docs/FAMILIES.md, "Add an experiment family").
"""
