"""python -m dgl_ray.sweeps --config sweeps/S1.toml [flags]: run a preset with the family it names."""
import importlib
import sys

from . import FAMILIES


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    family = None
    if "--config" in argv:
        import tomllib
        try:
            with open(argv[argv.index("--config") + 1], "rb") as f:
                family = tomllib.load(f).get("family")
        except (OSError, IndexError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            print(f"error: --config: {e}", file=sys.stderr)
            return 2
    if family not in FAMILIES:
        print(f"error: give --config PRESET.toml naming a family ({', '.join(FAMILIES)}), "
              f"or run python -m dgl_ray.sweeps.<family>", file=sys.stderr)
        return 2
    return importlib.import_module(f"dgl_ray.sweeps.{family}").main(argv)


if __name__ == "__main__":
    sys.exit(main())
