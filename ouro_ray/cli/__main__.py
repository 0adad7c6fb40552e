"""``python -m ouro_ray.cli …``: the ``ouro`` command without its console script (benchmarks run it as a child)."""

from ouro_ray.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
