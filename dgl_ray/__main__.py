"""``python -m dgl_ray`` = the ``dgl-ray`` console command (see dgl_ray.cli)."""
import sys

from .cli import main

sys.exit(main())
