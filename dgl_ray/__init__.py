"""dgl_ray: dual-gradient learning experiments, from one trial to cluster-scale Ray Tune sweeps.

Layers (kept apart on purpose):
- trainer core (torch only): ``dgl_ray.config``, ``data``, ``noise``, ``models``, ``step``,
  ``schedules``, ``checkpoint``, ``trainer``; one trial from the command line: ``python -m dgl_ray.train``.
- ``dgl_ray.tune``: Ray Tune trainables and searchers.
- ``dgl_ray.sweeps``: one runnable module per experiment family.
- ``dgl_ray.analysis``: pure functions, tidy DataFrame in, table or figure out.
"""

__version__ = "0.1.0"
