"""python -m dgl_ray.sweeps --config sweeps/S1.toml [flags]: run a preset with the family it names."""
import sys
import tomllib

from .family import find, summaries


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = None
    if "--config" in argv:
        try:
            with open(argv[argv.index("--config") + 1], "rb") as f:
                name = tomllib.load(f).get("family")
        except (OSError, IndexError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            print(f"error: --config: {e}", file=sys.stderr)
            return 2
    family = find(name) if isinstance(name, str) else None     # imports that family's module only
    if family is None:
        print(f"error: give --config PRESET.toml naming a family ({', '.join(summaries())}), "
              f"or run python -m dgl_ray.sweeps.<family>", file=sys.stderr)
        return 2
    return family.main(argv)


if __name__ == "__main__":
    sys.exit(main())
