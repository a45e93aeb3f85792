"""dgl_ray: dual-gradient learning experiments, from one trial to cluster-scale Ray Tune sweeps.

Layers, lowest first; a module imports only from its own layer and those below (the import-linter
contracts in pyproject.toml, checked by tests/test_layers.py):
- ``dgl_ray.config``, ``schedules``, ``paper``, ``errors``: plain data, no torch.
- ``dgl_ray.data``, ``models``, ``noise``: data sources, models, label noise.
- ``dgl_ray.trainer`` (``Trial``, one trial's state), ``step`` (the reference step), ``checkpoint``.
- ``dgl_ray.batched``, ``packing``: the population that trains trials, alone or packed.
- ``dgl_ray.storage``, ``provenance`` (and the row format): what results look like where they are kept.
- ``dgl_ray.tune`` (Ray Tune trainables and searchers) beside ``dgl_ray.analysis`` (tidy DataFrame in,
  table or figure out): neither imports the other.
- ``dgl_ray.sweeps``: one module per experiment family.
- the command lines: ``dgl-ray`` (``cli``), ``python -m dgl_ray.train``, ``campaign``, ``sweeps``, ``analysis``.
"""

__version__ = "0.1.0"
